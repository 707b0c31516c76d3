package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// strictBase64 decodes cookie signatures, refusing non-canonical encodings.
var strictBase64 = base64.RawURLEncoding.Strict()

// minSecretLength is the shortest secret accepted: 32 bytes, as many as
// the HMAC-SHA256 output, so the key is never the weak part.
const minSecretLength = 32

// signer signs session cookies and the session headers sent upstream, with
// HMAC-SHA256. The first secret signs; every secret verifies, so a new
// secret can be put first while cookies signed with the old still work.
// Both messages bind the session_name, so that what one handler signed is
// never taken by another that shares its secret.
//
// Cookie value: <id>.<base64url(HMAC(secret, "caddy-session cookie v2\n" + session_name + "\n" + cookie_name + "\n" + id))>
//
// Upstream header: t=<unix seconds>,v2=<hex(HMAC(secret, t + "." + session_name + "." + id + "." + new + "." + data))>
//
// The two messages cannot be mistaken for each other: one starts with a
// letter, the other with a digit. Cookies of the first format, which did
// not bind the session_name ("caddy-session cookie\n" + cookie_name +
// "\n" + id), still verify, as if signed by an older secret: they are
// re-issued in the current format on the response.
type signer struct {
	cookiePrefix       string // "caddy-session cookie v2\n<session_name>\n<cookie_name>\n"
	legacyCookiePrefix string // "caddy-session cookie\n<cookie_name>\n"
	sessionName        string
	macs               []sync.Pool
}

func newSigner(secrets []string, sessionName, cookieName string) *signer {
	s := &signer{
		cookiePrefix:       "caddy-session cookie v2\n" + sessionName + "\n" + cookieName + "\n",
		legacyCookiePrefix: "caddy-session cookie\n" + cookieName + "\n",
		sessionName:        sessionName,
		macs:               make([]sync.Pool, len(secrets)),
	}
	for i, secret := range secrets {
		key := []byte(secret)
		s.macs[i].New = func() any { return hmac.New(sha256.New, key) }
	}
	return s
}

// sum computes the HMAC of the parts with secret i into dst.
func (s *signer) sum(i int, dst []byte, parts ...string) []byte {
	mac := s.macs[i].Get().(hash.Hash)
	mac.Reset()
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	dst = mac.Sum(dst)
	s.macs[i].Put(mac)
	return dst
}

// cookieValue is the signed cookie value for id.
func (s *signer) cookieValue(id string) string {
	var buf [sha256.Size]byte
	mac := s.sum(0, buf[:0], s.cookiePrefix, id)
	return id + "." + base64.RawURLEncoding.EncodeToString(mac)
}

// verifyCookie returns the ID of a signed cookie value, whether the
// signature holds under any secret, and whether it is stale: made by a
// secret other than the first, or in the older format, so that the cookie
// is to be re-issued. A value of the wrong shape fails without computing
// anything.
func (s *signer) verifyCookie(v string) (id string, stale, ok bool) {
	id, sig, found := strings.Cut(v, ".")
	if !found || !validID(id) || base64.RawURLEncoding.DecodedLen(len(sig)) != sha256.Size {
		return "", false, false
	}
	var given [sha256.Size]byte
	// Strict: the last character's spare bits must be zero, so each
	// signature has exactly one accepted spelling (found by fuzzing).
	if n, err := strictBase64.Decode(given[:], []byte(sig)); err != nil || n != sha256.Size {
		return "", false, false
	}
	var want [sha256.Size]byte
	for i := range s.macs {
		if hmac.Equal(s.sum(i, want[:0], s.cookiePrefix, id), given[:]) {
			return id, i > 0, true
		}
	}
	for i := range s.macs {
		if hmac.Equal(s.sum(i, want[:0], s.legacyCookiePrefix, id), given[:]) {
			return id, true, true
		}
	}
	return "", false, false
}

// assertion is the X-Session-Signature value for the session headers, at
// unix time t.
func (s *signer) assertion(t int64, id, isNew, data string) string {
	ts := strconv.FormatInt(t, 10)
	var buf [sha256.Size]byte
	mac := s.sum(0, buf[:0], ts, ".", s.sessionName, ".", id, ".", isNew, ".", data)
	return "t=" + ts + ",v2=" + hex.EncodeToString(mac)
}
