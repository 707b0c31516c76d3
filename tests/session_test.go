package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewVisitorGetsSessionHeadersButNoCookie(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)

	resp, s := c.get("/")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("a visitor without data got Set-Cookie %q", got)
	}
	if id := s.get("X-Session-Id"); !isID(id) {
		t.Errorf("X-Session-Id = %q, want 32 lowercase hex", id)
	}
	if got := s.get("X-Session-New"); got != "true" {
		t.Errorf("X-Session-New = %q, want true", got)
	}
	if got := s.get("X-Session-Data"); got != "{}" {
		t.Errorf("X-Session-Data = %q, want {}", got)
	}

	_, s2 := c.get("/")
	if s2.get("X-Session-Id") == s.get("X-Session-Id") {
		t.Error("two cookieless requests got the same session ID")
	}
}

func TestLoginSetsCookieAndDataReachesUpstream(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name myapp expiry 3600 samesite lax
reverse_proxy {upstream}`)
	c := newClient(t)

	before := time.Now()
	resp, s := c.get("/login" + set(`{"user":"alice","n":1}`))
	line := rawSetCookie(t, resp, "myapp")
	id := s.get("X-Session-Id")
	for _, want := range []string{"myapp=" + id + ";", "Path=/", "Max-Age=3600", "HttpOnly", "SameSite=Lax", "Expires="} {
		if !strings.Contains(line, want) {
			t.Errorf("Set-Cookie %q lacks %q", line, want)
		}
	}
	for _, unwanted := range []string{"Secure", "Domain="} {
		if strings.Contains(line, unwanted) {
			t.Errorf("Set-Cookie %q has %q", line, unwanted)
		}
	}
	ck := setCookies(resp, "myapp")[0]
	wantExpiry := before.Add(time.Hour)
	if d := ck.Expires.Sub(wantExpiry); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("Expires = %v, want about %v (UTC)", ck.Expires, wantExpiry.UTC())
	}
	if !strings.HasSuffix(line[strings.Index(line, "Expires="):], "GMT") && !strings.Contains(line, "GMT;") {
		t.Errorf("Expires not in GMT: %q", line)
	}

	resp, s = c.get("/", "Cookie: other=keep")
	if got := s.get("X-Session-Id"); got != id {
		t.Errorf("X-Session-Id = %q, want the login's %q", got, id)
	}
	if got := s.get("X-Session-New"); got != "false" {
		t.Errorf("X-Session-New = %q, want false", got)
	}
	if got := s.get("X-Session-Data"); got != `{"n":1,"user":"alice"}` {
		t.Errorf("X-Session-Data = %q", got)
	}
	if cookie := s.get("Cookie"); strings.Contains(cookie, "myapp") || !strings.Contains(cookie, "other=keep") {
		t.Errorf("upstream Cookie = %q: want the session cookie removed, the others kept", cookie)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("an unchanged session got Set-Cookie %q on a later response", got)
	}
}

func TestForwardCookieKeepsSessionCookie(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session forward_cookie
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"a":1}`))
	_, s := c.get("/")
	if !strings.Contains(s.get("Cookie"), "session="+s.get("X-Session-Id")) {
		t.Errorf("upstream Cookie = %q, want the session cookie forwarded", s.get("Cookie"))
	}
}

func TestClientCannotForgeSessionHeaders(t *testing.T) {
	up := startUpstream(t)
	for _, tc := range []struct {
		name    string
		globals string
		forged  []string
	}{
		{
			name: "hyphens, any case",
			forged: []string{
				"X-Session-Id: 00000000000000000000000000000000",
				"X-Session-Data: {\"admin\":true}",
				"x-session-new: false",
				"X-SESSION-EXTRA: forged",
				"x_other_header: kept",
			},
		},
		{
			// Caddy drops header names with '_' or '.' unless told to
			// keep them; this server keeps them, so the session
			// handler's own stripping is what is tested.
			name: "underscores and dots",
			globals: `servers {
		expected_underscore_headers x_session_* x_other_*
		expected_dot_headers x.session.*
	}`,
			forged: []string{
				"x_session_data: {\"admin\":true}",
				"X_SESSION_ID: 00000000000000000000000000000000",
				"X_Session_New: false",
				"X.Session.Id: 00000000000000000000000000000000",
				"x_other_header: kept",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadCaddyWithGlobals(t, up, tc.globals, `session
reverse_proxy {upstream}`)
			_, s := newClient(t).get("/", tc.forged...)
			if tc.globals != "" && s.Header["X_other_header"] == nil {
				t.Fatalf("the server dropped underscore headers, so this case proves nothing: %v", s.Header)
			}
			for name, values := range s.Header {
				lower := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
				if !strings.HasPrefix(lower, "x-session-") {
					continue
				}
				switch name {
				case "X-Session-Id", "X-Session-Data", "X-Session-New":
					if len(values) != 1 {
						t.Errorf("upstream got %s %q, want exactly the gateway's one", name, values)
					}
				default:
					t.Errorf("forged header %s: %q reached the upstream", name, values)
				}
			}
			if s.get("X-Session-Data") != "{}" || s.get("X-Session-New") != "true" || s.get("X-Session-Id") == strings.Repeat("0", 32) {
				t.Errorf("upstream got forged values: %v", s.Header)
			}
		})
	}
}

