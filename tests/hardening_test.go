package tests

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestConnectionHeaderCannotDropSessionHeaders: a client that lists the
// session headers in Connection (so that an HTTP/1.1 proxy treats them as
// hop-by-hop and deletes them) still leaves the upstream with the
// gateway's headers, signature included, in every spelling.
func TestConnectionHeaderCannotDropSessionHeaders(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session secret `+secretA+`
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"kim"}`))
	for _, conn := range []string{
		"keep-alive, X-Session-Id, X-Session-Data, X-Session-New, X-Session-Signature",
		"x-session-id, X-SESSION-DATA",
		"X_Session_New, x.session.signature, keep-alive",
	} {
		resp, s := c.get("/", "Connection: "+conn)
		if resp.StatusCode != 200 {
			t.Fatalf("Connection %q: status %d", conn, resp.StatusCode)
		}
		for _, name := range []string{"X-Session-Id", "X-Session-Data", "X-Session-New", "X-Session-Signature"} {
			if s.get(name) == "" {
				t.Errorf("Connection %q: the upstream got no %s: %v", conn, name, s.Header)
			}
		}
		if s.get("X-Session-Data") != `{"user":"kim"}` {
			t.Errorf("Connection %q: data %q", conn, s.get("X-Session-Data"))
		}
	}
}

// TestDuplicateSessionCookies: a cookie tossed in beside the real one
// neither hides it nor gets it deleted; with several cookies of the name
// no deletion cookie is ever sent.
func TestDuplicateSessionCookies(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	victim := newClient(t)
	victim.get("/" + set(`{"user":"victim"}`))
	real := victim.cookie("session")
	planted := strings.Repeat("ab", 16) // well-formed, not in the store

	for _, tc := range []struct {
		name, cookie string
		wantReal     bool
	}{
		{"planted first", "session=" + planted + "; session=" + real, true},
		{"planted after", "session=" + real + "; session=" + planted, true},
		{"malformed and planted first", "session=junk; session=" + planted + "; session=" + real, true},
		{"two unknown", "session=" + planted + "; session=" + strings.Repeat("cd", 16), false},
		{"two malformed", "session=x; session=y", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, s := newClient(t).get("/", "Cookie: "+tc.cookie)
			if got := s.get("X-Session-Id") == real; got != tc.wantReal {
				t.Errorf("served the real session: %v, want %v (%v)", got, tc.wantReal, s.Header)
			}
			if cks := setCookies(resp, "session"); len(cks) != 0 {
				t.Errorf("several cookies of the name got Set-Cookie %v", resp.Header.Values("Set-Cookie"))
			}
		})
	}
	// One unknown cookie alone is still deleted.
	resp, _ := newClient(t).get("/", "Cookie: session="+planted)
	if cks := setCookies(resp, "session"); len(cks) != 1 || cks[0].MaxAge >= 0 {
		t.Errorf("a lone unknown cookie: Set-Cookie %v, want a deletion", resp.Header.Values("Set-Cookie"))
	}
}

// TestRotationReissuesAtOnce: with sessioncookie, which is never renewed, a
// cookie signed by an older secret is re-signed with the first on the very
// next response, so removing the old secret later logs nobody out.
func TestRotationReissuesAtOnce(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name rot sessioncookie secret `+secretA+`
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"who":"me"}`))
	if !signedBy(c.cookie("rot"), "rot", secretA) {
		t.Fatalf("cookie %q not signed with A", c.cookie("rot"))
	}

	loadCaddy(t, up, `session cookie_name rot sessioncookie secret `+secretB+` `+secretA+`
reverse_proxy {upstream}`)
	resp, s := c.get("/")
	if s.get("X-Session-Data") != `{"who":"me"}` {
		t.Fatalf("the old cookie no longer works: %v", s.Header)
	}
	if cks := setCookies(resp, "rot"); len(cks) != 1 || !signedBy(cks[0].Value, "rot", secretB) || cks[0].MaxAge != 0 {
		t.Fatalf("no re-signed session cookie on the first response: %q", resp.Header.Values("Set-Cookie"))
	}
	resp, _ = c.get("/")
	if cks := setCookies(resp, "rot"); len(cks) != 0 {
		t.Errorf("a cookie signed with the first secret was re-issued again: %q", resp.Header.Values("Set-Cookie"))
	}

	loadCaddy(t, up, `session cookie_name rot sessioncookie secret `+secretB+`
reverse_proxy {upstream}`)
	if _, s = c.get("/"); s.get("X-Session-Data") != `{"who":"me"}` {
		t.Errorf("removing the old secret logged the session out: %v", s.Header)
	}
}

