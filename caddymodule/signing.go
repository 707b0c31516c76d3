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
//
// Cookie value: <id>.<base64url(HMAC(secret, "caddy-session cookie\n" + cookie_name + "\n" + id))>
//
// Upstream header: t=<unix seconds>,v1=<hex(HMAC(secret, t + "." + id + "." + new + "." + data))>
//
// The two messages cannot be mistaken for each other: one starts with a
// letter, the other with a digit.
type signer struct {
	cookiePrefix string // "caddy-session cookie\n<cookie_name>\n"
	macs         []sync.Pool
}

func newSigner(secrets []string, cookieName string) *signer {
	s := &signer{cookiePrefix: "caddy-session cookie\n" + cookieName + "\n", macs: make([]sync.Pool, len(secrets))}
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

// verifyCookie returns the ID of a signed cookie value, and whether the
// signature holds under any secret. A value of the wrong shape fails
// without computing anything.
func (s *signer) verifyCookie(v string) (string, bool) {
	id, sig, ok := strings.Cut(v, ".")
	if !ok || !validID(id) || base64.RawURLEncoding.DecodedLen(len(sig)) != sha256.Size {
		return "", false
	}
	var given [sha256.Size]byte
	// Strict: the last character's spare bits must be zero, so each
	// signature has exactly one accepted spelling (found by fuzzing).
	if n, err := strictBase64.Decode(given[:], []byte(sig)); err != nil || n != sha256.Size {
		return "", false
	}
	var want [sha256.Size]byte
	for i := range s.macs {
		if hmac.Equal(s.sum(i, want[:0], s.cookiePrefix, id), given[:]) {
			return id, true
		}
	}
	return "", false
}

// assertion is the X-Session-Signature value for the session headers, at
// unix time t.
func (s *signer) assertion(t int64, id, isNew, data string) string {
	ts := strconv.FormatInt(t, 10)
	var buf [sha256.Size]byte
	mac := s.sum(0, buf[:0], ts, ".", id, ".", isNew, ".", data)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac)
}
