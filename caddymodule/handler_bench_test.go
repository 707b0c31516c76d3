package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// The handler's own work per request: ServeHTTP around a next handler that
// does next to nothing. The harness reuses one request, one response writer
// and one replacer per goroutine and resets them between iterations without
// allocating, so allocs/op is the handler's alone.
//
//	go test -run '^$' -bench Handler -benchmem ./caddymodule/

// benchHandler provisions a session handler with its own memory store.
func benchHandler(b *testing.B, config string) *Handler {
	b.Helper()
	h := new(Handler)
	if err := json.Unmarshal([]byte(config), h); err != nil {
		b.Fatalf("unmarshaling %s: %v", config, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatalf("provisioning %s: %v", config, err)
	}
	return h
}

const benchConfig = `{"store": {"backend": "memory", "name": "handler-bench"}}`

// benchLocalAddr is the listener the benchmark's requests came in on, as
// net/http puts it in their context: the site's scope is example.com:443.
var benchLocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}

// benchSession stores a session with small data, bound to the benchmark's
// site as every session the handler makes is, and returns its ID.
func benchSession(h *Handler) (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	_, err = h.store.Patch(context.Background(), h.prefix+id, []string{`{"user":"alice"}`},
		sessionstore.PatchOptions{TTL: h.expiry, Create: true, Scope: "example.com:443"})
	return id, err
}

// benchWriter is a response writer whose header map is reused.
type benchWriter struct {
	hdr    http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.hdr }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchPatches are X-Session-Set values made before the timer starts, so
// the next handler of the write path allocates nothing of its own.
var benchPatches = func() [][]string {
	p := make([][]string, 1024)
	for i := range p {
		p[i] = []string{`{"n":` + strconv.Itoa(i) + `}`}
	}
	return p
}()

var (
	benchBody        = []byte("hello from upstream\n")
	benchContentType = []string{"text/plain"}
)

// benchNext is the trivial next handler: it answers a small body and, when
// write is set, changes one key of the session.
func benchNext(write bool) caddyhttp.Handler {
	i := 0
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if write {
			w.Header()["X-Session-Set"] = benchPatches[i%len(benchPatches)]
			i++
		}
		w.Header()["Content-Type"] = benchContentType
		_, err := w.Write(benchBody)
		return err
	})
}

// benchRequest is one goroutine's request, writer and replacer.
type benchRequest struct {
	h       *Handler
	r       *http.Request
	w       *benchWriter
	next    caddyhttp.Handler
	repl    *caddy.Replacer
	tmpl    caddy.Replacer
	cookies []string // the Cookie header, nil for none
}

func newBenchRequest(h *Handler, id string, write bool) *benchRequest {
	br := &benchRequest{h: h, w: &benchWriter{hdr: http.Header{}}, next: benchNext(write)}
	// As Caddy's server prepares a request: the global providers, then the
	// http.* variables, then the handlers' own.
	tmpl := caddy.NewReplacer()
	tmpl.Map(func(string) (any, bool) { return nil, false })
	br.tmpl = *tmpl
	br.repl = caddy.NewReplacer()
	*br.repl = br.tmpl

	r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.Header.Set("User-Agent", "wrk")
	r.Header.Set("Accept", "*/*")
	r.Header.Set("Accept-Encoding", "gzip")
	if id != "" {
		br.cookies = []string{h.CookieName + "=" + id}
	}
	ctx := context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(benchLocalAddr))
	br.r = r.WithContext(context.WithValue(ctx, caddy.ReplacerCtxKey, br.repl))
	br.reset()
	return br
}

// reset makes the request and the writer as they were before the handler
// ran, without allocating.
func (br *benchRequest) reset() {
	n := &br.h.names
	delete(br.r.Header, n.idHeader)
	delete(br.r.Header, n.dataHeader)
	delete(br.r.Header, n.newHeader)
	if br.cookies != nil {
		br.r.Header["Cookie"] = br.cookies
	}
	clear(br.w.hdr)
	// A fresh replacer for the request: Map appends to its providers.
	*br.repl = br.tmpl
}

func (br *benchRequest) serve() error {
	br.reset()
	return br.h.ServeHTTP(br.w, br.r, br.next)
}

// check runs one request and reports an error unless it took the path the
// benchmark means to measure.
func (br *benchRequest) check(wantNew string, wantCookie bool) error {
	if err := br.serve(); err != nil {
		return err
	}
	if got := br.r.Header.Get(br.h.names.newHeader); got != wantNew {
		return fmt.Errorf("%s = %q, want %q", br.h.names.newHeader, got, wantNew)
	}
	if got := len(br.w.hdr["Set-Cookie"]) > 0; got != wantCookie {
		return fmt.Errorf("Set-Cookie sent: %v, want %v (%q)", got, wantCookie, br.w.hdr["Set-Cookie"])
	}
	if _, ok := br.w.hdr["X-Session-Set"]; ok {
		return errors.New("X-Session-Set reached the client")
	}
	return nil
}

type benchCase struct {
	name       string
	known      bool // the request carries the cookie of a stored session
	write      bool // the response changes one key
	wantNew    string
	wantCookie bool
}

var benchCases = []benchCase{
	// A known session, unchanged: the read path.
	{name: "Read", known: true, wantNew: "false"},
	// Every response changes one key: the write path (a Set-Cookie each).
	{name: "Write", known: true, write: true, wantNew: "false", wantCookie: true},
	// A visitor without a cookie who never gets data.
	{name: "Cookieless", wantNew: "true"},
}

// request makes a goroutine's request for the case and checks it once.
func (c benchCase) request(h *Handler) (*benchRequest, error) {
	id := ""
	if c.known {
		var err error
		if id, err = benchSession(h); err != nil {
			return nil, err
		}
	}
	br := newBenchRequest(h, id, c.write)
	return br, br.check(c.wantNew, c.wantCookie)
}

func BenchmarkHandler(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			h := benchHandler(b, benchConfig)
			br, err := c.request(h)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := br.serve(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHandlerParallel(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			h := benchHandler(b, benchConfig)
			b.ReportAllocs()
			b.ResetTimer()
			// Each goroutine is a client of its own session.
			b.RunParallel(func(pb *testing.PB) {
				br, err := c.request(h)
				if err != nil {
					b.Error(err)
					return
				}
				for pb.Next() {
					if err := br.serve(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkHandlerHarness is the same harness around the next handler
// alone, without the session handler: what the numbers above include that
// is not the handler's.
func BenchmarkHandlerHarness(b *testing.B) {
	h := benchHandler(b, benchConfig)
	br := newBenchRequest(h, "", false)
	b.ReportAllocs()
	for b.Loop() {
		br.reset()
		if err := br.next.ServeHTTP(br.w, br.r); err != nil {
			b.Fatal(err)
		}
	}
}
