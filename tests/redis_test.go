package tests

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/internal/redistest"
)

// The second instance (caddyBase2): another server of the in-process Caddy,
// with its own session handler and its own store module on the same Redis.

// loadTwoInstances loads two sites, on caddyPort and caddyPort2, each with a session
// handler on Redis at redisURL, in front of upstream.
func loadTwoInstances(t *testing.T, up *httptest.Server, redisURL, storeOptions string) {
	t.Helper()
	site := func(port int, poolSize int) string {
		// The two listen on different ports, so they share sessions by
		// naming one scope, as the README's two-instance setup does.
		return fmt.Sprintf(`:%d {
	session {
		scope twin
		store redis {
			address %s
			pool_size %d
			dial_timeout 300ms
			read_timeout 300ms
			write_timeout 300ms
			%s
		}
	}
	reverse_proxy %s
}
`, port, redisURL, poolSize, storeOptions, strings.TrimPrefix(up.URL, "http://"))
	}
	// Different pool sizes give the two instances two Redis clients, as
	// two Caddy processes would have.
	loadCaddyConfig(t, fmt.Sprintf(globalOptions, "")+site(caddyPort, 8)+site(caddyPort2, 9))
}

// on2 requests path from the second instance.
func (c *client) on2(path string, header ...string) (*http.Response, seen) {
	return c.getURL(caddyBase2+path, header...)
}

func TestRedisTwoInstancesShareSessions(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "")
	c := newClient(t) // the jar sends localhost cookies to both ports

	resp, s := c.get("/login" + set(`{"user":"alice"}`) + "&regenerate=true")
	if len(setCookies(resp, "session")) != 1 {
		t.Fatalf("login through the first instance set no cookie")
	}
	id := c.cookie("session")

	_, s = c.on2("/")
	if s.get("X-Session-Id") != id || s.get("X-Session-Data") != `{"user":"alice"}` || s.get("X-Session-New") != "false" {
		t.Fatalf("the second instance saw id %s data %s new %s", s.get("X-Session-Id"), s.get("X-Session-Data"), s.get("X-Session-New"))
	}
	c.on2("/" + set(`{"cart":[1]}`))
	_, s = c.get("/")
	if s.get("X-Session-Data") != `{"cart":[1],"user":"alice"}` {
		t.Errorf("a change through the second instance, read through the first: %s", s.get("X-Session-Data"))
	}

	// In Redis: sanic_session's layout, with the TTL of expiry.
	rc := srv.Client()
	ctx := context.Background()
	if got := rc.Get(ctx, "session:"+id).Val(); got != `{"cart":[1],"user":"alice"}` {
		t.Errorf("Redis holds %q", got)
	}
	if ttl := rc.TTL(ctx, "session:"+id).Val(); ttl < 29*24*time.Hour {
		t.Errorf("TTL %v, want about 30 days", ttl)
	}

	// Regenerate through the second instance moves the key and its TTL.
	resp, _ = c.on2("/?regenerate=true")
	newID := c.cookie("session")
	if newID == id || len(setCookies(resp, "session")) != 1 {
		t.Fatal("regenerate through the second instance gave no new ID")
	}
	if rc.Exists(ctx, "session:"+id).Val() != 0 || rc.Get(ctx, "session:"+newID).Val() != `{"cart":[1],"user":"alice"}` {
		t.Error("regenerate did not move the key")
	}
	if ttl := rc.TTL(ctx, "session:"+newID).Val(); ttl < 29*24*time.Hour {
		t.Errorf("regenerated key TTL %v", ttl)
	}

	// Logout through the first: gone for both.
	c.get("/?clear=true")
	_, s = c.on2("/", "Cookie: session="+newID)
	if s.get("X-Session-New") != "true" || rc.Exists(ctx, "session:"+newID).Val() != 0 {
		t.Errorf("after clear the second instance still serves the session")
	}
}

func TestRedisConcurrentPatchesThroughBothInstances(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "")
	c := newClient(t)
	c.get("/" + set(`{"start":true}`))

	const n = 60
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/" + set(fmt.Sprintf(`{"k%d":%d}`, i, i))
			if i%2 == 0 {
				c.get(path)
			} else {
				c.on2(path)
			}
		}()
	}
	wg.Wait()
	_, s := c.on2("/")
	data := mustJSON(t, s.get("X-Session-Data"))
	for i := 0; i < n; i++ {
		if data[fmt.Sprintf("k%d", i)] == nil {
			t.Errorf("k%d lost", i)
		}
	}
}

