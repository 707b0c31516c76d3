package appsession

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Options configure Middleware.
type Options struct {
	// SessionName is the gateway's session_name; "" means "session".
	SessionName string
	// Secrets are the gateway's secrets. With them, X-Session-Signature
	// is checked and a request whose check fails gets an empty, new,
	// unverified session: headers that did not come from the gateway are
	// never trusted. Without them, the headers are taken as they are
	// (only safe when the app cannot be reached but through the gateway).
	Secrets []string
	// MaxAge is how far the signature's timestamp may be from the app's
	// clock; 0 means DefaultMaxAge.
	MaxAge time.Duration
	// MaxSize is the gateway's max_size in bytes; 0 means DefaultMaxSize,
	// negative means no limit.
	MaxSize int
}

type ctxKey struct{}

// From returns the session Middleware put in r's context, or nil outside
// Middleware.
func From(r *http.Request) *Session {
	s, _ := r.Context().Value(ctxKey{}).(*Session)
	return s
}

// Middleware returns a net/http middleware, for any router, that reads
// (and with Secrets, verifies) the session of each request, makes it
// available with From, and writes its changes as response headers when
// the handler writes its response header, whichever way (WriteHeader,
// Write, Flush, ReadFrom, or returning without writing).
func Middleware(opts Options) func(http.Handler) http.Handler {
	maxSize := opts.MaxSize
	switch {
	case maxSize == 0:
		maxSize = DefaultMaxSize
	case maxSize < 0:
		maxSize = 0
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := sessionFor(r.Header, opts)
			s.maxSize = maxSize
			sw := &responseWriter{ResponseWriter: w, s: s}
			next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
			// A handler that returns without writing gets the implicit 200,
			// with the headers in place by then.
			sw.start()
		})
	}
}

// sessionFor reads the request's session, or makes an empty one when
// the headers are missing, malformed, or (with secrets) not verified.
func sessionFor(h http.Header, opts Options) *Session {
	verified := len(opts.Secrets) > 0 && Verify(h, opts.SessionName, opts.Secrets, opts.MaxAge)
	if len(opts.Secrets) > 0 && !verified {
		s := newSession(opts.SessionName)
		s.isNew = true
		return s
	}
	s, err := Read(h, opts.SessionName)
	if err != nil {
		s = newSession(opts.SessionName)
		s.isNew = true
	}
	s.verified = verified
	return s
}

// responseWriter writes the session's headers before the response header
// goes out.
type responseWriter struct {
	http.ResponseWriter
	s       *Session
	started bool
}

func (w *responseWriter) start() {
	if !w.started {
		w.started = true
		w.s.WriteHeaders(w.ResponseWriter.Header())
	}
}

// WriteHeader writes the session's headers with the final header.
// Informational responses (1xx but 101) pass without them, as the
// gateway applies no changes on those.
func (w *responseWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.start()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *responseWriter) Flush() {
	w.start()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ReadFrom implements io.ReaderFrom, keeping the underlying writer's
// sendfile path.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	w.start()
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(w.ResponseWriter, r)
}

// Hijack implements http.Hijacker where the underlying writer does; the
// session's headers are then the handler's to write.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.start()
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("appsession: the response writer cannot be hijacked")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
