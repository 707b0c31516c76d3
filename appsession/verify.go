package appsession

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxAge is how far X-Session-Signature's timestamp may be from the
// app's clock, either way, when no other is given.
const DefaultMaxAge = 5 * time.Minute

// DefaultSessionName is the gateway's default session_name.
const DefaultSessionName = "session"

// headerNames are the session headers, request and response, of one
// session_name.
type headerNames struct {
	prefix, id, data, isNew, signature string
	set, clear, regenerate, expiry     string
	subject, revoke, persist           string
}

// namesFor returns the header names the gateway uses for sessionName:
// "session" gives X-Session-*, "alt_session" X-Alt-Session-*.
func namesFor(sessionName string) headerNames {
	if sessionName == "" {
		sessionName = DefaultSessionName
	}
	p := textproto.CanonicalMIMEHeaderKey("x-" + strings.ReplaceAll(sessionName, "_", "-") + "-")
	return headerNames{
		prefix:     p,
		id:         p + "Id",
		data:       p + "Data",
		isNew:      p + "New",
		signature:  p + "Signature",
		set:        p + "Set",
		clear:      p + "Clear",
		regenerate: p + "Regenerate",
		expiry:     p + "Expiry",
		subject:    p + "Subject",
		revoke:     p + "Revoke",
		persist:    p + "Persist",
	}
}

// Verify reports whether the session headers of h (X-Session-Id,
// X-Session-New, X-Session-Data, named after sessionName) came from the
// gateway: X-Session-Signature must be "t=<unix seconds>,v2=<64 lowercase
// hex>", with v2 = HMAC-SHA256(secret, t + "." + sessionName + "." + id +
// "." + new + "." + data) under one of secrets, and t no more than maxAge
// from now, either way (maxAge <= 0 means DefaultMaxAge). Each header must
// be present exactly once and in ASCII. It is false for anything else and
// never panics; the comparison is constant-time.
func Verify(h http.Header, sessionName string, secrets []string, maxAge time.Duration) bool {
	return VerifyAt(h, sessionName, secrets, maxAge, time.Now())
}

// VerifyAt is Verify at the time now, for tests.
func VerifyAt(h http.Header, sessionName string, secrets []string, maxAge time.Duration, now time.Time) bool {
	if sessionName == "" {
		sessionName = DefaultSessionName
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	n := namesFor(sessionName)
	sig, ok1 := single(h, n.signature)
	id, ok2 := single(h, n.id)
	isNew, ok3 := single(h, n.isNew)
	data, ok4 := single(h, n.data)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(secrets) == 0 {
		return false
	}
	ts, mac, ok := parseSignature(sig)
	if !ok {
		return false
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	// Compare in seconds: t comes from the client side of the trust
	// boundary and may be anything up to 18 digits, which a Duration
	// cannot hold.
	age := now.Unix() - t
	if age < 0 {
		age = -age
	}
	if age > int64(maxAge/time.Second) {
		return false
	}
	var sum [sha256.Size]byte
	for _, secret := range secrets {
		m := hmac.New(sha256.New, []byte(secret))
		for _, p := range [...]string{ts, ".", sessionName, ".", id, ".", isNew, ".", data} {
			m.Write([]byte(p))
		}
		if hmac.Equal(m.Sum(sum[:0]), mac) {
			return true
		}
	}
	return false
}

// single returns the one value of header name in h, which must be there
// exactly once and be ASCII.
func single(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) != 1 || !isASCII(vs[0]) {
		return "", false
	}
	return vs[0], true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseSignature splits "t=<1 to 18 digits>,v2=<64 lowercase hex>", the
// only form the gateway writes, and decodes the MAC.
func parseSignature(sig string) (ts string, mac []byte, ok bool) {
	rest, found := strings.CutPrefix(sig, "t=")
	if !found {
		return "", nil, false
	}
	ts, v2, found := strings.Cut(rest, ",v2=")
	if !found || len(ts) == 0 || len(ts) > 18 || len(v2) != 2*sha256.Size {
		return "", nil, false
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return "", nil, false
		}
	}
	for i := 0; i < len(v2); i++ {
		if c := v2[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", nil, false
		}
	}
	mac, err := hex.DecodeString(v2)
	if err != nil {
		return "", nil, false
	}
	return ts, mac, true
}
