package tests

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWebSocketUpgradePasses upgrades a connection through the session
// handler and reverse_proxy, and echoes bytes over it. The upgrade response
// is where the session changes are applied: its X-Session-* headers must
// not reach the client.
func TestWebSocketUpgradePasses(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("X-Session-Id") == "" {
			http.Error(w, "want an upgrade with a session", http.StatusBadRequest)
			return
		}
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Sec-WebSocket-Accept", "test")
		w.Header().Set("X-Session-Set", `{"ws":true}`)
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("upstream hijack: %v", err)
			return
		}
		defer conn.Close()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		_, _ = brw.WriteString("echo: " + line)
		_ = brw.Flush()
	}))
	t.Cleanup(up.Close)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)

	conn, err := net.DialTimeout("tcp", caddyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: "+caddyAddr+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Session-Id: forged\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if resp.Header.Get("X-Session-Set") != "" {
		t.Error("X-Session-Set reached the client on the upgrade response")
	}
	if len(setCookies(resp, "session")) != 1 {
		t.Errorf("the upgrade response's session change set no cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	got, err := br.ReadString('\n')
	if err != nil || got != "echo: hello\n" {
		t.Errorf("over the upgraded connection got %q, %v", got, err)
	}
}

// TestStreamingFlushesThroughSession checks that a flushed part of a
// response reaches the client while the upstream is still writing.
func TestStreamingFlushesThroughSession(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Session-Set", `{"streamed":true}`)
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(up.Close)
	loadCaddy(t, up, `session
reverse_proxy {upstream} {
	flush_interval -1
}`)

	c := newClient(t)
	resp, err := c.http.Get(caddyBase + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(setCookies(resp, "session")) != 1 || resp.Header.Get("X-Session-Set") != "" {
		t.Errorf("streamed response: Set-Cookie %q, X-Session-Set %q", resp.Header.Values("Set-Cookie"), resp.Header.Get("X-Session-Set"))
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("first part: %q, %v", first, err)
	}
	close(release) // only now may the upstream finish
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest: %q, %v", rest, err)
	}
}

// TestHTTP2 runs a session over HTTP/2 (cleartext, h2c) end to end.
func TestHTTP2(t *testing.T) {
	up := startUpstream(t)
	loadCaddyWithGlobals(t, up, `servers {
		protocols h1 h2c
	}`, `session
reverse_proxy {upstream}`)

	c := newClient(t)
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	c.http.Transport = tr

	resp, s := c.get("/" + set(`{"proto":"h2"}`))
	if resp.ProtoMajor != 2 {
		t.Fatalf("response over %s, want HTTP/2", resp.Proto)
	}
	if len(setCookies(resp, "session")) != 1 {
		t.Fatalf("no session cookie over HTTP/2: %q", resp.Header.Values("Set-Cookie"))
	}
	_, s = c.get("/", "x-session-data: {\"forged\":1}")
	if s.get("X-Session-Data") != `{"proto":"h2"}` {
		t.Errorf("over HTTP/2 the upstream saw data %q", s.get("X-Session-Data"))
	}
	if strings.Contains(s.get("Cookie"), "session=") {
		t.Errorf("session cookie forwarded over HTTP/2: %q", s.get("Cookie"))
	}
}

// TestTrailersCannotCarrySessionHeaders sends X-Session-* as request
// trailers, which must not reach the upstream, and has the upstream send
// them as response trailers, which must not reach the client.
func TestTrailersCannotCarrySessionHeaders(t *testing.T) {
	gotTrailer := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		gotTrailer <- r.Trailer.Clone()
		w.Header().Set("Trailer", "X-Session-Set, X-Other")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Session-Set", `{"via":"trailer"}`)
		w.Header().Set("X-Other", "kept")
		w.Header().Set(http.TrailerPrefix+"X-Session-Clear", "true")
	}))
	t.Cleanup(up.Close)
	loadCaddy(t, up, `session
reverse_proxy {upstream}`)

	req, err := http.NewRequest(http.MethodPost, caddyBase+"/", io.NopCloser(strings.NewReader("payload")))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // chunked, so trailers can follow
	req.Trailer = http.Header{"X-Session-Id": {strings.Repeat("0", 32)}, "X-Session-Data": {`{"admin":true}`}, "X-Client": {"kept"}}
	resp, err := newClient(t).http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()

	upstreamTrailer := <-gotTrailer
	for name := range upstreamTrailer {
		if strings.HasPrefix(strings.ToLower(name), "x-session-") {
			t.Errorf("request trailer %s reached the upstream", name)
		}
	}
	if upstreamTrailer.Get("X-Client") != "kept" {
		t.Logf("note: the proxy did not forward request trailers at all: %v", upstreamTrailer)
	}
	for name := range resp.Trailer {
		if strings.HasPrefix(strings.ToLower(name), "x-session-") {
			t.Errorf("response trailer %s reached the client", name)
		}
	}
	if resp.Trailer.Get("X-Other") != "kept" {
		t.Errorf("the upstream's other trailer was lost: %v", resp.Trailer)
	}
	for _, declared := range resp.Header.Values("Trailer") {
		if strings.Contains(strings.ToLower(declared), "x-session") {
			t.Errorf("the response declares a session trailer: %q", declared)
		}
	}
}
