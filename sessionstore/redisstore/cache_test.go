package redisstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session/caddy-session/internal/redistest"
	"github.com/caddy-session/caddy-session/sessionstore"
)

// eventually polls cond until it holds, failing after a generous bound:
// Redis's invalidations reach other clients on their own time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loadData(s *RedisStore, key string) string {
	e, err := s.Load(bg, key, time.Hour)
	if err != nil {
		return "error: " + err.Error()
	}
	return e.Data
}

func TestClientSideCache(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	a := provision(t, &RedisStore{Address: []string{srv.URL()}})
	b := provision(t, &RedisStore{Address: []string{srv.Addr()}, PoolSize: 4}) // another client, as another instance
	if a.pc == b.pc || !a.pc.cached.Load() {
		t.Fatal("want two caching clients")
	}
	if _, err := a.Patch(bg, "session:c", []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b reads the session", func() bool { return loadData(b, "session:c") == `{"n":1}` })

	// A read served from the cache does not reach Redis.
	hits := b.pc.hits.Load()
	before := commandsProcessed(t, srv)
	for range 20 {
		if got := loadData(b, "session:c"); got != `{"n":1}` {
			t.Fatalf("Load = %s", got)
		}
	}
	if n := commandsProcessed(t, srv) - before; n > 2 { // the INFO calls themselves
		t.Errorf("20 cached loads sent %d commands to Redis", n)
	}
	if b.pc.hits.Load()-hits != 20 {
		t.Errorf("hits went up by %d, want 20", b.pc.hits.Load()-hits)
	}

	// A change through a, or behind both, reaches b's cache.
	if _, err := a.Patch(bg, "session:c", []string{`{"n":2}`}, sessionstore.PatchOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees a's change", func() bool { return loadData(b, "session:c") == `{"n":2}` })
	rc.Set(bg, "session:c", `{"n":3}`, time.Hour)
	eventually(t, "b sees a change by another client", func() bool { return loadData(b, "session:c") == `{"n":3}` })
	if err := a.Delete(bg, "session:c"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b sees the delete", func() bool {
		_, err := b.Load(bg, "session:c", time.Hour)
		return errors.Is(err, sessionstore.ErrNotFound)
	})

	// Expiry in Redis ends the cached copy.
	if _, err := a.Patch(bg, "session:e", []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: 300 * time.Millisecond, Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(bg, "session:e", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	if e, err := b.Load(bg, "session:e", 300*time.Millisecond); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("after its TTL: %+v, %v; want ErrNotFound", e, err)
	}

	// FLUSHALL empties every cache.
	if _, err := a.Patch(bg, "session:f", []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b reads session:f", func() bool { return loadData(b, "session:f") == `{"n":1}` })
	rc.FlushAll(bg)
	eventually(t, "no session survives FLUSHALL", func() bool {
		_, errA := a.Load(bg, "session:f", time.Hour)
		_, errB := b.Load(bg, "session:f", time.Hour)
		return errors.Is(errA, sessionstore.ErrNotFound) && errors.Is(errB, sessionstore.ErrNotFound)
	})
}

// commandsProcessed reads the server's count of commands.
func commandsProcessed(t *testing.T, srv *redistest.Server) int64 {
	t.Helper()
	var n int64
	info := srv.Client().Info(bg, "stats").Val()
	if _, err := fmt.Sscanf(info[indexOf(info, "total_commands_processed:"):], "total_commands_processed:%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return 0
}

func TestConcurrentWritersOfOneSessionThroughTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := provision(t, &RedisStore{Address: []string{srv.URL()}})
	b := provision(t, &RedisStore{Address: []string{srv.Addr()}, PoolSize: 4})
	if _, err := a.Patch(bg, "session:w", []string{`{"start":true}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if w%2 == 1 {
				s = b
			}
			for i := range each {
				if _, err := s.Load(bg, "session:w", time.Hour); err != nil {
					t.Errorf("Load: %v", err)
				}
				if _, err := s.Patch(bg, "session:w", []string{fmt.Sprintf(`{"w%d_%d":%d}`, w, i, i)}, sessionstore.PatchOptions{TTL: time.Hour}); err != nil {
					t.Errorf("Patch: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	var got map[string]any
	if err := json.Unmarshal([]byte(srv.Client().Get(bg, "session:w").Val()), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each+1 {
		t.Errorf("Redis holds %d keys, want %d: writes were lost", len(got), writers*each+1)
	}
}

func TestCoalescedPatchesApplyInOrder(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	// Each writer sets "last" and a key of its own; a patch that fails
	// (too large) in a batch leaves the others applied.
	const n = 50
	var wg sync.WaitGroup
	results := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, err := s.Patch(bg, "session:o", []string{fmt.Sprintf(`{"k%d":1}`, i)}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
			if err != nil {
				t.Errorf("Patch %d: %v", i, err)
			}
			results[i] = data
		}()
	}
	wg.Wait()
	final := loadData(s, "session:o")
	var m map[string]any
	if err := json.Unmarshal([]byte(final), &m); err != nil || len(m) != n {
		t.Fatalf("stored %s: %d keys, want %d", final, len(m), n)
	}
	// Every result is a state the session went through: it holds its own
	// key, and is a subset of the final data.
	for i, r := range results {
		var rm map[string]any
		if err := json.Unmarshal([]byte(r), &rm); err != nil || rm[fmt.Sprintf("k%d", i)] == nil {
			t.Errorf("result %d = %s lacks its own key", i, r)
		}
	}
}

func TestOutageFailsFastAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}, DialTimeout: caddy.Duration(time.Second)})
	if _, err := s.Patch(bg, "session:o", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if !s.pc.up.Load() {
		t.Fatal("not up")
	}
	srv.Stop()
	// The first calls fail on the connection; after them every call fails
	// at once, without the network.
	for i := 0; i < 10 && s.pc.up.Load(); i++ {
		_, err := s.Load(bg, "session:o", time.Hour)
		if err == nil || errors.Is(err, sessionstore.ErrNotFound) {
			t.Fatalf("Load with Redis down: %v", err)
		}
	}
	if s.pc.up.Load() {
		t.Fatal("still up after 10 failures")
	}
	if _, err := s.Load(bg, "session:o", time.Hour); !errors.Is(err, errRedisDown) {
		t.Errorf("Load while down = %v, want errRedisDown", err)
	}
	if _, err := s.Patch(bg, "session:o", []string{`{"b":1}`}, sessionstore.PatchOptions{TTL: time.Hour}); !errors.Is(err, errRedisDown) {
		t.Errorf("Patch while down = %v, want errRedisDown", err)
	}
	srv.Restart()
	eventually(t, "the store recovers", func() bool { return s.pc.up.Load() })
	if got := loadData(s, "session:o"); got != `{"a":1}` {
		t.Errorf("after the restart Load = %s", got)
	}
}

// TestCachedSessionFastPath: once a session's replies are cached, Load
// finds them in the connections' caches directly (which relies on how
// rueidis names the commands in the store: getCmd, hmgetCmd), with the
// data's normal form noted, and a change still reaches it.
func TestCachedSessionFastPath(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	for _, key := range []string{"session:f", "x{tag}y"} {
		subject := "alice"
		if _, err := s.Patch(bg, key, []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true, Scope: "site",
			Subject: &subject, Persist: sessionstore.PersistOff, UserAgent: "ua", Addr: "192.0.2.0/24"}); err != nil {
			t.Fatal(err)
		}
		wantMeta := sessionstore.Meta{Scope: "site", Subject: "alice", Persist: sessionstore.PersistOff, UserAgent: "ua", Addr: "192.0.2.0/24"}
		eventually(t, "the session is read", func() bool { return loadData(s, key) == `{"n":1}` })
		var f [nMeta]string
		eventually(t, "the replies are cached", func() bool {
			loadData(s, key) // through the cache once the write's mark is gone
			_, canon, ok := s.pc.cachedSession(key, metaKey(key), time.Now().UnixMilli(), &f)
			return ok && canon
		})
		if m := parseMeta(&f); m != wantMeta {
			t.Errorf("cached metadata %+v, want %+v", m, wantMeta)
		}
		e, err := s.Load(bg, key, time.Hour)
		if err != nil || e.Data != `{"n":1}` || e.Meta != wantMeta {
			t.Fatalf("Load = %+v, %v", e, err)
		}
		if _, err := s.Patch(bg, key, []string{`{"n":2}`}, sessionstore.PatchOptions{TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the change is read", func() bool { return loadData(s, key) == `{"n":2}` })
	}
	// Stored text not in normal form is normalized on a cached read too.
	srv.Client().Set(bg, "session:g", `{ "b": 1, "a": 2 }`, time.Hour)
	want, _ := json.Marshal(map[string]int{"a": 2, "b": 1})
	eventually(t, "the session is read", func() bool { return loadData(s, "session:g") != "" })
	first := loadData(s, "session:g")
	eventually(t, "the replies are cached", func() bool {
		loadData(s, "session:g")
		var f [nMeta]string
		_, canon, ok := s.pc.cachedSession("session:g", metaKey("session:g"), time.Now().UnixMilli(), &f)
		return ok && !canon && f == [nMeta]string{}
	})
	if got := loadData(s, "session:g"); got != first || got == `{ "b": 1, "a": 2 }` {
		t.Fatalf("cached read = %s, first read %s (want normalized, e.g. %s)", got, first, want)
	}
}
