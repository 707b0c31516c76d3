package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// The contract with the upstream: the header and placeholder names derived
// from a session_name. The README's "Contract" section states the same; keep
// the two in step.
const (
	hdrID         = "Id"         // request: the session ID
	hdrData       = "Data"       // request: the session data as JSON
	hdrNew        = "New"        // request: "true" when this request began the session
	hdrSignature  = "Signature"  // request: with secrets, an HMAC over the above
	hdrExpiry     = "expiry"     // response: the session's own idle expiry in seconds
	hdrSet        = "set"        // response: a JSON merge patch for the data
	hdrClear      = "clear"      // response: "true" empties the session
	hdrRegenerate = "regenerate" // response: "true" gives the session a new ID
	hdrSubject    = "subject"    // response: names the session's owner; empty removes
	hdrRevoke     = "revoke"     // response: "others", "all" or a handle of the subject's sessions
	hdrPersist    = "persist"    // response: "true" or "false": this session's cookie kind
)

// The values of X-Session-Revoke besides a handle.
const (
	revokeOthers = "others"
	revokeAll    = "all"
)

// contractNames are the names one session handler uses, computed once at
// provision so the request path only compares strings.
type contractNames struct {
	// headerPrefix is the header prefix in canonical form, e.g. "X-Alt-Session-".
	headerPrefix string
	// matchPrefix is headerPrefix lowercased, for case-insensitive matching.
	matchPrefix string

	idHeader, dataHeader, newHeader, signatureHeader string

	idPlaceholder, newPlaceholder, dataPlaceholder string
	// dataKeyPrefix begins the placeholders of single data keys,
	// e.g. "http.session.data.".
	dataKeyPrefix string
}

// newContractNames derives the names for sessionName: "alt_session" gives
// X-Alt-Session-* headers and {http.alt_session.*} placeholders.
func newContractNames(sessionName string) contractNames {
	prefix := textproto.CanonicalMIMEHeaderKey("x-" + strings.ReplaceAll(sessionName, "_", "-") + "-")
	ph := "http." + sessionName + "."
	return contractNames{
		headerPrefix:    prefix,
		matchPrefix:     strings.ToLower(prefix),
		idHeader:        prefix + hdrID,
		dataHeader:      prefix + hdrData,
		newHeader:       prefix + hdrNew,
		signatureHeader: prefix + hdrSignature,
		idPlaceholder:   ph + "id",
		newPlaceholder:  ph + "new",
		dataPlaceholder: ph + "data",
		dataKeyPrefix:   ph + "data.",
	}
}

// hasPrefix reports whether a header name starts with the session's header
// prefix, ignoring case and taking '_' and '.' as '-': CGI-style upstreams
// (PHP, WSGI, FastCGI) read X_Session_Id, X.Session.Id and X-Session-Id as
// the same variable, so a client must get none of them through. Caddy drops
// such names by default; this holds where a server allows them
// (expected_underscore_headers, expected_dot_headers).
func (n *contractNames) hasPrefix(name string) bool {
	return len(name) >= len(n.matchPrefix) && equalHeaderName(name[:len(n.matchPrefix)], n.matchPrefix)
}

// suffix returns what follows the prefix in name, which must have it.
func (n *contractNames) suffix(name string) string { return name[len(n.matchPrefix):] }