func TestSessionResponseHeadersNeverReachClient(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)

	resp, _ := c.get("/" + set(`{"a":1}`) + "&clear=false&regenerate=false&hdr=X-Session-Other:1&hdr=x_session_debug:2&hdr=X-Session-Id:leak")
	for name := range resp.Header {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "x-session-") {
			t.Errorf("response header %s reached the client", name)
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestForgedOrUnknownCookieGetsNewID(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)

	for _, value := range []string{
		"0123456789abcdef0123456789abcdef", // well formed, never issued
		"attacker-chosen",
		"0123456789ABCDEF0123456789ABCDEF", // upper case is not an ID
		"",
	} {
		t.Run(value, func(t *testing.T) {
			c := newClient(t)
			resp, s := c.get("/", "Cookie: session="+value)
			if id := s.get("X-Session-Id"); id == value || !isID(id) {
				t.Errorf("X-Session-Id = %q for cookie %q", id, value)
			}
			if s.get("X-Session-New") != "true" {
				t.Errorf("X-Session-New = %q", s.get("X-Session-New"))
			}
			line := rawSetCookie(t, resp, "session")
			if !strings.Contains(line, "Max-Age=0") {
				t.Errorf("stale cookie not deleted: %q", line)
			}

			// Data set now lives under a fresh ID, never the client's.
			resp, s = c.get("/"+set(`{"x":1}`), "Cookie: session="+value)
			if ck := setCookies(resp, "session"); len(ck) != 1 || ck[0].Value == value || ck[0].Value != s.get("X-Session-Id") {
				t.Errorf("cookie after data: %v (client sent %q)", ck, value)
			}
		})
	}
}

func TestClearDeletesCookieWithSameAttributes(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session {
	cookie_name sid
	domain localhost.test
	path /
	samesite strict
	secure
}
reverse_proxy {upstream}`)
	c := newClient(t)
	// The jar would not send a Secure cookie over plain HTTP, so this
	// test carries the cookie by hand.
	resp, s := c.get("/" + set(`{"user":"bob"}`))
	set := rawSetCookie(t, resp, "sid")
	id := s.get("X-Session-Id")

	resp, s = c.get("/?clear=true", "Cookie: sid="+id)
	if s.get("X-Session-Data") != `{"user":"bob"}` {
		t.Fatalf("the session was not loaded before clear: %q", s.get("X-Session-Data"))
	}
	del := rawSetCookie(t, resp, "sid")
	for _, want := range []string{"sid=;", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT", "Domain=localhost.test", "Path=/", "Secure", "SameSite=Strict", "HttpOnly"} {
		if !strings.Contains(del, want) {
			t.Errorf("deletion cookie %q lacks %q (cookie was %q)", del, want, set)
		}
	}

	_, s = c.get("/", "Cookie: sid="+id)
	if s.get("X-Session-New") != "true" || s.get("X-Session-Id") == id || s.get("X-Session-Data") != "{}" {
		t.Errorf("a cleared session came back: %v", s.Header)
	}
}

func TestClearThenSetStartsNewID(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"bob"}`))
	old := c.cookie("session")

	resp, _ := c.get("/" + set(`{"guest":true}`) + "&clear=true")
	ck := setCookies(resp, "session")
	if len(ck) != 1 || ck[0].Value == old || !isID(ck[0].Value) {
		t.Fatalf("Set-Cookie after clear+set: %v, old ID %s", ck, old)
	}
	_, s := c.get("/")
	if s.get("X-Session-Data") != `{"guest":true}` {
		t.Errorf("data after clear then set = %q, want only the new keys", s.get("X-Session-Data"))
	}
}

