package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
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
		c.get("/?hdr=" + url.QueryEscape("X-Utf-Set:"+patch))
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

// gatedUpstream is an app whose answers the test releases one by one: a
// request to /gate?name=N waits until release(N), then answers with the
// session instructions of its query, as startUpstream does. It makes the
// order in which concurrent responses complete the test's choice.
type gatedUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	gates map[string]chan struct{}
	seen  map[string]chan struct{} // closed when the request has arrived
}

func startGatedUpstream(t *testing.T) *gatedUpstream {
	t.Helper()
	base := startUpstream(t)
	g := &gatedUpstream{gates: map[string]chan struct{}{}, seen: map[string]chan struct{}{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := r.URL.Query().Get("gate"); name != "" {
			close(g.arrived(name))
			<-g.gate(name)
		}
		base.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gatedUpstream) gate(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[name] == nil {
		g.gates[name] = make(chan struct{})
	}
	return g.gates[name]
}

func (g *gatedUpstream) arrived(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen[name] == nil {
		g.seen[name] = make(chan struct{})
	}
	return g.seen[name]
}

func (g *gatedUpstream) release(name string) { close(g.gate(name)) }

// TestRegenerateRaceLosesNothing: a request that loaded the session just
// before a login regenerated its ID, and writes after, adds its change to
// the session under the new ID; its response sets no cookie, so the
// browser (a cookie jar applying Set-Cookie in the order responses
// complete) keeps the new one and stays logged in. Ten runs.
func TestRegenerateRaceLosesNothing(t *testing.T) {
	up := startGatedUpstream(t)
	loadCaddy(t, up.Server, `session
reverse_proxy {upstream}`)
	for run := range 10 {
		c := newClient(t)
		c.get("/" + set(`{"visits":1}`))
		slow := fmt.Sprintf("slow%d", run)
		done := make(chan *http.Response)
		go func() {
			// Loads the session, then waits at the app; writes after.
			resp, _ := c.get("/?gate=" + slow + "&" + strings.TrimPrefix(set(`{"cart":"book"}`), "?"))
			done <- resp
		}()
		<-up.arrived(slow)
		login, _ := c.get("/?regenerate=true&" + strings.TrimPrefix(set(`{"user":"kim"}`), "?"))
		if len(setCookies(login, "session")) != 1 {
			t.Fatalf("run %d: the login set no cookie: %q", run, login.Header.Values("Set-Cookie"))
		}
		up.release(slow)
		late := <-done
		if cks := setCookies(late, "session"); len(cks) != 0 {
			t.Errorf("run %d: the late response set a cookie %q, which would replace the login's", run, late.Header.Values("Set-Cookie"))
		}
		_, s := c.get("/")
		if s.get("X-Session-New") != "false" || s.get("X-Session-Data") != `{"cart":"book","user":"kim","visits":1}` {
			t.Errorf("run %d: after the race the browser's session is %s %s, want the login with the cart", run, s.get("X-Session-New"), s.get("X-Session-Data"))
		}
	}
}

// TestOldCookieDuringGrace: a request that still carries the ID a login
// replaced gets no Set-Cookie at all (the browser keeps its new cookie),
// a new empty session, and its changes are dropped and counted; it is
// never handed the new ID. After the grace, the old cookie is an unknown
// one like any other.
func TestOldCookieDuringGrace(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session session_name grace cookie_name grace regenerate_grace 2s
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/?hdr=" + url.QueryEscape(`X-Grace-Set:{"visits":1}`))
	oldID := c.cookie("grace")
	c.get("/?hdr=" + url.QueryEscape("X-Grace-Regenerate:true") + "&hdr=" + url.QueryEscape(`X-Grace-Set:{"user":"kim"}`))
	newID := c.cookie("grace")
	if newID == oldID || newID == "" {
		t.Fatalf("the login did not regenerate: %q, %q", oldID, newID)
	}
	before := metricValue(t, "caddy_session_refused_total", `session_name="grace"`, `reason="superseded"`)
	resp, s := newClient(t).get("/?hdr="+url.QueryEscape(`X-Grace-Set:{"user":"mallory"}`), "Cookie: grace="+oldID)
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("a request with the replaced ID got Set-Cookie %q", got)
	}
	if s.get("X-Grace-New") != "true" || s.get("X-Grace-Data") != "{}" || s.get("X-Grace-Id") == newID || s.get("X-Grace-Id") == oldID {
		t.Errorf("a request with the replaced ID saw %v", s.Header)
	}
	if after := metricValue(t, "caddy_session_refused_total", `session_name="grace"`, `reason="superseded"`); after != before+1 {
		t.Errorf("refused{superseded} went from %v to %v", before, after)
	}
	if _, s = c.get("/"); s.get("X-Grace-Data") != `{"user":"kim","visits":1}` {
		t.Errorf("the session under the new ID: %s", s.get("X-Grace-Data"))
	}
	time.Sleep(2200 * time.Millisecond)
	resp, s = newClient(t).get("/", "Cookie: grace="+oldID)
	if cks := setCookies(resp, "grace"); len(cks) != 1 || cks[0].MaxAge >= 0 || s.get("X-Grace-New") != "true" {
		t.Errorf("the old cookie after the grace: Set-Cookie %q, new %s", resp.Header.Values("Set-Cookie"), s.get("X-Grace-New"))
	}
}

// TestSitesDoNotShareSessions: two sites in one Caddy, each with a bare
// `session` on the default store, never accept each other's sessions, not
// even when the client claims the other site's host; the cookie is left
// alone there. With the same scope they share on purpose.
func TestSitesDoNotShareSessions(t *testing.T) {
	up := startUpstream(t)
	twoSites := func(sessionLine string) {
		site := func(port int) string {
			return fmt.Sprintf(":%d {\n\t%s\n\treverse_proxy %s\n}\n", port, sessionLine, strings.TrimPrefix(up.URL, "http://"))
		}
		loadCaddyConfig(t, fmt.Sprintf(globalOptions, "")+site(caddyPort)+site(caddyPort2))
	}
	twoSites("session")
	c := newClient(t)
	c.get("/" + set(`{"user":"admin"}`))
	id := c.cookie("session")
	for _, host := range []string{"", caddyAddr} {
		var header []string
		if host != "" {
			header = append(header, "Host: "+host)
		}
		resp, s := c.on2("/", header...)
		if s.get("X-Session-New") != "true" || s.get("X-Session-Data") != "{}" || s.get("X-Session-Id") == id {
			t.Errorf("site 2 (Host %q) accepted site 1's session: %v", host, s.Header)
		}
		if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
			t.Errorf("site 2 (Host %q) touched site 1's cookie: %q", host, got)
		}
	}
	if _, s := c.get("/"); s.get("X-Session-Data") != `{"user":"admin"}` {
		t.Errorf("site 1 lost its session: %v", s.Header)
	}
	// Shared on purpose.
	twoSites("session scope app")
	c = newClient(t)
	c.get("/" + set(`{"user":"kim"}`))
	if _, s := c.on2("/"); s.get("X-Session-Data") != `{"user":"kim"}` {
		t.Errorf("with one scope, site 2 did not accept site 1's session: %v", s.Header)
	}
}