// equalHeaderName compares a header name with a lowercase, dash-separated
// one, ignoring case and taking '_' and '.' as '-'.
func equalHeaderName(name, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '.':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// stripPrefixed deletes every header with the session's prefix.
func (n *contractNames) stripPrefixed(h http.Header) {
	for name := range h {
		if n.hasPrefix(name) {
			delete(h, name)
		}
	}
}

// stripConnectionTokens removes from the Connection header every token that
// names a session header, compared as stripPrefixed compares. A header
// named in Connection is hop-by-hop: reverse_proxy (like any HTTP/1.1
// proxy) deletes it before the request goes on, which would take the
// gateway's own X-Session-* headers with it.
func (n *contractNames) stripConnectionTokens(h http.Header) {
	conn := h["Connection"]
	if !slices.ContainsFunc(conn, n.listsPrefixed) {
		return // the common case, without allocating
	}
	kept := filterList(conn, ",", n.hasPrefix)
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = kept
}

// listsPrefixed reports whether a comma-separated list names a header with
// the session's prefix.
func (n *contractNames) listsPrefixed(list string) bool {
	for list != "" {
		var token string
		token, list, _ = strings.Cut(list, ",")
		if n.hasPrefix(strings.TrimSpace(token)) {
			return true
		}
	}
	return false
}

// stripTrailers deletes response trailers with the session's prefix, set
// either as declared names or with http.TrailerPrefix, and their
// declarations in the Trailer header.
func (n *contractNames) stripTrailers(h http.Header) {
	for name := range h {
		if rest, ok := strings.CutPrefix(name, http.TrailerPrefix); ok && n.hasPrefix(rest) {
			delete(h, name)
		}
	}
	n.stripTrailerDeclarations(h)
}

// stripTrailerDeclarations deletes the session's names from the Trailer
// header, and the trailers so declared.
func (n *contractNames) stripTrailerDeclarations(h http.Header) {
	declared := h["Trailer"]
	if len(declared) == 0 {
		return
	}
	kept := filterList(declared, ",", func(name string) bool {
		if n.hasPrefix(name) {
			delete(h, textproto.CanonicalMIMEHeaderKey(name))
			return true
		}
		return false
	})
	if len(kept) == 0 {
		delete(h, "Trailer")
		return
	}
	h["Trailer"] = kept
}

// trailerStripper strips the session's headers from the request trailers
// when the body has been read to its end, which is when they arrive.
type trailerStripper struct {
	io.ReadCloser
	r     *http.Request
	names *contractNames
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.names.stripPrefixed(t.r.Trailer)
	}
	return n, err
}

// instructions are the changes the upstream asked for in its response.
type instructions struct {
	patches    []string
	clear      bool
	regenerate bool
	// expiry is the session's own idle expiry (X-Session-Expiry): 0 when
	// not given, sessionstore.Permanent for "0".
	expiry time.Duration
	// subject is the session's new subject (X-Session-Subject), valid
	// when setSubject; empty removes it.
	subject    string
	setSubject bool
	// revoke is X-Session-Revoke: revokeOthers, revokeAll or a handle;
	// empty when not given.
	revoke string
	// persist is the session's new cookie kind (X-Session-Persist);
	// PersistDefault when not given.
	persist sessionstore.Persist
}

// takeInstructions removes every header with the session's prefix from the
// response, so none reaches the client, and returns the instructions among
// them. An X-Session-Set that is not a JSON object refuses all patches of
// the response, leaving the data as it was.
//
// The patches are appended to patches, whose spare capacity saves the common
// response an allocation.
func (h *Handler) takeInstructions(hdr http.Header, patches []string) instructions {
	in := instructions{patches: patches[:0]}
	badPatch := false
	for name, values := range hdr {
		if !h.names.hasPrefix(name) {
			continue
		}
		delete(hdr, name)
		switch suffix := h.names.suffix(name); {
		case equalHeaderName(suffix, hdrSet):
			for _, v := range values {
				// Bytes that are not UTF-8 (Latin-1 from a framework
				// that cannot send anything else) are refused, never
				// rewritten: JSON parsers would store U+FFFD in their
				// place and lose the text silently.
				if !utf8.ValidString(v) {
					badPatch = true
					h.refuse(refusedInvalidUTF8, "refused "+h.names.headerPrefix+"Set from upstream: not valid UTF-8 (send JSON in ASCII with \\u escapes, or UTF-8); the session is left as it was")
					continue
				}
				if err := mergepatch.Validate(v); err != nil {
					badPatch = true
					h.refuse(refusedInvalidJSON, "refused "+h.names.headerPrefix+"Set from upstream: the session is left as it was", zap.Error(err))
					continue
				}
				in.patches = append(in.patches, v)
			}
		case equalHeaderName(suffix, hdrClear):
			in.clear = in.clear || h.flag(name, values)
		case equalHeaderName(suffix, hdrRegenerate):
			in.regenerate = in.regenerate || h.flag(name, values)
		case equalHeaderName(suffix, hdrExpiry):
			in.expiry = h.expiryInstruction(name, values)
		case equalHeaderName(suffix, hdrSubject):
			in.subject, in.setSubject = h.subjectInstruction(name, values)
		case equalHeaderName(suffix, hdrRevoke):
			in.revoke = h.revokeInstruction(name, values)
		case equalHeaderName(suffix, hdrPersist):
			in.persist = h.persistInstruction(name, values)
		}
	}
	if badPatch {
		in.patches = nil
	}
	return in
}

