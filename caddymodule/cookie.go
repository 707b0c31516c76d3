package caddymodule

import (
	"encoding/hex"
	"fmt"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
)

// idLength is the length of a session ID: a UUID v4 as 32 lowercase hex
// characters, as sanic_session's uuid4().hex.
const idLength = 32

// maxCookieCopies bounds how many cookies of the session's name a request
// is searched for: a request stuffed with copies costs no more than this.
const maxCookieCopies = 16

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

// sessionCookieValues yields the values of the cookies named name in the
// Cookie headers, the first maxCookieCopies of them, without parsing the
// other cookies. Quotes around a value are dropped, as net/http does.
func sessionCookieValues(h http.Header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		seen := 0
		for _, line := range h["Cookie"] {
			for line != "" {
				var part string
				part, line, _ = strings.Cut(line, ";")
				k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
				if !ok || k != name {
					continue
				}
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				if !yield(v) {
					return
				}
				if seen++; seen == maxCookieCopies {
					return
				}
			}
		}
	}
}

// removeSessionCookie deletes the cookies named name from the Cookie
// headers, keeping the others as they were.
func removeSessionCookie(h http.Header, name string) {
	kept := filterList(h["Cookie"], ";", func(part string) bool {
		k, _, _ := strings.Cut(part, "=")
		return k == name
	})
	if len(kept) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = kept
}

// filterList drops from a header's values, each a list of items separated
// by sep, the empty items and those drop reports, and joins the rest with
// sep and a space. Values left with no item are dropped; the input slice is
// not changed.
func filterList(lines []string, sep string, drop func(item string) bool) []string {
	kept := lines[:0:0]
	for _, line := range lines {
		var items []string
		for rest := line; rest != ""; {
			var item string
			item, rest, _ = strings.Cut(rest, sep)
			if item = strings.TrimSpace(item); item != "" && !drop(item) {
				items = append(items, item)
			}
		}
		if len(items) > 0 {
			kept = append(kept, strings.Join(items, sep+" "))
		}
	}
	return kept
}

// sessionCookie is the cookie that carries id to the client, signed when
// there are secrets, with a lifetime of age.
func (h *Handler) sessionCookie(r *http.Request, id string, age time.Duration, now time.Time) *http.Cookie {
	c := h.cookieBase(r)
	c.Value = id
	if h.signer != nil {
		c.Value = h.signer.cookieValue(id)
	}
	if !h.SessionCookie {
		c.MaxAge = max(int(age/time.Second), 1)
		c.Expires = now.Add(age).UTC()
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