// TestCookieResponsesArePrivate: a response that sets the session cookie
// is private whatever the upstream allowed shared caches; one without a
// cookie keeps the upstream's caching headers.
func TestCookieResponsesArePrivate(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name cc
reverse_proxy {upstream}`)
	c := newClient(t)
	public := "&hdr=" + url.QueryEscape("Cache-Control:public, max-age=600, s-maxage=600")
	resp, _ := c.get("/" + set(`{"a":1}`) + public)
	cc := strings.ToLower(strings.Join(resp.Header.Values("Cache-Control"), ", "))
	if !strings.Contains(cc, "private") || strings.Contains(cc, "public") || strings.Contains(cc, "s-maxage") || !strings.Contains(cc, "max-age=600") {
		t.Errorf("a response setting the cookie: Cache-Control %q, want private and max-age=600 only", cc)
	}
	if v := resp.Header.Values("Vary"); len(v) != 1 || v[0] != "Cookie" {
		t.Errorf("Vary %q, want Cookie", v)
	}
	resp, _ = c.get("/?x=1" + public)
	if cc := strings.Join(resp.Header.Values("Cache-Control"), ", "); cc != "public, max-age=600, s-maxage=600" {
		t.Errorf("a response without a cookie: Cache-Control %q, want the upstream's", cc)
	}
}

// TestSetThatIsNotUTF8IsRefused: Latin-1 bytes in X-Session-Set (what some
// frameworks send for é) are refused and counted, never stored as U+FFFD.
func TestSetThatIsNotUTF8IsRefused(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session session_name utf cookie_name utf
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/?hdr=" + url.QueryEscape(`X-Utf-Set:{"name":"ok"}`))
	before := metricValue(t, "caddy_session_refused_total", `session_name="utf"`, `reason="invalid_utf8"`)
	resp, _ := c.get("/?hdr=" + url.QueryEscape("X-Utf-Set:{\"name\":\"caf\xe9\"}"))
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	_, s := c.get("/")
	if got := s.get("X-Utf-Data"); got != `{"name":"ok"}` {
		t.Errorf("data after a Latin-1 Set: %q, want it unchanged", got)
	}
	if after := metricValue(t, "caddy_session_refused_total", `session_name="utf"`, `reason="invalid_utf8"`); after != before+1 {
		t.Errorf("caddy_session_refused_total{reason=invalid_utf8} went from %v to %v", before, after)
	}
	// The same text in UTF-8, or as a \u escape, is stored.
	for _, patch := range []string{`{"name":"café"}`, `{"name":"caf\u00e9"}`} {
		c.get("/" + set(patch))
		if _, s = c.get("/"); s.get("X-Utf-Data") != `{"name":"caf\u00e9"}` {
			t.Errorf("after %s: %q", patch, s.get("X-Utf-Data"))
		}
	}
}

// gunicornLineLimit is the longest request header line gunicorn accepts
// (limit_request_field_size, name and value included), the strictest of
// the common app servers.
const gunicornLineLimit = 8190

// TestDefaultMaxSizeFitsAppServers: a session at the default max_size
// reaches an upstream that refuses header lines as gunicorn does, and a
// change past it is refused rather than stored.
func TestDefaultMaxSizeFitsAppServers(t *testing.T) {
	strict := startUpstreamWith(t, func(w http.ResponseWriter, r *http.Request) bool {
		for name, values := range r.Header {
			for _, v := range values {
				if len(name)+2+len(v) > gunicornLineLimit {
					http.Error(w, "Request Header Fields Too Large: "+name, http.StatusBadRequest)
					return false
				}
			}
		}
		return true
	})
	loadCaddy(t, strict, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	const frame = len(`{"k":""}`)
	const defaultMaxSize = 8000
	resp, _ := c.get("/" + set(`{"k":"`+strings.Repeat("x", defaultMaxSize-frame)+`"}`))
	if resp.StatusCode != 200 || len(setCookies(resp, "session")) != 1 {
		t.Fatalf("filling the session to the default max_size: status %d, cookies %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	resp, s := c.get("/")
	if resp.StatusCode != 200 || len(s.get("X-Session-Data")) != defaultMaxSize {
		t.Fatalf("a session at the default max_size: status %d, data of %d bytes", resp.StatusCode, len(s.get("X-Session-Data")))
	}
	c.get("/" + set(`{"k":"`+strings.Repeat("y", defaultMaxSize-frame+1)+`"}`))
	if _, s = c.get("/"); !strings.Contains(s.get("X-Session-Data"), "xxx") {
		t.Errorf("a change past the default max_size was stored")
	}
}

// TestCookieNameWithSpaces: "session =<id>" is read as browsers and
// net/http read it, and removed from what the upstream gets.
func TestCookieNameWithSpaces(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"kim"}`))
	id := c.cookie("session")
	for _, cookie := range []string{"session =" + id, "a=1; session = " + id + " ; b=2"} {
		_, s := newClient(t).get("/", "Cookie: "+cookie)
		if s.get("X-Session-Id") != id {
			t.Errorf("Cookie %q: session %q, want %q", cookie, s.get("X-Session-Id"), id)
		}
		if strings.Contains(s.get("Cookie"), id) {
			t.Errorf("Cookie %q: the upstream got the session cookie: %q", cookie, s.get("Cookie"))
		}
	}
}

// startUpstreamWith is startUpstream behind a gate that may answer first
// (and then returns false), as a stricter app server would.
func startUpstreamWith(t *testing.T, gate func(w http.ResponseWriter, r *http.Request) bool) *httptest.Server {
	t.Helper()
	base := startUpstream(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate(w, r) {
			base.Config.Handler.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}