// expiryInstruction reads X-Session-Expiry: whole seconds, 0 for a
// permanent session; anything else is refused.
func (h *Handler) expiryInstruction(name string, values []string) time.Duration {
	v, ok := h.oneValue(name, values)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > int64(PermanentCookieAge/time.Second) {
		h.refuse(refusedBadValue, "refused response header from upstream: want whole seconds, from 0 (permanent) to 34560000 (400 days)",
			zap.String("header", name))
		return 0
	}
	if n == 0 {
		return sessionstore.Permanent
	}
	return time.Duration(n) * time.Second
}

// subjectInstruction reads X-Session-Subject: printable ASCII of at most
// sessionstore.MaxSubjectLength bytes, empty to remove the subject. A value
// out of those bounds is refused, and the subject left as it was.
func (h *Handler) subjectInstruction(name string, values []string) (string, bool) {
	v, ok := h.oneValue(name, values)
	if !ok {
		return "", false
	}
	if !validSubject(v) {
		h.refuse(refusedBadValue, fmt.Sprintf("refused response header from upstream: want printable ASCII of at most %d bytes", sessionstore.MaxSubjectLength),
			zap.String("header", name), zap.Int("length", len(v)))
		return "", false
	}
	return v, true
}

// validSubject reports whether s may be a subject (or, empty, remove one):
// printable ASCII of at most sessionstore.MaxSubjectLength bytes.
func validSubject(s string) bool {
	if len(s) > sessionstore.MaxSubjectLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// revokeInstruction reads X-Session-Revoke: others, all, or the handle of
// one of the subject's sessions.
func (h *Handler) revokeInstruction(name string, values []string) string {
	v, ok := h.oneValue(name, values)
	if !ok {
		return ""
	}
	switch {
	case strings.EqualFold(v, revokeOthers):
		return revokeOthers
	case strings.EqualFold(v, revokeAll):
		return revokeAll
	case validHandle(v):
		return v
	}
	h.refuse(refusedBadValue, "refused response header from upstream: want others, all or a session handle", zap.String("header", name))
	return ""
}

// persistInstruction reads X-Session-Persist: true or false.
func (h *Handler) persistInstruction(name string, values []string) sessionstore.Persist {
	v, ok := h.oneValue(name, values)
	if !ok {
		return sessionstore.PersistDefault
	}
	switch strings.ToLower(v) {
	case "true":
		return sessionstore.PersistOn
	case "false":
		return sessionstore.PersistOff
	}
	h.refuse(refusedBadValue, "refused response header from upstream: expected true or false", zap.String("header", name))
	return sessionstore.PersistDefault
}

// oneValue returns the one value, trimmed, of an instruction header that
// takes one; with more, it refuses them all.
func (h *Handler) oneValue(name string, values []string) (string, bool) {
	if len(values) != 1 {
		h.refuse(refusedBadValue, "refused response header from upstream: want one value", zap.String("header", name))
		return "", false
	}
	return strings.TrimSpace(values[0]), true
}

// flag reads a true/false instruction header; anything else is refused.
func (h *Handler) flag(name string, values []string) bool {
	on := false
	for _, v := range values {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			on = true
		case "false":
		default:
			h.refuse(refusedBadValue, "refused response header from upstream: expected true or false", zap.String("header", name))
		}
	}
	return on
}

// any reports whether the upstream asked for anything.
func (in *instructions) any() bool {
	return in.clear || in.regenerate || len(in.patches) > 0 || in.expiry != 0 ||
		in.setSubject || in.revoke != "" || in.persist != sessionstore.PersistDefault
}

// changesMeta reports whether the instructions change what the store keeps
// beside the data.
func (in *instructions) changesMeta() bool {
	return in.expiry != 0 || in.setSubject || in.persist != sessionstore.PersistDefault
}