func TestRedisSanicSessionInterop(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "")
	rc := srv.Client()
	ctx := context.Background()

	// A session written by a sanic_session app.
	const id = "4f1c2a9be3d84c7f9a1b2c3d4e5f6a7b"
	rc.SetEx(ctx, "session:"+id, `{"user": "sanic", "visits": 3}`, time.Hour)
	c := newClient(t)
	_, s := c.get("/", "Cookie: session="+id)
	if s.get("X-Session-Id") != id || s.get("X-Session-Data") != `{"user":"sanic","visits":3}` {
		t.Fatalf("a sanic_session key served as id %s data %s", s.get("X-Session-Id"), s.get("X-Session-Data"))
	}
	// And what Caddy writes, sanic_session reads: JSON text, with a TTL.
	c.get("/"+set(`{"visits":4}`), "Cookie: session="+id)
	if got := rc.Get(ctx, "session:"+id).Val(); got != `{"user":"sanic","visits":4}` {
		t.Errorf("Redis holds %q", got)
	}
	if ttl := rc.TTL(ctx, "session:"+id).Val(); ttl <= 0 {
		t.Errorf("TTL %v after a write", ttl)
	}
}

func TestRedisDownOnErrorOpen(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "on_error open")
	c := newClient(t)
	c.get("/" + set(`{"user":"ann"}`))
	id := c.cookie("session")

	srv.Stop() // saves its data, as an orderly restart does
	for _, get := range []func(string, ...string) (*http.Response, seen){c.get, c.on2} {
		resp, s := get("/" + set(`{"user":"mallory"}`))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("with Redis down: status %d, want 200 (on_error open)", resp.StatusCode)
		}
		if s.get("X-Session-New") != "true" || s.get("X-Session-Id") == id {
			t.Errorf("with Redis down the upstream got id %s new %s, want a fresh session", s.get("X-Session-Id"), s.get("X-Session-New"))
		}
		for _, ck := range setCookies(resp, "session") {
			t.Errorf("with Redis down the client's cookie was replaced or deleted: %v", ck)
		}
	}
	if c.cookie("session") != id {
		t.Fatal("the client lost its cookie")
	}

	srv.Restart()
	// The store recovers by itself; the session is as it was before the
	// outage, and nothing written while Redis was down replaced it.
	var s seen
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, s = c.on2("/")
		if s.get("X-Session-New") == "false" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.get("X-Session-Id") != id || s.get("X-Session-Data") != `{"user":"ann"}` {
		t.Errorf("after Redis came back: id %s data %s, want %s and ann", s.get("X-Session-Id"), s.get("X-Session-Data"), id)
	}
}

func TestRedisDownOnErrorClosed(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "on_error closed")
	c := newClient(t)
	c.get("/" + set(`{"user":"ann"}`))

	srv.Stop()
	resp, _ := c.get("/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("with Redis down and on_error closed: status %d, want 503", resp.StatusCode)
	}

	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, s := c.on2("/")
		if resp.StatusCode == http.StatusOK {
			if s.get("X-Session-Data") != `{"user":"ann"}` {
				t.Errorf("after Redis came back: data %s", s.get("X-Session-Data"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after Redis came back", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisUnreadableSessionIsNotReplaced: when the store cannot load a
// client's session (here: its value is not JSON; a timeout is the same),
// the upstream's changes must not replace the client's cookie, and a logout
// must still end the session.
func TestRedisUnreadableSessionIsNotReplaced(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "on_error open")
	rc := srv.Client()
	ctx := context.Background()
	const id = "00112233445566778899aabbccddeeff"
	rc.Set(ctx, "session:"+id, "not json", time.Hour)

	c := newClient(t)
	resp, s := c.get("/"+set(`{"csrf":"x"}`)+"&regenerate=true", "Cookie: session="+id)
	if resp.StatusCode != 200 || s.get("X-Session-New") != "true" {
		t.Fatalf("status %d, new %s", resp.StatusCode, s.get("X-Session-New"))
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("the changes replaced the client's cookie: %q", got)
	}
	if got := rc.Get(ctx, "session:"+id).Val(); got != "not json" {
		t.Errorf("the stored session was overwritten: %q", got)
	}

	resp, _ = c.get("/?clear=true", "Cookie: session="+id)
	if line := rawSetCookie(t, resp, "session"); !strings.Contains(line, "Max-Age=0") {
		t.Errorf("a logout of an unreadable session did not delete the cookie: %q", line)
	}
	if rc.Exists(ctx, "session:"+id).Val() != 0 {
		t.Error("a logout of an unreadable session did not delete it")
	}
}
