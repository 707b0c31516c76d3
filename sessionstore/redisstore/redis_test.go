package redisstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-session/caddy-session/internal/redistest"
	"github.com/caddy-session/caddy-session/sessionstore"
)

// provision makes a store as Caddy would, released when the test ends.
func provision(t *testing.T, s *RedisStore) *RedisStore {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	t.Cleanup(func() { _ = s.Cleanup() })
	return s
}

var bg = context.Background()

// waitInvalidated gives Redis's invalidation of a change made by another
// client (a test's own) the time to reach the store's client-side cache:
// it travels on its own, after the change, on the store's connection.
func waitInvalidated() { time.Sleep(50 * time.Millisecond) }

func TestLoadRenewsTTLOnlyWhenDue(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	if _, err := s.Patch(bg, "session:r", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: 10 * time.Second, Create: true}); err != nil {
		t.Fatal(err)
	}

	// Less than the renewal interval (a tenth of the ttl: 1s) since the
	// write: the TTL is left alone.
	rc.PExpire(bg, "session:r", 9500*time.Millisecond)
	_, renewed, err := unpackLoad(s.Load(bg, "session:r", 10*time.Second))
	if err != nil || renewed {
		t.Fatalf("Load soon after the write: renewed %v, %v", renewed, err)
	}
	if ttl := rc.PTTL(bg, "session:r").Val(); ttl > 9500*time.Millisecond {
		t.Errorf("TTL %v was moved though not due", ttl)
	}

	// More than the renewal interval since: the TTL slides back to the
	// full expiry.
	rc.PExpire(bg, "session:r", 8*time.Second)
	waitInvalidated()
	_, renewed, err = unpackLoad(s.Load(bg, "session:r", 10*time.Second))
	if err != nil || !renewed {
		t.Fatalf("Load when due: renewed %v, %v", renewed, err)
	}
	if ttl := rc.PTTL(bg, "session:r").Val(); ttl < 9*time.Second {
		t.Errorf("TTL %v after renewal, want about 10s", ttl)
	}

	// A key without a TTL (written by hand) gets one.
	rc.Persist(bg, "session:r")
	waitInvalidated()
	if _, renewed, _ = unpackLoad(s.Load(bg, "session:r", 10*time.Second)); !renewed || rc.PTTL(bg, "session:r").Val() < 0 {
		t.Errorf("a key without TTL: renewed %v, PTTL %v", renewed, rc.PTTL(bg, "session:r").Val())
	}
}

func TestPermanentSessionsHaveNoTTL(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	if _, err := s.Patch(bg, "session:p", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: 0, Create: true}); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.TTL(bg, "session:p").Val(); ttl != -1 {
		t.Errorf("permanent session TTL %v, want none (-1)", ttl)
	}
	// The first load renews (sends the cookie) and sets the marker, which
	// lasts the permanent renewal interval; the next, within it, does not.
	_, renewed, err := unpackLoad(s.Load(bg, "session:p", 0))
	if err != nil || !renewed {
		t.Fatalf("first load: renewed %v, %v", renewed, err)
	}
	if ttl := rc.TTL(bg, "{session:p}:renewed").Val(); ttl <= sessionstore.PermanentRenewInterval-time.Minute || ttl > sessionstore.PermanentRenewInterval {
		t.Errorf("renewal marker TTL %v", ttl)
	}
	if _, renewed, _ = unpackLoad(s.Load(bg, "session:p", 0)); renewed {
		t.Error("second load renewed again")
	}
	if ttl := rc.TTL(bg, "session:p").Val(); ttl != -1 {
		t.Errorf("after loads, permanent session TTL %v", ttl)
	}
	// A key with a TTL under a permanent config is made permanent.
	rc.Expire(bg, "session:p", time.Hour)
	rc.Del(bg, "{session:p}:renewed")
	waitInvalidated()
	if _, _, err := unpackLoad(s.Load(bg, "session:p", 0)); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.TTL(bg, "session:p").Val(); ttl != -1 {
		t.Errorf("TTL %v, want none", ttl)
	}
}

