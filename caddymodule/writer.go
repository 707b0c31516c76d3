package caddymodule

// The response side: the writer that applies the session's changes when the
// response header is written, and the header hygiene that goes with them.

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// responseValues back the response header values the handler sets, so
// that a header the response does not have yet needs no slice of its own.
type responseValues struct {
	vary, setCookie, cacheControl [1]string
}

// addValue adds value to the header key, in slot (preallocated with the request) when the header is new.
// The slice it makes has no spare capacity, so whoever appends to it
// later copies it rather than write into slot.
func addValue(hdr http.Header, key, value string, slot *[1]string) {
	if old := hdr[key]; len(old) > 0 {
		hdr[key] = append(old, value)
		return
	}
	slot[0] = value
	hdr[key] = slot[:]
}

// keepOutOfSharedCaches stops shared caches from storing a response that
// sets or deletes the session cookie, which would hand one visitor's
// session to the next: the response becomes `private`. The upstream's
// `public` and `s-maxage`, which invite shared caches, are dropped; its
// other directives (max-age for the browser's own cache, say) stay. A
// response that is already `no-store`, or plainly `private`, is left as it
// is. (`no-cache="Set-Cookie"` would let shared caches keep the rest, but
// RFC 9111 notes that many caches ignore its field names.)
func keepOutOfSharedCaches(hdr http.Header, slot *[1]string) {
	cc := hdr["Cache-Control"]
	if len(cc) == 0 {
		addValue(hdr, "Cache-Control", "private", slot)
		return
	}
	private, shared := false, false
	for _, v := range cc {
		for v != "" {
			var d string
			d, v, _ = strings.Cut(v, ",")
			switch name, _, _ := strings.Cut(strings.TrimSpace(d), "="); strings.ToLower(strings.TrimSpace(name)) {
			case "no-store":
				return
			case "private":
				// private="Set-Cookie" names fields; only the bare
				// directive makes the whole response private.
				private = private || !strings.Contains(d, "=")
			case "public", "s-maxage":
				shared = true
			}
		}
	}
	if private && !shared {
		return
	}
	kept := filterList(cc, ",", func(d string) bool {
		name, _, _ := strings.Cut(d, "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "public", "s-maxage":
			return true
		}
		return false
	})
	if !private {
		kept = append(kept, "private")
	}
	hdr["Cache-Control"] = kept
}

// varyOnCookie marks the response as depending on the Cookie header, as
// every response under a session does.
func varyOnCookie(hdr http.Header, slot *[1]string) {
	for _, v := range hdr["Vary"] {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Cookie") {
				return
			}
		}
	}
	addValue(hdr, "Vary", "Cookie", slot)
}

// sessionWriter applies the session changes when the response header is
// written, whichever way that happens: WriteHeader, the first Write,
// ReadFrom or a Flush.
type sessionWriter struct {
	caddyhttp.ResponseWriterWrapper
	h           *Handler
	r           *http.Request
	sess        *session
	wroteHeader bool
	dataFields  map[string]json.RawMessage // parsed on first use by a placeholder
	out         responseValues
	patches     [2]string // backing for the upstream's X-Session-Set values
}

// WriteHeader applies the session changes, then writes the header.
func (sw *sessionWriter) WriteHeader(status int) {
	switch {
	case sw.wroteHeader:
	case status == http.StatusSwitchingProtocols || status >= 200:
		sw.wroteHeader = true
		sw.finish()
	default:
		// An informational response (100, 103) goes out with the
		// headers set at this moment; the final response's come later.
		sw.h.names.stripPrefixed(sw.Header())
	}
	sw.ResponseWriterWrapper.WriteHeader(status)
}

func (sw *sessionWriter) Write(b []byte) (int, error) {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy from reaching the underlying writer's ReadFrom,
// which would write the header without us.
func (sw *sessionWriter) ReadFrom(src io.Reader) (int64, error) {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriterWrapper.ReadFrom(src)
}

// FlushError is what http.ResponseController calls to flush.
func (sw *sessionWriter) FlushError() error {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(sw.ResponseWriterWrapper.ResponseWriter).Flush()
}

// Flush implements http.Flusher for handlers that assert it directly.
func (sw *sessionWriter) Flush() { _ = sw.FlushError() }

func (sw *sessionWriter) finish() {
	hdr := sw.Header()
	sw.h.apply(sw.r, hdr, sw.sess, sw.h.takeInstructions(hdr, sw.patches[:]), &sw.out)
	sw.h.names.stripTrailerDeclarations(hdr) // no trailer of ours may even be declared
	sw.dataFields = nil
}

// Interface guards
var (
	_ http.Flusher  = (*sessionWriter)(nil)
	_ io.ReaderFrom = (*sessionWriter)(nil)
)
