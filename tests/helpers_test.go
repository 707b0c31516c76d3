// Package tests runs caddy-session end to end: a real Caddy in-process
// (caddytest), real HTTP, a real upstream and a cookie jar.
package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddy-session/caddy-session"
	"github.com/caddy-session/caddy-session/internal/freeport"
)

// The test Caddy's ports, free ones chosen when the tests start, so that
// two runs at once, the demo (./xcaddy.sh run) or a system Caddy never
// collide with it: its admin endpoint, the site most tests load
// (caddyBase), a second site (caddyBase2) and the HTTPS port Caddy is told
// of but does not bind (auto_https off).
var (
	adminPort, caddyPort, caddyPort2, httpsPort int

	caddyAddr  string // localhost:caddyPort
	caddyBase  string // http://localhost:caddyPort
	caddyBase2 string // http://localhost:caddyPort2
	adminBase  string // http://localhost:adminPort

	// globalOptions keep the test Caddy on its ports and quick to reload;
	// %s takes more global options.
	globalOptions string
)

func TestMain(m *testing.M) {
	ports := make([]int, 4)
	for i := range ports {
		p, err := freeport.Port()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ports[i] = p
	}
	adminPort, caddyPort, caddyPort2, httpsPort = ports[0], ports[1], ports[2], ports[3]
	caddyAddr = fmt.Sprintf("localhost:%d", caddyPort)
	caddyBase = "http://" + caddyAddr
	caddyBase2 = fmt.Sprintf("http://localhost:%d", caddyPort2)
	adminBase = fmt.Sprintf("http://localhost:%d", adminPort)
	// caddytest starts the in-process Caddy with its admin endpoint on
	// Default.AdminPort (2999 unless told), and loads every config there.
	caddytest.Default.AdminPort = adminPort
	globalOptions = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
	skip_install_trust
	auto_https off
	%%s
}
`, adminPort, caddyPort, httpsPort)
	os.Exit(m.Run())
}

// seen is what the upstream received, sent back to the test as JSON.
type seen struct {
	Header http.Header `json:"header"`
}

func (s seen) get(name string) string { return s.Header.Get(name) }

// startUpstream starts the app behind Caddy. It answers every request with
// the headers it received, as JSON, and turns query parameters into the
// session instructions of its response: each `set` becomes an X-Session-Set
// (`alt_set` an X-Alt-Session-Set), and `clear`, `regenerate` and `hdr`
// (name:value) headers as given.
func startUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for _, v := range q["set"] {
			w.Header().Add("X-Session-Set", v)
		}
		for _, v := range q["alt_set"] {
			w.Header().Add("X-Alt-Session-Set", v)
		}
		if v := q.Get("clear"); v != "" {
			w.Header().Set("X-Session-Clear", v)
		}
		if v := q.Get("regenerate"); v != "" {
			w.Header().Set("X-Session-Regenerate", v)
		}
		for _, v := range q["hdr"] {
			name, value, _ := strings.Cut(v, ":")
			w.Header()[name] = append(w.Header()[name], value) // names as given, not canonicalized
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// loadCaddy loads a config with one site on caddyPort whose body is site, with
// {upstream} replaced by the upstream's host:port.
func loadCaddy(t *testing.T, upstream *httptest.Server, site string) *caddytest.Tester {
	t.Helper()
	return loadCaddyWithGlobals(t, upstream, "", site)
}

// loadCaddyWithGlobals is loadCaddy with more global options.
func loadCaddyWithGlobals(t *testing.T, upstream *httptest.Server, globals, site string) *caddytest.Tester {
	t.Helper()
	if upstream != nil {
		site = strings.ReplaceAll(site, "{upstream}", strings.TrimPrefix(upstream.URL, "http://"))
	}
	return loadCaddyConfig(t, fmt.Sprintf(globalOptions, globals)+fmt.Sprintf("\n:%d {\n", caddyPort)+site+"\n}\n")
}

// loadCaddyConfig loads a whole Caddyfile, which must have globalOptions.
func loadCaddyConfig(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	return tester
}

// client is a browser stand-in: an HTTP client with a cookie jar that does
// not follow redirects.
type client struct {
	t    *testing.T
	http *http.Client
}

func newClient(t *testing.T) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, http: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// get requests path and returns the response (body read and closed) and
// what the upstream saw.
func (c *client) get(path string, header ...string) (*http.Response, seen) {
	c.t.Helper()
	return c.getURL(caddyBase+path, header...)
}

// getURL is get of a whole URL.
func (c *client) getURL(rawURL string, header ...string) (*http.Response, seen) {
	c.t.Helper()
	path := rawURL
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, h := range header {
		name, value, _ := strings.Cut(h, ": ")
		if name == "Host" {
			req.Host = value // net/http sends req.Host, not a Host header
			continue
		}
		req.Header[name] = append(req.Header[name], value) // names as given
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: reading body: %v", path, err)
	}
	var s seen
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &s); err != nil {
			c.t.Fatalf("GET %s: upstream body %q: %v", path, body, err)
		}
	} else {
		s.Header = http.Header{"X-Body": {string(body)}}
	}
	return resp, s
}

// cookie returns the jar's value of the named cookie for the test site.
func (c *client) cookie(name string) string { return c.cookieAt(caddyBase, name) }

// cookieAt returns the jar's value of the named cookie for base.
func (c *client) cookieAt(base, name string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// setCookies returns the response's Set-Cookie headers for name.
func setCookies(resp *http.Response, name string) []*http.Cookie {
	var out []*http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			out = append(out, ck)
		}
	}
	return out
}

// rawSetCookie returns the one Set-Cookie line for name, failing otherwise.
func rawSetCookie(t *testing.T, resp *http.Response, name string) string {
	t.Helper()
	var lines []string
	for _, line := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(line, name+"=") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one Set-Cookie for %s, got %q", name, lines)
	}
	return lines[0]
}

// set is the query string of an upstream response that sets data.
func set(patches ...string) string {
	q := url.Values{}
	for _, p := range patches {
		q.Add("set", p)
	}
	return "?" + q.Encode()
}

func isID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %q: %v", s, err)
	}
	return m
}

func sprint(v any) string { return fmt.Sprint(v) }
