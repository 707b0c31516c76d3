package tests

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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

func TestSessionSignatureForUpstream(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session secret `+secretA+`
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"jo","note":"a.b.c"}`))
	_, s := c.get("/", "X-Session-Signature: t=1,v1=forged")

	req := &http.Request{Header: http.Header{}}
	for _, name := range []string{"X-Session-Id", "X-Session-New", "X-Session-Data", "X-Session-Signature"} {
		req.Header.Set(name, s.get(name))
	}
	if vals := s.Header.Values("X-Session-Signature"); len(vals) != 1 || strings.Contains(vals[0], "forged") {
		t.Fatalf("X-Session-Signature = %q, want the gateway's one", vals)
	}
	if !SessionHeadersAreGenuine(req, secretA, time.Minute) {
		t.Errorf("the README's Go recipe refuses the gateway's headers: %v", req.Header)
	}
	for _, tamper := range []struct{ name, value string }{
		{"X-Session-Data", `{"user":"admin"}`},
		{"X-Session-Id", strings.Repeat("0", 32)},
		{"X-Session-New", "true"},
	} {
		forged := req.Clone(req.Context())
		forged.Header.Set(tamper.name, tamper.value)
		if SessionHeadersAreGenuine(forged, secretA, time.Minute) {
			t.Errorf("a changed %s passed the check", tamper.name)
		}
	}
	if SessionHeadersAreGenuine(req, secretB, time.Minute) {
		t.Error("the check passed with another secret")
	}

	headers := map[string]string{}
	for name := range req.Header {
		headers[name] = req.Header.Get(name)
	}
	runRecipe(t, "python3", "testdata/verify_signature.py", headers, `
import json, os, runpy
ns = runpy.run_path(os.environ["RECIPE"])
h = json.loads(os.environ["HEADERS"])
print(ns["session_headers_are_genuine"](h, os.environ["SECRET"]))
h["X-Session-Data"] = '{"user":"admin"}'
print(ns["session_headers_are_genuine"](h, os.environ["SECRET"]))
`, "True\nFalse\n")
	lower := map[string]string{}
	for k, v := range headers {
		lower[strings.ToLower(k)] = v
	}
	runRecipe(t, "node", "testdata/verify_signature.js", lower, `
const fs = require("node:fs");
eval(fs.readFileSync(process.env.RECIPE, "utf8"));
const h = JSON.parse(process.env.HEADERS);
console.log(sessionHeadersAreGenuine(h, process.env.SECRET));
h["x-session-data"] = '{"user":"admin"}';
console.log(sessionHeadersAreGenuine(h, process.env.SECRET));
`, "true\nfalse\n")
}

// runRecipe runs the README's recipe in another language, where its
// interpreter is installed.
func runRecipe(t *testing.T, interpreter, recipe string, headers map[string]string, driver, want string) {
	t.Helper()
	if _, err := exec.LookPath(interpreter); err != nil {
		t.Logf("%s is not installed: the %s recipe is not run", interpreter, recipe)
		return
	}
	body, _ := json.Marshal(headers)
	args := []string{"-c", driver}
	if interpreter == "node" {
		args = []string{"-e", driver}
	}
	cmd := exec.Command(interpreter, args...)
	cmd.Env = append(os.Environ(), "RECIPE="+recipe, "HEADERS="+string(body), "SECRET="+secretA)
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != want {
		t.Errorf("%s recipe: %v, printed %q, want %q", recipe, err, out, want)
	}
}

func TestREADMEShowsTheTestedRecipes(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	goSrc, err := os.ReadFile("signature_recipe_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(goSrc)
	goRecipe := src[strings.Index(src, "// BEGIN README Go recipe\n")+len("// BEGIN README Go recipe\n") : strings.Index(src, "\n// END README Go recipe")]
	for name, recipe := range map[string]string{"Go": goRecipe} {
		if !strings.Contains(string(readme), recipe) {
			t.Errorf("the README's %s recipe differs from the tested one", name)
		}
	}
	for _, f := range []string{"testdata/verify_signature.py", "testdata/verify_signature.js"} {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(body)) {
			t.Errorf("the README's copy of %s differs from the tested one", f)
		}
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
	if got := strings.Join(resp.Header.Values("Cache-Control"), ", "); !strings.Contains(got, "public, max-age=60") || !strings.Contains(got, `no-cache="Set-Cookie"`) {
		t.Errorf("with the upstream's own Cache-Control: %q", got)
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
	// The real session still opens, among copies of a stale one.
	_, s := newClient(t).get("/", "Cookie: sid=junk; sid="+id+"; sid=junk2")
	if s.get("X-Session-Id") != id {
		t.Errorf("the valid cookie among others was not found: %v", s.Header)
	}
}