func TestSanicSessionLayoutBothWays(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})

	// What sanic_session writes: SETEX prefix+sid expiry json.dumps(dict),
	// which has spaces and may hold raw UTF-8.
	rc.SetEx(bg, "session:0123456789abcdef0123456789abcdef", `{"user": "zoë", "roles": ["a", "b"]}`, time.Hour)
	data, _, err := unpackLoad(s.Load(bg, "session:0123456789abcdef0123456789abcdef", time.Hour))
	if err != nil || data != `{"roles":["a","b"],"user":"zo\u00eb"}` {
		t.Fatalf("Load of a sanic_session key = %q, %v", data, err)
	}
	if _, err := s.Patch(bg, "session:0123456789abcdef0123456789abcdef", []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: false}); err != nil {
		t.Fatal(err)
	}
	// What it reads: the JSON text under the same key, with a TTL.
	if got := rc.Get(bg, "session:0123456789abcdef0123456789abcdef").Val(); got != `{"n":1,"roles":["a","b"],"user":"zo\u00eb"}` {
		t.Errorf("stored %q", got)
	}
	if ttl := rc.TTL(bg, "session:0123456789abcdef0123456789abcdef").Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL %v, want about 1h", ttl)
	}
	// A session it creates is that too: one key, the canonical data, the
	// TTL, and nothing beside it.
	data, err = s.Patch(bg, "session:new", []string{`{"user":"ann","n":12345678901234567890}`, `{"é":"ü"}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.Get(bg, "session:new").Val(); got != data || got != `{"n":12345678901234567890,"user":"ann","\u00e9":"\u00fc"}` {
		t.Errorf("stored %q, returned %q", got, data)
	}
	if ttl := rc.TTL(bg, "session:new").Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL %v, want about 1h", ttl)
	}
	if keys := rc.Keys(bg, "*new*").Val(); len(keys) != 1 {
		t.Errorf("a new session has keys %v, want only session:new", keys)
	}
	// Create=false writes no key; a patch that empties a session removes it.
	if _, err := s.Patch(bg, "session:none", []string{`{"x":1}`}, sessionstore.PatchOptions{TTL: time.Hour}); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Fatalf("Patch create=false of a missing key: %v", err)
	}
	if _, err := s.Patch(bg, "session:new", []string{`{"user":null,"n":null,"é":null}`}, sessionstore.PatchOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if keys := rc.Keys(bg, "*").Val(); len(keys) != 1 {
		t.Errorf("keys %v, want only the sanic_session one", keys)
	}

	// Data that is not a JSON object is an error, and stays as it was.
	rc.Set(bg, "session:bad", `not json`, time.Hour)
	if _, _, err := unpackLoad(s.Load(bg, "session:bad", time.Hour)); err == nil || errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Load of corrupt data: %v, want a store error", err)
	}
	if _, err := s.Patch(bg, "session:bad", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: false}); err == nil {
		t.Error("Patch over corrupt data succeeded")
	}
	if got := rc.Get(bg, "session:bad").Val(); got != "not json" {
		t.Errorf("corrupt data was overwritten: %q", got)
	}
}

func TestConcurrentPatchesFromTwoClientsLoseNothing(t *testing.T) {
	srv := redistest.Start(t)
	// Two stores with different settings: two clients, as two Caddy
	// instances would have.
	a := provision(t, &RedisStore{Address: []string{srv.URL()}})
	b := provision(t, &RedisStore{Address: []string{srv.Addr()}, PoolSize: 4})
	if a.pc == b.pc {
		t.Fatal("want two clients")
	}
	if _, err := a.Patch(bg, "session:c", []string{`{"start":true}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.Patch(bg, "session:c", []string{fmt.Sprintf(`{"k%d":%d}`, i, i)}, sessionstore.PatchOptions{TTL: time.Hour, Create: false}); err != nil {
				t.Errorf("patch %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	data, _, err := unpackLoad(a.Load(bg, "session:c", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if !strings.Contains(data, fmt.Sprintf(`"k%d":%d`, i, i)) {
			t.Errorf("k%d lost", i)
		}
	}
}

func TestReloadSharesClient(t *testing.T) {
	srv := redistest.Start(t)
	a := provision(t, &RedisStore{Address: []string{srv.URL()}})
	b := provision(t, &RedisStore{Address: []string{srv.URL()}})
	if a.pc != b.pc {
		t.Error("two configs with the same settings got two clients")
	}
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// The other user keeps a working client.
	if _, err := b.Patch(bg, "session:s", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Minute, Create: true}); err != nil {
		t.Errorf("after the first Cleanup: %v", err)
	}
}