// TestDoubleLoginKeepsOneSession: a login form sent twice (two requests
// that loaded the session, each regenerating it) ends with one session
// holding the pre-login data and both changes, and the browser's cookie
// names it; the second response sets no cookie, and never a deletion.
func TestDoubleLoginKeepsOneSession(t *testing.T) {
	up := startGatedUpstream(t)
	loadCaddy(t, up.Server, `session
reverse_proxy {upstream}`)
	for run := range 5 {
		c := newClient(t)
		c.get("/" + set(`{"cart":"book"}`))
		first, second := fmt.Sprintf("first%d", run), fmt.Sprintf("second%d", run)
		done := make(chan *http.Response, 2)
		for _, g := range []string{first, second} {
			go func() {
				resp, _ := c.get("/?gate=" + g + "&regenerate=true&" + strings.TrimPrefix(set(`{"`+g+`":true}`), "?"))
				done <- resp
			}()
		}
		<-up.arrived(first)
		<-up.arrived(second)
		up.release(first)
		r1 := <-done
		up.release(second)
		r2 := <-done
		if len(setCookies(r1, "session")) != 1 {
			t.Fatalf("run %d: the first login set no cookie: %q", run, r1.Header.Values("Set-Cookie"))
		}
		if got := r2.Header.Values("Set-Cookie"); len(got) != 0 {
			t.Errorf("run %d: the second login set a cookie %q", run, got)
		}
		_, s := c.get("/")
		want := fmt.Sprintf(`{"cart":"book","%s":true,"%s":true}`, first, second)
		if s.get("X-Session-New") != "false" || s.get("X-Session-Data") != want {
			t.Errorf("run %d: after a double login the session is %s %s, want %s", run, s.get("X-Session-New"), s.get("X-Session-Data"), want)
		}
	}
}

// TestLogoutRacingALoginIsNotLost: a logout that loaded the session just
// before a login regenerated it still ends the session.
func TestLogoutRacingALoginIsNotLost(t *testing.T) {
	up := startGatedUpstream(t)
	loadCaddy(t, up.Server, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"cart":"book"}`))
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.get("/?gate=logout&clear=true")
		done <- resp
	}()
	<-up.arrived("logout")
	login, _ := c.get("/?regenerate=true&" + strings.TrimPrefix(set(`{"user":"kim"}`), "?"))
	newID := setCookies(login, "session")
	if len(newID) != 1 {
		t.Fatalf("the login set no cookie")
	}
	up.release("logout")
	<-done
	_, s := newClient(t).get("/", "Cookie: session="+newID[0].Value)
	if s.get("X-Session-New") != "true" {
		t.Errorf("the logout was lost: the session under the login's ID is %s", s.get("X-Session-Data"))
	}
}
