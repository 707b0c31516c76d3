package tests

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestTwoSessionsSideBySide(t *testing.T) {
	up := startUpstream(t)
	// Both use the default memory store, so they need different prefixes,
	// as sanic_session asks.
	loadCaddy(t, up, `session cookie_name sid
session cookie_name alt session_name alt_session prefix alt:
reverse_proxy {upstream}`)
	c := newClient(t)

	q := url.Values{"set": {`{"who":"main"}`}, "alt_set": {`{"who":"alt"}`}}
	resp, s := c.get("/?" + q.Encode())
	if len(setCookies(resp, "sid")) != 1 || len(setCookies(resp, "alt")) != 1 {
		t.Fatalf("want both cookies set, got %q", resp.Header.Values("Set-Cookie"))
	}
	if s.get("X-Session-Id") == s.get("X-Alt-Session-Id") {
		t.Error("the two sessions share an ID")
	}

	_, s = c.get("/")
	if s.get("X-Session-Data") != `{"who":"main"}` || s.get("X-Alt-Session-Data") != `{"who":"alt"}` {
		t.Errorf("data: session %s, alt_session %s", s.get("X-Session-Data"), s.get("X-Alt-Session-Data"))
	}
	if s.get("X-Session-Id") != c.cookie("sid") || s.get("X-Alt-Session-Id") != c.cookie("alt") {
		t.Error("IDs do not match the cookies")
	}

	// Clearing one leaves the other.
	resp, _ = c.get("/?clear=true")
	if line := rawSetCookie(t, resp, "sid"); !strings.Contains(line, "Max-Age=0") {
		t.Errorf("clear did not delete sid: %q", line)
	}
	if len(setCookies(resp, "alt")) != 0 {
		t.Error("clearing session touched alt_session's cookie")
	}
	_, s = c.get("/")
	if s.get("X-Session-Data") != "{}" || s.get("X-Alt-Session-Data") != `{"who":"alt"}` {
		t.Errorf("after clear: session %s, alt_session %s", s.get("X-Session-Data"), s.get("X-Alt-Session-Data"))
	}
}

func TestConcurrentPatchesLoseNothing(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"start":true}`))

	const n = 64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := c.get("/" + set(fmt.Sprintf(`{"k%d":%d}`, i, i)))
			if resp.StatusCode != 200 {
				t.Errorf("request %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()

	_, s := c.get("/")
	data := mustJSON(t, s.get("X-Session-Data"))
	for i := 0; i < n; i++ {
		if data[fmt.Sprintf("k%d", i)] == nil {
			t.Errorf("key k%d lost; data %s", i, s.get("X-Session-Data"))
		}
	}
	if data["start"] != true {
		t.Errorf("key start lost; data %s", s.get("X-Session-Data"))
	}
}

func TestReloadKeepsSessions(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name keep
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"frank"}`))
	id := c.cookie("keep")

	// A changed config: new options, an extra handler. The store is
	// shared across the reload by name.
	loadCaddy(t, up, `session cookie_name keep expiry 7200 samesite lax
header X-Reloaded yes
reverse_proxy {upstream}`)
	resp, s := c.get("/")
	if resp.Header.Get("X-Reloaded") != "yes" {
		t.Fatal("the new config is not running")
	}
	if s.get("X-Session-Id") != id || s.get("X-Session-Data") != `{"user":"frank"}` {
		t.Errorf("after reload: id %s data %s, want %s and the user", s.get("X-Session-Id"), s.get("X-Session-Data"), id)
	}
}