func TestPlaceholdersResolvedAtProvision(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	t.Setenv("TEST_REDIS_URL", srv.URL())
	t.Setenv("TEST_REDIS_PASSWORD", "s3cret")
	s := provision(t, &RedisStore{Address: []string{"{env.TEST_REDIS_URL}"}, Password: "{env.TEST_REDIS_PASSWORD}"})
	if _, err := s.Patch(bg, "session:pw", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Minute, Create: true}); err != nil {
		t.Errorf("with the password from the environment: %v", err)
	}

	wrong := provision(t, &RedisStore{Address: []string{srv.URL()}, Password: "wrong"})
	if _, _, err := unpackLoad(wrong.Load(bg, "session:pw", time.Minute)); err == nil || errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("a wrong password: %v, want an error", err)
	}
}

func TestUnreachableRedisIsAnErrorNotNotFound(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}, DialTimeout: caddy.Duration(200 * time.Millisecond)})
	srv.Kill()
	if _, _, err := unpackLoad(s.Load(bg, "session:x", time.Minute)); err == nil || errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Load with Redis down: %v, want an error other than ErrNotFound", err)
	}
	if _, err := s.Patch(bg, "session:x", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Minute, Create: true}); err == nil {
		t.Error("Patch with Redis down succeeded")
	}
	if s.FailClosed() {
		t.Error("on_error defaults to closed")
	}
}

