// Package check runs examples/SPEC.md's checks against every example app
// (examples/<stack>/ with a Caddyfile and a run.sh), each behind a real
// Caddy built with caddy-session, over HTTP/1.1 and over HTTP/2 with TLS.
//
//	./xcaddy.sh build
//	CADDY_BIN=$PWD/caddy CADDY_SESSION_EXAMPLES=all go test -v -count=1 ./examples/check/
//
// CADDY_SESSION_EXAMPLES is "all" or a comma-separated list of stacks
// (go,flask,...); without it, or without CADDY_BIN, the test is skipped.
package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// maxSize is the gateway's default max_size, which the examples keep.
const maxSize = 8000

func TestExamples(t *testing.T) {
	want, caddyBin := os.Getenv("CADDY_SESSION_EXAMPLES"), os.Getenv("CADDY_BIN")
	if want == "" || caddyBin == "" {
		t.Skip("set CADDY_SESSION_EXAMPLES (all, or e.g. go,flask) and CADDY_BIN (a caddy from ./xcaddy.sh build) to run the examples")
	}
	caddyBin, err := filepath.Abs(caddyBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(caddyBin); err != nil {
		t.Fatalf("CADDY_BIN: %v", err)
	}
	examples, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	all, err := discover(examples)
	if err != nil {
		t.Fatal(err)
	}
	stacks := all
	if want != "all" {
		stacks = nil
		for _, s := range strings.Split(want, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(all, s) {
				t.Fatalf("CADDY_SESSION_EXAMPLES names %q, which is not an example (have %v)", s, all)
			}
			stacks = append(stacks, s)
		}
	}
	if len(stacks) == 0 {
		t.Fatal("no examples to run")
	}
	timings := map[string]time.Duration{}
	for _, stack := range stacks {
		start := time.Now()
		t.Run(stack, func(t *testing.T) { runStack(t, filepath.Join(examples, stack), caddyBin) })
		timings[stack] = time.Since(start).Round(10 * time.Millisecond)
	}
	for _, stack := range stacks {
		t.Logf("%-10s %v", stack, timings[stack])
	}
}

// discover lists the examples: folders with a Caddyfile and a run.sh.
func discover(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		_, err1 := os.Stat(filepath.Join(dir, e.Name(), "Caddyfile"))
		_, err2 := os.Stat(filepath.Join(dir, e.Name(), "run.sh"))
		if err1 == nil && err2 == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// runStack starts the stack's app and a Caddy in front of it, runs the
// checks over both protocols, and stops both.
func runStack(t *testing.T, dir, caddyBin string) {
	start := time.Now()
	if _, err := os.Stat(filepath.Join(dir, "deps.sh")); err == nil {
		out, err := exec.Command(filepath.Join(dir, "deps.sh")).CombinedOutput()
		if len(out) > 0 {
			t.Logf("deps.sh: %s", out)
		}
		if err != nil {
			t.Fatalf("deps.sh: %v", err)
		}
	}
	tmp := t.TempDir()
	secretBytes := make([]byte, 24)
	_, _ = rand.Read(secretBytes)
	ports := freePorts(t, 4)
	e := &env{
		appPort: ports[0], httpPort: ports[1], httpsPort: ports[2], directPort: ports[0],
		secret: hex.EncodeToString(secretBytes),
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if cf, err := os.ReadFile(caddyfile); err == nil && strings.Contains(string(cf), "{$DIRECT_PORT}") {
		// The app speaks something other than HTTP (FastCGI): the
		// Caddyfile serves it without the gateway on DIRECT_PORT, the
		// other path to the app that the signature check is for.
		e.directPort = ports[3]
	}
	environ := append(os.Environ(),
		"APP_PORT="+strconv.Itoa(e.appPort),
		"DIRECT_PORT="+strconv.Itoa(ports[3]),
		"HTTP_PORT="+strconv.Itoa(e.httpPort),
		"HTTPS_PORT="+strconv.Itoa(e.httpsPort),
		"SESSION_SECRET="+e.secret,
		"TMPDIR="+tmp,
		// Caddy's internal CA and state go to the test's directory.
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
	)

	app := startProcess(t, "app", dir, environ, filepath.Join(dir, "run.sh"))
	waitPort(t, app, e.appPort, 90*time.Second) // run.sh may build first
	// Caddy runs from the repository's root, which relative paths in the
	// Caddyfiles (PHP's root) are relative to.
	gw := startProcess(t, "caddy", filepath.Dir(filepath.Dir(dir)), environ, caddyBin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	waitPort(t, gw, e.httpPort, 30*time.Second)
	waitPort(t, gw, e.httpsPort, 30*time.Second)
	if e.directPort != e.appPort {
		waitPort(t, gw, e.directPort, 30*time.Second)
	}
	waitTLS(t, gw, e.httpsPort, 30*time.Second)
	t.Logf("up in %v", time.Since(start).Round(10*time.Millisecond))

	for _, proto := range []int{1, 2} {
		ok := t.Run(fmt.Sprintf("http%d", proto), func(t *testing.T) {
			runChecks(t, e, newClient(t, e, proto))
		})
		if !ok {
			t.Logf("app output:\n%s\ncaddy output (last 4 KiB):\n%s", app.output(0), gw.output(4096))
		}
	}
}

type env struct {
	appPort, httpPort, httpsPort int
	// directPort reaches the app without the gateway: the app's own port,
	// or a site of the Caddyfile's for an app that speaks FastCGI.
	directPort int
	secret     string
}

// freePorts picks n free loopback ports (listening on port 0, then
// closing).
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// A process is a started child, in its own process group, so that
// stopping it stops what it started (run.sh's build, gunicorn's workers).
type process struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// output returns the process's output, its last n bytes when n > 0.
func (p *process) output(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.out.Bytes()
	if n > 0 && len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func startProcess(t *testing.T, name, dir string, environ []string, argv ...string) *process {
	p := &process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM to the process's group, then SIGKILL after 5s.
func (p *process) stop(t *testing.T) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Logf("%s: no exit 5s after SIGTERM; killing", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

func waitPort(t *testing.T, p *process, port int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %d: %v\n%s", p.name, port, p.cmd.ProcessState, p.output(0))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s: nothing on port %d after %v\n%s", p.name, port, timeout, p.output(0))
}

// waitTLS waits until the TLS site answers a handshake: with tls
// internal, Caddy listens before it has issued itself a certificate.
func waitTLS(t *testing.T, p *process, port int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c *tls.Conn
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.output(0))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s: no TLS handshake on %d after %v: %v\n%s", p.name, port, timeout, err, p.output(0))
}

// A client talks to the gateway over one protocol, with its own cookie
// jar.
type client struct {
	t     *testing.T
	base  *url.URL
	proto int
	jar   *cookiejar.Jar
	hc    *http.Client
	e     *env
}

func newClient(t *testing.T, e *env, proto int) *client {
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, proto: proto, jar: jar, e: e}
	var tr *http.Transport
	if proto == 1 {
		c.base, _ = url.Parse(fmt.Sprintf("http://127.0.0.1:%d", e.httpPort))
		tr = &http.Transport{ForceAttemptHTTP2: false}
	} else {
		c.base, _ = url.Parse(fmt.Sprintf("https://localhost:%d", e.httpsPort))
		addr := fmt.Sprintf("127.0.0.1:%d", e.httpsPort)
		tr = &http.Transport{
			// tls internal: Caddy's own CA, not trusted here.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"},
			ForceAttemptHTTP2: true,
			// localhost may resolve to ::1 first; Caddy is on 127.0.0.1.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	c.hc = &http.Client{Jar: jar, Transport: tr, Timeout: 15 * time.Second}
	return c
}

// A reply is a decoded answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(req *http.Request) reply {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != c.proto {
		c.t.Fatalf("%s %s: HTTP/%d, want HTTP/%d", req.Method, req.URL.Path, resp.ProtoMajor, c.proto)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&r.body); err != nil {
		c.t.Fatalf("%s %s: %d, not a JSON object: %v: %q", req.Method, req.URL.Path, resp.StatusCode, err, truncate(string(raw)))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.t.Errorf("%s %s: Content-Type %q", req.Method, req.URL.Path, ct)
	}
	for name := range resp.Header {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-session") {
			c.t.Errorf("%s %s: %s reached the client", req.Method, req.URL.Path, name)
		}
	}
	return r
}

func (c *client) get(path string, header http.Header) reply {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base.String()+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	return c.do(req)
}

func (c *client) post(path string, form url.Values) reply {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.base.String()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return c.do(req)
}

func (c *client) ok(r reply, what string) reply {
	c.t.Helper()
	if r.status != http.StatusOK {
		c.t.Fatalf("%s: %d %s", what, r.status, truncate(r.raw))
	}
	return r
}

// session is GET /session's answer.
type session struct {
	id       string
	isNew    bool
	verified bool
	data     map[string]any
}

func (c *client) session() session {
	c.t.Helper()
	r := c.ok(c.get("/session", nil), "GET /session")
	s := session{}
	s.id, _ = r.body["id"].(string)
	s.isNew, _ = r.body["new"].(bool)
	s.verified, _ = r.body["verified"].(bool)
	s.data, _ = r.body["data"].(map[string]any)
	if s.data == nil {
		c.t.Fatalf("GET /session: no data object: %s", truncate(r.raw))
	}
	return s
}

// appHeaders is what the app received: GET /headers, names canonical.
func (c *client) appHeaders(extra http.Header) map[string]string {
	c.t.Helper()
	r := c.ok(c.get("/headers", extra), "GET /headers")
	hs, _ := r.body["headers"].(map[string]any)
	out := map[string]string{}
	for k, v := range hs {
		s, _ := v.(string)
		out[http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))] = s
	}
	return out
}

func (c *client) sessionCookie() *http.Cookie {
	for _, ck := range c.jar.Cookies(c.base) {
		if ck.Name == "session" {
			return ck
		}
	}
	return nil
}

func setCookies(r reply) []string { return r.header.Values("Set-Cookie") }

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// runChecks runs SPEC's checks, in order, over c.
func runChecks(t *testing.T, e *env, c *client) {
	// 1. login
	before := c.session()
	if !before.isNew || len(before.data) != 0 {
		t.Fatalf("first GET /session: %+v, want new and empty", before)
	}
	r := c.ok(c.post("/login", url.Values{"user": {"alice"}}), "POST /login")
	if r.body["user"] != "alice" || !slices.ContainsFunc(setCookies(r), func(s string) bool { return strings.HasPrefix(s, "session=") }) {
		t.Fatalf("POST /login: %s, Set-Cookie %q", r.raw, setCookies(r))
	}
	s := c.session()
	if s.data["user"] != "alice" || s.isNew || !s.verified || s.id == before.id {
		t.Fatalf("after login: %+v (id before %s)", s, before.id)
	}

	// 2. counter
	for want := 1; want <= 3; want++ {
		r := c.ok(c.post("/counter", nil), "POST /counter")
		if r.body["counter"] != json.Number(strconv.Itoa(want)) {
			t.Fatalf("POST /counter #%d: %s", want, r.raw)
		}
	}
	if s := c.session(); s.data["counter"] != json.Number("3") {
		t.Fatalf("counter: %v, want 3", s.data["counter"])
	}

	// 3. 20 concurrent sets: none lost.
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", c.base.String()+"/set", strings.NewReader(url.Values{"key": {fmt.Sprintf("k%d", i)}, "value": {fmt.Sprintf("v%d", i)}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.hc.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != c.proto {
				errs <- fmt.Sprintf("k%d: %d HTTP/%d", i, resp.StatusCode, resp.ProtoMajor)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent POST /set: %s", err)
	}
	s = c.session()
	for i := range 20 {
		if k := fmt.Sprintf("k%d", i); s.data[k] != fmt.Sprintf("v%d", i) {
			t.Errorf("concurrent sets: %s = %v", k, s.data[k])
		}
	}

	// 4. non-ASCII round trips exactly.
	texts := map[string]string{"u_latin": "é", "u_emoji": "😀", "u_cjk": "漢字", "u_sep": "a\u2028b", "u_ctl": "tab\there\x7f"}
	for k, v := range texts {
		c.ok(c.post("/set", url.Values{"key": {k}, "value": {v}}), "POST /set "+k)
	}
	s = c.session()
	for k, v := range texts {
		if s.data[k] != v {
			t.Errorf("%s: got %q, want %q", k, s.data[k], v)
		}
	}
	data := c.appHeaders(nil)["X-Session-Data"]
	for i := 0; i < len(data); i++ {
		if data[i] >= 0x80 {
			t.Fatalf("X-Session-Data is not ASCII: %q", truncate(data))
		}
	}
	if !strings.Contains(data, `"u_emoji":"\ud83d\ude00"`) {
		t.Errorf("X-Session-Data does not hold the emoji as a surrogate pair: %s", truncate(data))
	}

	// 5. exactly max_size is taken, one byte more refused by the helper.
	pad := maxSize - len(data) - len(`,"big":""`)
	if pad <= 0 {
		t.Fatalf("the session is already %d bytes", len(data))
	}
	c.ok(c.post("/set", url.Values{"key": {"big"}, "value": {strings.Repeat("x", pad)}}), "POST /set to exactly max_size")
	full := c.appHeaders(nil)["X-Session-Data"]
	if len(full) != maxSize {
		t.Fatalf("X-Session-Data is %d bytes, want %d", len(full), maxSize)
	}
	if s := c.session(); s.data["big"] != strings.Repeat("x", pad) {
		t.Fatalf("GET /session after filling: big is %d bytes", len(fmt.Sprint(s.data["big"])))
	}
	r = c.post("/set", url.Values{"key": {"big"}, "value": {strings.Repeat("x", pad+1)}})
	if r.status != http.StatusRequestEntityTooLarge || r.body["error"] == nil {
		t.Fatalf("POST /set one byte past max_size: %d %s", r.status, truncate(r.raw))
	}
	if got := c.appHeaders(nil)["X-Session-Data"]; got != full {
		t.Fatalf("the refused change changed the session: %d bytes", len(got))
	}

	// 6. the signature.
	if r := c.get("/verify", nil); r.status != 200 || r.body["ok"] != true {
		t.Fatalf("GET /verify: %d %s", r.status, r.raw)
	}
	forgedSig := "t=" + strconv.FormatInt(time.Now().Unix(), 10) + ",v2=" + strings.Repeat("0", 64)
	if r := c.get("/verify", http.Header{"X-Session-Signature": {forgedSig}}); r.status != 200 {
		t.Fatalf("GET /verify with a forged signature from the client: %d %s (the gateway must replace it)", r.status, r.raw)
	}
	genuine := c.appHeaders(nil)
	if genuine["X-Session-Signature"] == "" {
		t.Fatal("the app got no X-Session-Signature")
	}
	direct := func(what string, h map[string]string) int {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/verify", e.directPort), nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("straight to the app, %s: %v", what, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	sessionHeaders := map[string]string{}
	for _, k := range []string{"X-Session-Id", "X-Session-New", "X-Session-Data", "X-Session-Signature"} {
		sessionHeaders[k] = genuine[k]
	}
	if code := direct("genuine headers", sessionHeaders); code != 200 {
		t.Errorf("straight to the app with the gateway's own headers: %d, want 200", code)
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for kk, vv := range sessionHeaders {
			h[kk] = vv
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	for what, h := range map[string]map[string]string{
		"no headers":        {},
		"missing signature": with("X-Session-Signature", ""),
		"forged signature":  with("X-Session-Signature", forgedSig),
		"tampered data":     with("X-Session-Data", `{"user":"mallory"}`),
		"tampered id":       with("X-Session-Id", strings.Repeat("a", 32)),
	} {
		if code := direct(what, h); code != 401 && code != 403 {
			t.Errorf("straight to the app, %s: %d, want 401 or 403", what, code)
		}
	}

	// 7. forged session headers from the client never reach the app.
	forged := http.Header{
		"X-Session-Id":   {"forged-id"},
		"X-Session-Data": {`{"user":"mallory"}`},
		"X_Session_Data": {`{"user":"mallory2"}`},
	}
	got := c.appHeaders(forged)
	for k, v := range got {
		if strings.Contains(v, "mallory") || strings.Contains(v, "forged-id") {
			t.Errorf("the app got the client's %s: %q", k, truncate(v))
		}
	}
	if got["X-Session-Id"] != s.id {
		t.Errorf("the app got X-Session-Id %q, want %q", got["X-Session-Id"], s.id)
	}

	// 8. remember me.
	r = c.ok(c.post("/remember", url.Values{"seconds": {"1209600"}}), "POST /remember")
	if !slices.ContainsFunc(setCookies(r), func(s string) bool {
		return strings.HasPrefix(s, "session=") && strings.Contains(s, "Max-Age=1209600")
	}) {
		t.Errorf("POST /remember: Set-Cookie %q, want Max-Age=1209600", setCookies(r))
	}

	// 9. logout.
	old := c.sessionCookie()
	if old == nil {
		t.Fatal("no session cookie in the jar before logout")
	}
	r = c.ok(c.post("/logout", nil), "POST /logout")
	if !slices.ContainsFunc(setCookies(r), func(s string) bool {
		return strings.HasPrefix(s, "session=;") && strings.Contains(s, "Max-Age=0")
	}) {
		t.Errorf("POST /logout: Set-Cookie %q, want a deletion cookie", setCookies(r))
	}
	if s := c.session(); !s.isNew || len(s.data) != 0 {
		t.Errorf("after logout: %+v, want new and empty", s)
	}
	replay := newClient(t, e, c.proto)
	replay.jar.SetCookies(c.base, []*http.Cookie{{Name: "session", Value: old.Value}})
	if s := replay.session(); !s.isNew || len(s.data) != 0 {
		t.Errorf("the old cookie replayed: %+v, want a new, empty session", s)
	}
}