func TestRegenerateChangesIDAndKeepsData(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"cart":[1,2]}`))
	old := c.cookie("session")

	resp, _ := c.get("/login?regenerate=true&" + strings.TrimPrefix(set(`{"user":"carol"}`), "?"))
	ck := setCookies(resp, "session")
	if len(ck) != 1 || ck[0].Value == old || !isID(ck[0].Value) {
		t.Fatalf("Set-Cookie after regenerate: %v (old %s)", ck, old)
	}
	_, s := c.get("/")
	if s.get("X-Session-Id") != ck[0].Value || s.get("X-Session-Data") != `{"cart":[1,2],"user":"carol"}` {
		t.Errorf("after regenerate upstream saw id %s data %s", s.get("X-Session-Id"), s.get("X-Session-Data"))
	}

	other := newClient(t)
	_, s = other.get("/", "Cookie: session="+old)
	if s.get("X-Session-New") != "true" || s.get("X-Session-Data") != "{}" {
		t.Errorf("the old ID still opens the session: %v", s.Header)
	}
}

func TestSessionCookieHasNoLifetime(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name myapp expiry 3600 sessioncookie
reverse_proxy {upstream}`)
	c := newClient(t)
	resp, _ := c.get("/" + set(`{"a":1}`))
	line := rawSetCookie(t, resp, "myapp")
	if strings.Contains(line, "Max-Age") || strings.Contains(line, "Expires") {
		t.Errorf("sessioncookie sent a lifetime: %q", line)
	}
}

func TestPermanentSessionCookieLasts400Days(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session expiry 0
reverse_proxy {upstream}`)
	c := newClient(t)
	resp, _ := c.get("/" + set(`{"a":1}`))
	if line := rawSetCookie(t, resp, "session"); !strings.Contains(line, "Max-Age=34560000") {
		t.Errorf("permanent session cookie: %q, want Max-Age=34560000", line)
	}
}

func TestShortExpiryEndsSession(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session expiry 1
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"a":1}`))
	id := c.cookie("session")
	time.Sleep(1300 * time.Millisecond)

	// The jar has dropped the expired cookie; a client that kept it
	// anyway gets a new session.
	_, s := c.get("/", "Cookie: session="+id)
	if s.get("X-Session-New") != "true" || s.get("X-Session-Id") == id {
		t.Errorf("an expired session was served: %v", s.Header)
	}
}

func TestLifetimeRenewsWithUse(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session expiry 2
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"a":1}`))
	id := c.cookie("session")

	// Active for longer than expiry: the session lives on, and the
	// cookie is re-sent as its lifetime is renewed, not on every
	// response.
	renewals := 0
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		resp, s := c.get("/")
		if s.get("X-Session-Id") != id {
			t.Fatalf("request %d: session ended while in use", i)
		}
		if ck := setCookies(resp, "session"); len(ck) > 0 {
			renewals++
		}
	}
	// About one renewal per 0.2s: some, and far from one per response
	// (the bound leaves room for a slow, loaded machine).
	if renewals < 3 || renewals > 22 {
		t.Errorf("cookie re-sent %d times in 30 requests over 3s with expiry 2s; want about one per 0.2s", renewals)
	}
}

func TestInvalidSetIsRefusedAndSessionKept(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"dave"}`))

	for _, bad := range []string{`{"user":`, `["not","an","object"]`, `"text"`, `null`, `{"a":1} trailing`} {
		resp, s := c.get("/" + set(`{"ok":1}`, bad))
		if resp.StatusCode != http.StatusOK || s.get("X-Session-Data") != `{"user":"dave"}` {
			t.Errorf("%q: status %d, data %q", bad, resp.StatusCode, s.get("X-Session-Data"))
		}
		if ck := setCookies(resp, "session"); len(ck) != 0 {
			t.Errorf("%q: refused change sent a cookie %v", bad, ck)
		}
	}
	_, s := c.get("/")
	if s.get("X-Session-Data") != `{"user":"dave"}` {
		t.Errorf("data after refused changes = %q", s.get("X-Session-Data"))
	}
}

func TestMergePatchAppliesInOrderAndEmptyingDeletes(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"a":1,"b":{"x":1,"y":2}}`, `{"a":2,"b":{"y":null},"é":"ü😀"}`))
	_, s := c.get("/")
	if got, want := s.get("X-Session-Data"), `{"a":2,"b":{"x":1},"\u00e9":"\u00fc\ud83d\ude00"}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}

	resp, _ := c.get("/" + set(`{"a":null,"b":null,"é":null}`))
	if line := rawSetCookie(t, resp, "session"); !strings.Contains(line, "Max-Age=0") {
		t.Errorf("a session emptied by a patch kept its cookie: %q", line)
	}
}

func TestPlaceholders(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session
handle /ph {
	respond "{http.session.id}|{http.session.new}|{http.session.data}|{http.session.data.user}|{http.session.data.n}|{http.session.data.missing}|"
}
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"eve","n":{"k":[1]}}`))
	id := c.cookie("session")
	_, s := c.get("/ph")
	want := id + `|false|{"n":{"k":[1]},"user":"eve"}|eve|{"k":[1]}||`
	if got := s.get("X-Body"); got != want {
		t.Errorf("placeholders = %q, want %q", got, want)
	}
}