func TestCluster(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cc := cluster.Client(t)
	s := provision(t, &RedisStore{Address: cluster.Addrs()})
	if !s.cluster {
		t.Fatal("three addresses did not make a cluster client")
	}
	// Keys spread over the slots of all three masters.
	slotsSeen := map[int64]bool{}
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("session:%032x", i*7919)
		if _, err := s.Patch(bg, key, []string{fmt.Sprintf(`{"i":%d}`, i)}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
			t.Fatalf("patch %s: %v", key, err)
		}
		slotsSeen[cc.ClusterKeySlot(bg, key).Val()*3/16384] = true
		data, _, err := unpackLoad(s.Load(bg, key, time.Hour))
		if err != nil || data != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("load %s = %q, %v", key, data, err)
		}
	}
	if len(slotsSeen) != 3 {
		t.Errorf("keys fell in %d of 3 slot ranges", len(slotsSeen))
	}
	// Rename across slots, and a permanent session's marker beside it.
	if err := s.Rename(bg, "session:"+strings.Repeat("1", 32), "session:"+strings.Repeat("2", 32), sessionstore.RenameOptions{TTL: time.Hour}); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Rename of a missing key in a cluster: %v", err)
	}
	from, to := fmt.Sprintf("session:%032x", 0), "session:"+strings.Repeat("f", 32)
	if err := s.Rename(bg, from, to, sessionstore.RenameOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if cc.Exists(bg, from).Val() != 0 || cc.Get(bg, to).Val() != `{"i":0}` || cc.TTL(bg, to).Val() < 59*time.Minute {
		t.Error("Rename in a cluster did not move the key with its TTL")
	}
	if _, err := s.Patch(bg, "session:perm", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: 0, Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, renewed, err := unpackLoad(s.Load(bg, "session:perm", 0)); err != nil || !renewed {
		t.Errorf("permanent session in a cluster: renewed %v, %v", renewed, err)
	}
}

func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	s := provision(t, &RedisStore{Address: []string{sentinel.Addr()}, MasterName: "mymaster"})
	if _, err := s.Patch(bg, "session:sen", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if got := master.Client().Get(bg, "session:sen").Val(); got != `{"a":1}` {
		t.Errorf("through the Sentinel the master got %q", got)
	}
}

func TestCaddyfile(t *testing.T) {
	tests := []struct {
		input string
		want  RedisStore
		err   string
	}{
		{input: `redis`, want: RedisStore{}},
		{input: `redis {
			address redis://10.0.0.1:6379/2 rediss://10.0.0.2:6380
			username u
			password {env.REDIS_PASSWORD}
			master_name mymaster
			pool_size 20
			cache_size 64MiB
			dial_timeout 500ms
			read_timeout 2s
			write_timeout 1s
			tls_ca /etc/ca.pem
			tls_insecure_skip_verify
			on_error closed
		}`, want: RedisStore{
			Address: []string{"redis://10.0.0.1:6379/2", "rediss://10.0.0.2:6380"}, Username: "u", Password: "{env.REDIS_PASSWORD}",
			MasterName: "mymaster", PoolSize: 20, CacheSize: 64 << 20, DialTimeout: caddy.Duration(500 * time.Millisecond), ReadTimeout: caddy.Duration(2 * time.Second),
			WriteTimeout: caddy.Duration(time.Second), TLSCA: "/etc/ca.pem", TLSInsecureSkipVerify: true, OnError: "closed",
		}},
		{input: "redis {\n address http://x:1\n}", err: "address"},
		{input: "redis {\n address localhost\n}", err: "address"},
		{input: "redis {\n address\n}", err: "address"},
		{input: "redis {\n pool_size 0\n}", err: "store redis: pool_size: "},
		{input: "redis {\n cache_size lots\n}", err: "store redis: cache_size: "},
		{input: "redis {\n cache_size 0\n}", err: "store redis: cache_size: "},
		{input: "redis {\n read_timeout soon\n}", err: "read_timeout"},
		{input: "redis {\n on_error maybe\n}", err: "on_error"},
		{input: "redis {\n bogus\n}", err: "bogus"},
		{input: "redis {\n username a b\n}", err: "username"},
		{input: "redis {\n username a\n username b\n}", err: "twice"},
		{input: "redis extra", err: "extra"},
	}
	for _, tt := range tests {
		var s RedisStore
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), ":") {
				t.Errorf("%q: error %v, want one naming %q and the line", tt.input, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.input, err)
			continue
		}
		if fmt.Sprint(s) != fmt.Sprint(tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.input, s, tt.want)
		}
	}
}

