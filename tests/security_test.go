package tests

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/appsession"
)

const (
	secretA = "first-secret-0123456789abcdefghijklmnop"
	secretB = "second-secret-0123456789abcdefghijklmno"
)

// signedBy reports whether a cookie value of the session named "session"
// is id.signature under secret, by the recipe the README documents.
func signedBy(value, cookieName, secret string) bool {
	id, sig, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("caddy-session cookie v2\nsession\n" + cookieName + "\n" + id))
	return sig == base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestSignedCookies(t *testing.T) {
	up := startUpstream(t)
	t.Setenv("TEST_SESSION_SECRET", secretA)
	loadCaddy(t, up, `session cookie_name sid secret {env.TEST_SESSION_SECRET}
reverse_proxy {upstream}`)
	c := newClient(t)
	_, s := c.get("/" + set(`{"user":"ivy"}`))
	value, id := c.cookie("sid"), s.get("X-Session-Id")
	if !strings.HasPrefix(value, id+".") || !signedBy(value, "sid", secretA) {
		t.Fatalf("cookie %q is not id %s signed with the secret", value, id)
	}
	_, s = c.get("/")
	if s.get("X-Session-Id") != id || s.get("X-Session-Data") != `{"user":"ivy"}` {
		t.Fatalf("a signed cookie did not open its session: %v", s.Header)
	}

	loadsBefore := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`)
	badBefore := metricValue(t, "caddy_session_rejected_total", `session_name="session"`, `reason="bad_signature"`)
	tampered := []string{
		id,                                    // the bare ID: unsigned
		id + "." + strings.Repeat("A", 43),    // a made-up signature
		value[:len(value)-1] + "x",            // one character changed
		strings.Repeat("0", 32) + value[32:],  // another ID under this signature
		value + "AAAA",                        // a longer signature
		id + "." + value[33:] + "." + "extra", //
	}
	for _, v := range tampered {
		other := newClient(t)
		resp, s := other.get("/", "Cookie: sid="+v)
		if s.get("X-Session-Id") == id || s.get("X-Session-New") != "true" {
			t.Errorf("cookie %q opened the session", v)
		}
		if line := rawSetCookie(t, resp, "sid"); !strings.Contains(line, "Max-Age=0") {
			t.Errorf("cookie %q was not deleted: %q", v, line)
		}
	}
	if got := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`); got != loadsBefore {
		t.Errorf("refused cookies cost %v store lookups, want none", got-loadsBefore)
	}
	if got := metricValue(t, "caddy_session_rejected_total", `session_name="session"`, `reason="bad_signature"`); got-badBefore < 4 {
		t.Errorf("bad_signature went from %v to %v, want +4 or more", badBefore, got)
	}
}

func TestSecretRotation(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name rot secret `+secretA+`
reverse_proxy {upstream}`)
	old := newClient(t)
	old.get("/" + set(`{"who":"old"}`))
	oldValue := old.cookie("rot")

	// A new secret goes first; the old one still verifies.
	loadCaddy(t, up, `session cookie_name rot secret `+secretB+` `+secretA+`
reverse_proxy {upstream}`)
	_, s := old.get("/")
	if s.get("X-Session-Data") != `{"who":"old"}` {
		t.Errorf("a cookie signed with the old secret no longer works: %v", s.Header)
	}
	fresh := newClient(t)
	fresh.get("/" + set(`{"who":"new"}`))
	if v := fresh.cookie("rot"); !signedBy(v, "rot", secretB) || signedBy(v, "rot", secretA) {
		t.Errorf("a new cookie is not signed with the first secret: %q", v)
	}

	// The old secret removed: its cookies are refused.
	loadCaddy(t, up, `session cookie_name rot secret `+secretB+`
reverse_proxy {upstream}`)
	_, s = newClient(t).get("/", "Cookie: rot="+oldValue)
	if s.get("X-Session-New") != "true" {
		t.Errorf("a cookie signed with a removed secret still works: %v", s.Header)
	}
}

// TestSessionSignatureForUpstream: the app helpers in every language take
// the gateway's own X-Session-Signature, and refuse it with any of the
// headers changed, with another secret, or missing, returning false and
// never failing. The Python, Node and PHP helpers run where their
// interpreter is installed (the test command installs them).
func TestSessionSignatureForUpstream(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session secret `+secretA+`
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"jo","note":"a.b.c","name":"\u00e9l\u00e8ve"}`))
	_, s := c.get("/", "X-Session-Signature: t=1,v2=forged")
	if vals := s.Header.Values("X-Session-Signature"); len(vals) != 1 || strings.Contains(vals[0], "forged") {
		t.Fatalf("X-Session-Signature = %q, want the gateway's one", vals)
	}
	genuine := http.Header{}
	for _, name := range []string{"X-Session-Id", "X-Session-New", "X-Session-Data", "X-Session-Signature"} {
		genuine.Set(name, s.get(name))
	}
	cases := []struct {
		name   string
		header http.Header
		secret string
		want   bool
	}{
		{"genuine", genuine, secretA, true},
		{"another secret", genuine, secretB, false},
	}
	for _, tamper := range []struct{ name, value string }{
		{"X-Session-Data", `{"user":"admin"}`},
		{"X-Session-Id", strings.Repeat("0", 32)},
		{"X-Session-New", "true"},
		{"X-Session-Signature", ""},
		{"X-Session-Signature", "t=1,v2=" + strings.Repeat("0", 64)},
	} {
		h := genuine.Clone()
		if tamper.value == "" {
			h.Del(tamper.name)
		} else {
			h.Set(tamper.name, tamper.value)
		}
		cases = append(cases, struct {
			name   string
			header http.Header
			secret string
			want   bool
		}{"changed " + tamper.name + " " + tamper.value, h, secretA, false})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := appsession.Verify(tc.header, "session", []string{tc.secret}, time.Minute); got != tc.want {
				t.Errorf("Go helper: %v, want %v", got, tc.want)
			}
			headers := map[string]string{}
			for name := range tc.header {
				headers[name] = tc.header.Get(name)
			}
			want := fmt.Sprint(tc.want)
			runHelper(t, "python3", headers, tc.secret, `
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["ROOT"], "helpers", "python"))
import caddy_session
print(str(caddy_session.verify(json.loads(os.environ["HEADERS"]), [os.environ["SECRET"]], max_age=60)).lower())
`, want)
			runHelper(t, "node", headers, tc.secret, `
const cs = require(require("node:path").join(process.env.ROOT, "helpers", "node"));
console.log(String(cs.verify(JSON.parse(process.env.HEADERS), [process.env.SECRET], {maxAge: 60})));
`, want)
			runHelper(t, "php", headers, tc.secret, `
require getenv("ROOT") . "/helpers/php/autoload.php";
echo CaddySession\Session::verify(json_decode(getenv("HEADERS"), true), [getenv("SECRET")], ["maxAge" => 60]) ? "true" : "false", "\n";
`, want)
		})
	}
}

