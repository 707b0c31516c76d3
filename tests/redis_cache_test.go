package tests

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/internal/redistest"
)

// Two Caddy instances on one Redis, each with its client-side cache of
// session reads: what one changes, the other serves on its next request.

// onNextRequest checks that cond holds on the next request, or at the
// latest within 50 ms (500 ms under the race detector): what one instance changed or deleted in Redis, the
// other serves at once. Redis sends the invalidation to the other
// instance's connection as it runs the change, before the changing
// instance has its answer; the other instance's reader applies it as soon
// as it is scheduled, which on a loaded machine can be a moment after the
// next request arrives.
func onNextRequest(t *testing.T, what string, cond func() bool) {
	t.Helper()
	bound := 50 * time.Millisecond
	if raceEnabled {
		bound = 500 * time.Millisecond
	}
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Errorf("%s: not within %v", what, bound)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	if d := time.Since(start); d > 5*time.Millisecond {
		t.Logf("%s: seen after %v", what, d)
	}
}

// within polls cond up to a generous bound, for what Redis does on its own
// time: a key's expiry is noticed by Redis's expiry cycle (every 100 ms),
// and its invalidation sent then.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 3s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisCacheTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "")
	c := newClient(t)
	rc := srv.Client()
	ctx := context.Background()

	c.get("/" + set(`{"n":1}`))
	id := c.cookie("session")
	// Both instances read it, so both cache it.
	for range 3 {
		if _, s := c.on2("/"); s.get("X-Session-Data") != `{"n":1}` {
			t.Fatalf("second instance: %s", s.get("X-Session-Data"))
		}
		if _, s := c.get("/"); s.get("X-Session-Data") != `{"n":1}` {
			t.Fatalf("first instance: %s", s.get("X-Session-Data"))
		}
	}

	// A change through one is seen through the other.
	c.get("/" + set(`{"n":2}`))
	onNextRequest(t, "a change through the first, seen through the second", func() bool {
		_, s := c.on2("/")
		return s.get("X-Session-Data") == `{"n":2}`
	})
	c.on2("/" + set(`{"n":3}`))
	onNextRequest(t, "a change through the second, seen through the first", func() bool {
		_, s := c.get("/")
		return s.get("X-Session-Data") == `{"n":3}`
	})

	// An admin DELETE ends it on both.
	if status, body := adminDo(t, http.MethodDelete, "/session/session/"+id); status != http.StatusOK && status != http.StatusNoContent {
		t.Fatalf("admin DELETE: %d %s", status, body)
	}
	for name, get := range map[string]func(string, ...string) (*http.Response, seen){"first": c.get, "second": c.on2} {
		onNextRequest(t, "the admin DELETE, through the "+name, func() bool {
			_, s := get("/", "Cookie: session="+id)
			return s.get("X-Session-New") == "true"
		})
	}

	// A session expiring in Redis ends on both.
	c2 := newClient(t)
	c2.get("/" + set(`{"e":1}`))
	id2 := c2.cookie("session")
	c2.on2("/")
	c2.get("/")
	rc.PExpire(ctx, "session:"+id2, 100*time.Millisecond)
	time.Sleep(150 * time.Millisecond)
	for name, get := range map[string]func(string, ...string) (*http.Response, seen){"first": c2.get, "second": c2.on2} {
		within(t, "the expiry, through the "+name, func() bool {
			_, s := get("/", "Cookie: session="+id2)
			return s.get("X-Session-New") == "true"
		})
	}

	// No session survives a FLUSHALL, in either cache.
	c3 := newClient(t)
	c3.get("/" + set(`{"f":1}`))
	id3 := c3.cookie("session")
	c3.on2("/")
	c3.get("/")
	rc.FlushAll(ctx)
	for name, get := range map[string]func(string, ...string) (*http.Response, seen){"first": c3.get, "second": c3.on2} {
		onNextRequest(t, "FLUSHALL, through the "+name, func() bool {
			_, s := get("/", "Cookie: session="+id3)
			return s.get("X-Session-New") == "true"
		})
	}
}

func TestRedisOutageFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	up := startUpstream(t)
	loadTwoInstances(t, up, srv.URL(), "")
	c := newClient(t)
	c.get("/" + set(`{"user":"kim"}`))
	id := c.cookie("session")

	srv.Stop()
	// After the first failures, requests are answered (on_error open: a
	// fresh session) without waiting for Redis's timeouts (300ms here).
	for range 5 {
		c.get("/", "Cookie: session="+id)
	}
	start := time.Now()
	const n = 20
	for range n {
		if _, s := c.get("/", "Cookie: session="+id); s.get("X-Session-New") != "true" {
			t.Fatalf("with Redis down: new %q", s.get("X-Session-New"))
		}
	}
	if per := time.Since(start) / n; per > 250*time.Millisecond {
		t.Errorf("with Redis down a request took %v on average: it waited for the timeout", per)
	}

	srv.Restart()
	within(t, "the session is served again after Redis returns", func() bool {
		_, s := c.get("/", "Cookie: session="+id)
		return s.get("X-Session-Data") == `{"user":"kim"}`
	})
}