func TestProvisionErrors(t *testing.T) {
	for _, tt := range []struct {
		store RedisStore
		want  string
	}{
		{RedisStore{OnError: "sometimes"}, "on_error"},
		{RedisStore{Address: []string{"ftp://x:1"}}, "scheme"},
		{RedisStore{Address: []string{"redis://a:1/1", "redis://b:1/1"}}, "database 0"},
		{RedisStore{Address: []string{"redis://a:1", "rediss://b:1"}}, "mixes"},
		{RedisStore{TLSCA: "/nonexistent/ca.pem"}, "tls_ca"},
		{RedisStore{Address: []string{"redis://user:hunter2@host:bad"}}, "address"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		s := tt.store
		err := s.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one naming %q", tt.store, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// unpackLoad gives tests the data and renewal of a Load result.
func unpackLoad(e sessionstore.Entry, err error) (string, bool, error) { return e.Data, e.Renewed, err }

func TestMetaKeptBesideOnlyWhenAsked(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})

	// No metadata asked for: sanic_session's layout, one key.
	if _, err := s.Patch(bg, "session:plain", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if keys := rc.Keys(bg, "*plain*").Val(); len(keys) != 1 {
		t.Errorf("a plain session has keys %v, want only session:plain", keys)
	}

	// A creation time and an own expiry: kept in {key}:meta with the TTL.
	before := time.Now().Add(-time.Second)
	if _, err := s.Patch(bg, "session:m", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, SetCreated: true, Expiry: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	meta := rc.HGetAll(bg, "{session:m}:meta").Val()
	if meta["expiry"] != "7200000" || meta["created"] == "" {
		t.Errorf("meta = %v", meta)
	}
	if ttl := rc.TTL(bg, "session:m").Val(); ttl < 119*time.Minute {
		t.Errorf("the own expiry did not set the TTL: %v", ttl)
	}
	if ttl := rc.TTL(bg, "{session:m}:meta").Val(); ttl < 119*time.Minute {
		t.Errorf("meta TTL %v", ttl)
	}
	entry, err := s.Load(bg, "session:m", time.Hour)
	if err != nil || entry.Meta.Expiry != 2*time.Hour || entry.Meta.Created.Before(before) || entry.Meta.Created.After(time.Now()) {
		t.Errorf("Load meta = %+v, %v", entry.Meta, err)
	}
	// A later patch without SetCreated keeps the creation time and the own expiry.
	created := entry.Meta.Created
	if _, err := s.Patch(bg, "session:m", []string{`{"b":2}`}, sessionstore.PatchOptions{TTL: time.Hour, SetCreated: true}); err != nil {
		t.Fatal(err)
	}
	if entry, _ = s.Load(bg, "session:m", time.Hour); !entry.Meta.Created.Equal(created) || entry.Meta.Expiry != 2*time.Hour {
		t.Errorf("after another patch meta = %+v", entry.Meta)
	}
	if ttl := rc.TTL(bg, "session:m").Val(); ttl < 119*time.Minute {
		t.Errorf("a later patch gave the handler's TTL, not the session's own: %v", ttl)
	}
	// Regenerate moves the metadata; delete removes it.
	if err := s.Rename(bg, "session:m", "session:m2", sessionstore.RenameOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if rc.Exists(bg, "{session:m}:meta").Val() != 0 || rc.HGet(bg, "{session:m2}:meta", "expiry").Val() != "7200000" {
		t.Error("Rename did not move the metadata")
	}
	if err := s.Delete(bg, "session:m2"); err != nil {
		t.Fatal(err)
	}
	if rc.Exists(bg, "session:m2", "{session:m2}:meta").Val() != 0 {
		t.Error("Delete left keys")
	}

	// Permanent by its own expiry: no TTL.
	if _, err := s.Patch(bg, "session:p", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, Expiry: sessionstore.Permanent}); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.TTL(bg, "session:p").Val(); ttl != -1 {
		t.Errorf("own permanent expiry: TTL %v", ttl)
	}
	if e, _ := s.Load(bg, "session:p", time.Hour); e.Meta.Expiry != sessionstore.Permanent {
		t.Errorf("own permanent expiry read back as %v", e.Meta.Expiry)
	}
}

func TestUnixSocketAddress(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "redis.sock")
	srv := redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	s := provision(t, &RedisStore{Address: []string{"unix://" + sock}})
	if _, err := s.Patch(bg, "session:u", []string{`{"via":"unix"}`}, sessionstore.PatchOptions{TTL: time.Minute, Create: true}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Client().Get(bg, "session:u").Val(); got != `{"via":"unix"}` {
		t.Errorf("through the unix socket Redis got %q", got)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	bad := &RedisStore{Address: []string{"unix://" + sock, "redis://127.0.0.1:1"}}
	if err := bad.Provision(ctx); err == nil || !strings.Contains(err.Error(), "unix socket") {
		t.Errorf("a unix socket among several addresses: %v", err)
	}
}

func TestGraceAndScopeLayout(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})

	// A scope lives in the metadata hash, with the session's TTL.
	if _, err := s.Patch(bg, "session:old", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, Scope: "example.com:443"}); err != nil {
		t.Fatal(err)
	}
	if got := rc.HGet(bg, "{session:old}:meta", "scope").Val(); got != "example.com:443" {
		t.Errorf("scope field %q", got)
	}
	if ttl := rc.TTL(bg, "{session:old}:meta").Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("meta TTL %v, want the session's hour", ttl)
	}
	if _, err := s.Patch(bg, "session:x", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, Scope: strings.Repeat("x", sessionstore.MaxScopeLength+1)}); err == nil {
		t.Error("a scope over MaxScopeLength was accepted")
	}

	// A regenerate with a grace: the old key holds nothing (a sanic_session
	// app reading it sees no session); the moved record beside it names the
	// new key and lasts the grace.
	if err := s.Rename(bg, "session:old", "session:new", sessionstore.RenameOptions{TTL: time.Hour, Grace: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := rc.Exists(bg, "session:old", "{session:old}:meta").Val(); n != 0 {
		t.Errorf("the old key or its metadata is still there (%d)", n)
	}
	if got := rc.Get(bg, "{session:old}:moved").Val(); got != "session:new" {
		t.Errorf("moved record %q, want session:new", got)
	}
	if ttl := rc.PTTL(bg, "{session:old}:moved").Val(); ttl <= 9*time.Second || ttl > 10*time.Second {
		t.Errorf("moved record TTL %v, want the 10s grace", ttl)
	}
	if e, err := s.Load(bg, "session:new", time.Hour); err != nil || e.Meta.Scope != "example.com:443" {
		t.Errorf("Load(new) = %+v, %v", e, err)
	}
	var moved *sessionstore.MovedError
	if _, err := s.Patch(bg, "session:old", []string{`{"b":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); !errors.As(err, &moved) || moved.To != "session:new" {
		t.Errorf("Patch(old) = %v, want moved to session:new", err)
	}
	if rc.Exists(bg, "session:old").Val() != 0 {
		t.Error("a Patch of a moved key wrote it")
	}
	if err := s.Delete(bg, "session:old"); err != nil {
		t.Fatal(err)
	}
	if rc.Exists(bg, "{session:old}:moved").Val() != 0 {
		t.Error("Delete left the moved record")
	}
}

func TestClusterRenameGrace(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cc := cluster.Client(t)
	s := provision(t, &RedisStore{Address: cluster.Addrs()})
	from, to := fmt.Sprintf("session:%032x", 1), "session:"+strings.Repeat("e", 32)
	if cc.ClusterKeySlot(bg, from).Val() == cc.ClusterKeySlot(bg, to).Val() {
		t.Fatal("want keys on two slots")
	}
	if _, err := s.Patch(bg, from, []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, Scope: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(bg, from, to, sessionstore.RenameOptions{TTL: time.Hour, Grace: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	var moved *sessionstore.MovedError
	if _, err := s.Load(bg, from, time.Hour); !errors.As(err, &moved) || moved.To != to {
		t.Errorf("Load(old) in a cluster = %v, want moved to %s", err, to)
	}
	if e, err := s.Load(bg, to, time.Hour); err != nil || e.Data != `{"a":1}` || e.Meta.Scope != "s" {
		t.Errorf("Load(new) in a cluster = %+v, %v", e, err)
	}
	if cc.Exists(bg, from).Val() != 0 || cc.PTTL(bg, "{"+from+"}:moved").Val() <= 9*time.Second {
		t.Error("the old key is left, or the moved record lacks its grace")
	}
}