// runHelper runs a language's app helper on the gateway's headers, where
// its interpreter is installed, and checks what it printed.
func runHelper(t *testing.T, interpreter string, headers map[string]string, secret, program, want string) {
	t.Helper()
	if _, err := exec.LookPath(interpreter); err != nil {
		if os.Getenv("CI") != "" {
			t.Errorf("%s is not installed; the test command installs it", interpreter)
		}
		t.Logf("%s is not installed: its helper is not run", interpreter)
		return
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(headers)
	flag := map[string]string{"python3": "-c", "node": "-e", "php": "-r"}[interpreter]
	if interpreter == "php" {
		program = strings.TrimSpace(program)
	}
	cmd := exec.Command(interpreter, flag, program)
	cmd.Env = append(os.Environ(), "ROOT="+root, "HEADERS="+string(body), "SECRET="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("%s helper: %v, printed %q, want %q", interpreter, err, out, want)
	}
}

func TestMaxLifetimeEndsActiveSession(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name life max_lifetime 2 expiry 3600
reverse_proxy {upstream}`)
	c := newClient(t)
	resp, _ := c.get("/" + set(`{"a":1}`))
	if line := rawSetCookie(t, resp, "life"); !strings.Contains(line, "Max-Age=2;") && !strings.Contains(line, "Max-Age=1;") {
		t.Errorf("cookie Max-Age is not capped by max_lifetime: %q", line)
	}
	id := c.cookie("life")
	ended := false
	for i := 0; i < 40; i++ { // active every 100ms, for up to 4s
		time.Sleep(100 * time.Millisecond)
		_, s := c.get("/", "Cookie: life="+id)
		if s.get("X-Session-Id") != id {
			ended = true
			if since := i * 100; since < 1500 {
				t.Errorf("the session ended after %dms, before max_lifetime", since)
			}
			break
		}
	}
	if !ended {
		t.Error("an active session outlived max_lifetime")
	}
}

func TestPerSessionExpiry(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name own expiry 3600
reverse_proxy {upstream}`)
	expiry := func(secs string) string { return "&hdr=" + url.QueryEscape("X-Session-Expiry:"+secs) }

	remember := newClient(t)
	resp, _ := remember.get("/" + set(`{"remember":true}`) + expiry("1209600"))
	if line := rawSetCookie(t, resp, "own"); !strings.Contains(line, "Max-Age=1209600") {
		t.Errorf("X-Session-Expiry 14 days: cookie %q", line)
	}

	short := newClient(t)
	resp, _ = short.get("/" + set(`{"a":1}`))
	id := short.cookie("own")
	// An expiry alone, on a later response, changes the session's lifetime.
	resp, _ = short.get("/?" + strings.TrimPrefix(expiry("1"), "&"))
	if line := rawSetCookie(t, resp, "own"); !strings.Contains(line, "Max-Age=1;") {
		t.Errorf("X-Session-Expiry 1: cookie %q", line)
	}
	time.Sleep(1300 * time.Millisecond)
	_, s := newClient(t).get("/", "Cookie: own="+id)
	if s.get("X-Session-New") != "true" {
		t.Errorf("a session with its own 1s expiry lived on: %v", s.Header)
	}
	_, s = remember.get("/")
	if s.get("X-Session-Data") != `{"remember":true}` {
		t.Errorf("the long session ended: %v", s.Header)
	}

	resp, _ = remember.get("/?" + strings.TrimPrefix(expiry("soon"), "&"))
	if resp.StatusCode != 200 || len(setCookies(resp, "own")) != 0 {
		t.Errorf("a bad X-Session-Expiry: status %d, cookies %v", resp.StatusCode, setCookies(resp, "own"))
	}
}

