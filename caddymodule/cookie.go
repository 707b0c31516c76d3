package caddymodule

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// idLength is the length of a session ID: a UUID v4 as 32 lowercase hex
// characters, as sanic_session's uuid4().hex.
const idLength = 32

// permanentCookieAge is the cookie lifetime of a permanent session (expiry
// 0): 400 days, the most that browsers keep a cookie.
const permanentCookieAge = 400 * 24 * time.Hour

// newID returns a fresh random session ID.
func newID() (string, error) {
	u, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("generating session ID: %w", err)
	}
	var buf [idLength]byte
	hex.Encode(buf[:], u[:])
	return string(buf[:]), nil
}

// validID reports whether s has the form of a session ID. Only such values
// are ever looked up in the store.
func validID(s string) bool {
	if len(s) != idLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// readSessionCookie scans the Cookie headers for cookies named name without
// parsing the others. It returns the first value that is a well-formed ID,
// and whether any cookie of that name was present at all.
func readSessionCookie(h http.Header, name string) (id string, present bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			present = true
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if validID(v) {
				return v, true
			}
		}
	}
	return "", present
}

// removeSessionCookie deletes the cookies named name from the Cookie
// headers, keeping the others as they were.
func removeSessionCookie(h http.Header, name string) {
	lines := h["Cookie"]
	kept := lines[:0:0]
	for _, line := range lines {
		var parts []string
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			part = strings.TrimSpace(part)
			if k, _, _ := strings.Cut(part, "="); k == name || part == "" {
				continue
			}
			parts = append(parts, part)
		}
		if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// sessionCookie is the cookie that carries id to the client.
func (h *Handler) sessionCookie(r *http.Request, id string, now time.Time) *http.Cookie {
	c := h.cookieBase(r)
	c.Value = id
	if !h.SessionCookie {
		c.MaxAge = int(h.cookieAge / time.Second)
		c.Expires = now.Add(h.cookieAge).UTC()
	}
	return c
}

// deletionCookie removes the session cookie from the client. It carries the
// same Name, Domain, Path, Secure and SameSite as the cookie it deletes:
// browsers match on those, and a deletion cookie without the Domain (as
// sanic_session sends) leaves a domain cookie in place.
func (h *Handler) deletionCookie(r *http.Request) *http.Cookie {
	c := h.cookieBase(r)
	c.MaxAge = -1 // written as Max-Age=0
	c.Expires = time.Unix(0, 0).UTC()
	return c
}

func (h *Handler) cookieBase(r *http.Request) *http.Cookie {
	return &http.Cookie{
		Name:     h.CookieName,
		Path:     h.Path,
		Domain:   h.Domain,
		HttpOnly: h.httpOnly,
		Secure:   h.secure == secureAlways || h.secure == secureAuto && r.TLS != nil,
		SameSite: h.sameSite,
	}
}
