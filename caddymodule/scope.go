package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// A session belongs to the site that made it: its scope, kept beside the
// data, is the host the request asked for (or the cookie's domain, which
// shares sessions across its subdomains on purpose) and the port it came
// in on, as "host:port". Another site, in the same Caddy or another on the
// same store, never accepts it, even with the same cookie name, prefix and
// store. The `scope` option names a scope instead, for sites that share
// sessions on purpose (instances of one site on different ports, say).
//
// The port is the connection's local port, not the one the Host header
// names: a site that answers any host on its port would otherwise take a
// session of another site whose Host the client claims.

// scopeOf is the scope a request's new sessions get.
func (h *Handler) scopeOf(r *http.Request) string {
	if h.Scope != "" {
		return h.Scope
	}
	host := h.scopeHost(r)
	port, path, _ := localAddr(r)
	buf := make([]byte, 0, len(host)+1+max(len(path), 5))
	buf = append(append(buf, host...), ':')
	if path != "" {
		buf = append(buf, path...)
	} else {
		buf = strconv.AppendInt(buf, int64(port), 10)
	}
	scope := string(buf)
	if len(scope) > sessionstore.MaxScopeLength {
		sum := sha256.Sum256([]byte(scope))
		scope = "sha256:" + hex.EncodeToString(sum[:])
	}
	return scope
}

// scopeMatches reports whether a session of scope belongs to the site of
// r. It does not allocate: it runs on every request of a known session.
func (h *Handler) scopeMatches(scope string, r *http.Request) bool {
	if h.Scope != "" {
		return scope == h.Scope
	}
	if strings.HasPrefix(scope, "sha256:") {
		return scope == h.scopeOf(r) // a very long host: rare
	}
	cut := strings.LastIndexByte(scope, ':')
	if cut < 0 {
		return false
	}
	port, path, ok := localAddr(r)
	if !ok || !strings.EqualFold(scope[:cut], h.scopeHost(r)) {
		return false
	}
	if path != "" {
		return scope[cut+1:] == path
	}
	n, err := strconv.Atoi(scope[cut+1:])
	return err == nil && n == port
}

// scopeHost is the host part of the scope: the cookie's domain when set,
// else the request's host without its port, lowercased by the caller's
// comparison or here for a new scope.
func (h *Handler) scopeHost(r *http.Request) string {
	if h.Domain != "" {
		return strings.ToLower(strings.TrimPrefix(h.Domain, "."))
	}
	host := r.Host
	// Only a host with a port is split: SplitHostPort's error for one
	// without would cost an allocation on every request.
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host[i:], ']') < 0 {
		if hp, _, err := net.SplitHostPort(host); err == nil {
			host = hp
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // an IPv6 literal, with or without a port
	host = strings.TrimSuffix(host, ".")
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	return host
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// localAddr is the port, or for another kind of listener (a unix socket)
// the address, that the request's connection came in on.
func localAddr(r *http.Request) (port int, path string, ok bool) {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return a.Port, "", true
	case *net.UDPAddr: // HTTP/3
		return a.Port, "", true
	case net.Addr:
		return 0, a.String(), true
	}
	return 0, "", false
}