func TestMaxSizeRefusesAndKeepsData(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name big max_size 64
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"kim"}`))
	resp, s := c.get("/" + set(`{"blob":"`+strings.Repeat("x", 80)+`"}`))
	if resp.StatusCode != 200 || len(setCookies(resp, "big")) != 0 {
		t.Errorf("an over-size change: status %d, cookies %v", resp.StatusCode, setCookies(resp, "big"))
	}
	_, s = c.get("/")
	if s.get("X-Session-Data") != `{"user":"kim"}` {
		t.Errorf("after an over-size change the data is %s", s.get("X-Session-Data"))
	}
	// Under the limit it works, and a new session over it is not made.
	c.get("/" + set(`{"n":1}`))
	if _, s = c.get("/"); s.get("X-Session-Data") != `{"n":1,"user":"kim"}` {
		t.Errorf("a change under the limit: %s", s.get("X-Session-Data"))
	}
	other := newClient(t)
	resp, _ = other.get("/" + set(`{"blob":"`+strings.Repeat("x", 80)+`"}`))
	if len(setCookies(resp, "big")) != 0 {
		t.Error("an over-size new session got a cookie")
	}
}

func TestResponsesStayOutOfSharedCaches(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name cc
reverse_proxy {upstream}`)
	c := newClient(t)
	resp, _ := c.get("/" + set(`{"a":1}`))
	if got := resp.Header.Get("Cache-Control"); got != "private" {
		t.Errorf("a response setting the cookie: Cache-Control %q, want private", got)
	}
	resp, _ = c.get("/" + set(`{"a":2}`) + "&hdr=" + url.QueryEscape("Cache-Control:public, max-age=60"))
	// public goes (many caches ignore no-cache="Set-Cookie"); the rest
	// stays, for the browser's own cache.
	if got := strings.Join(resp.Header.Values("Cache-Control"), ", "); got != "max-age=60, private" {
		t.Errorf("with the upstream's own Cache-Control: %q, want max-age=60, private", got)
	}
	resp, _ = c.get("/")
	if got := resp.Header.Get("Cache-Control"); got != "" {
		t.Errorf("a response without a cookie got Cache-Control %q", got)
	}
	if got := resp.Header.Values("Vary"); len(got) != 1 || got[0] != "Cookie" {
		t.Errorf("Vary = %q, want Cookie", got)
	}
}

func TestAbsurdCookieHeaders(t *testing.T) {
	up := startUpstream(t)
	// Caddy refuses request headers over 16KiB by default (431); this
	// server takes far more, so the session handler meets them.
	loadCaddyWithGlobals(t, up, `servers {
		max_header_size 4MB
	}`, `session cookie_name sid
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"a":1}`))
	id := c.cookie("sid")

	loadsBefore := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`)
	many := strings.Repeat("sid="+strings.Repeat("ab", 16)+"; ", 2000)
	for _, header := range []string{
		many,
		"sid=\xff\xfe\xfd; other=\x80",
		"sid=" + strings.Repeat("a", 30000),
		strings.Repeat(";", 10000),
		"sid",
		"=sid; sid==; sid=\"\"",
	} {
		resp, s := newClient(t).get("/", "Cookie: "+header)
		if resp.StatusCode != 200 || s.get("X-Session-New") != "true" {
			t.Errorf("cookie header %.40q: status %d, new %s", header, resp.StatusCode, s.get("X-Session-New"))
		}
	}
	if got := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`); got-loadsBefore > 1 {
		t.Errorf("2000 copies of a cookie cost %v store lookups, want at most 1", got-loadsBefore)
	}
	// 500 distinct well-formed IDs cost at most 4 lookups.
	var distinct strings.Builder
	for i := range 500 {
		fmt.Fprintf(&distinct, "sid=%032x; ", i+1)
	}
	loadsBefore = metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`)
	if resp, s := newClient(t).get("/", "Cookie: "+distinct.String()); resp.StatusCode != 200 || s.get("X-Session-New") != "true" {
		t.Errorf("500 distinct IDs: status %d, new %s", resp.StatusCode, s.get("X-Session-New"))
	}
	if got := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`); got-loadsBefore > 4 {
		t.Errorf("500 distinct IDs cost %v store lookups, want at most 4", got-loadsBefore)
	}
	// The real session still opens, among copies of a stale one.
	_, s := newClient(t).get("/", "Cookie: sid=junk; sid="+id+"; sid=junk2")
	if s.get("X-Session-Id") != id {
		t.Errorf("the valid cookie among others was not found: %v", s.Header)
	}
}
