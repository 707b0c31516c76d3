package caddymodule

import (
	"encoding/hex"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// idLength is the length of a session ID: a UUID v4 as 32 lowercase hex
// characters, as sanic_session's uuid4().hex.
const idLength = 32

// maxCookieCopies bounds how many cookies of the session's name a request
// is searched for: a request stuffed with copies costs no more than this.
const maxCookieCopies = 16

// PermanentCookieAge is the cookie lifetime of a permanent session (expiry
// 0, or X-Session-Expiry 0): 400 days, the most that browsers keep a
// cookie. The store renews a permanent session every tenth of it
// (sessionstore.PermanentRenewInterval), and the cookie with it.
const PermanentCookieAge = 400 * 24 * time.Hour

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
				k, v, ok := strings.Cut(part, "=")
				// Spaces around the name and the value are dropped,
				// as browsers and net/http read "session =x".
				if !ok || strings.TrimSpace(k) != name {
					continue
				}
				v = strings.TrimSpace(v)
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
		return strings.TrimSpace(k) == name
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

// setCookieFormat holds the parts of the Set-Cookie values that are the
// same on every response: written once, at Provision, by net/http itself,
// so a response only appends the ID and its times. Building and validating
// an http.Cookie per response cost a noticeable part of the write path.
type setCookieFormat struct {
	nameEq   string    // "name="
	attrs    string    // "; Path=/; Domain=example.com": what comes before Expires
	tail     [2]string // "; HttpOnly; SameSite=Lax": what follows Max-Age, without and with Secure
	deletion [2]string // the whole deletion cookie, without and with Secure
}

func newSetCookieFormat(name, path, domain string, httpOnly bool, sameSite http.SameSite) setCookieFormat {
	f := setCookieFormat{nameEq: name + "="}
	f.attrs = strings.TrimPrefix((&http.Cookie{Name: name, Path: path, Domain: domain}).String(), f.nameEq)
	for i, secure := range []bool{false, true} {
		tail := &http.Cookie{Name: name, HttpOnly: httpOnly, Secure: secure, SameSite: sameSite}
		f.tail[i] = strings.TrimPrefix(tail.String(), f.nameEq)
		// The deletion cookie carries the same Name, Domain, Path, Secure
		// and SameSite as the cookie it deletes: browsers match on those,
		// and a deletion cookie without the Domain (as sanic_session
		// sends) leaves a domain cookie in place.
		deletion := &http.Cookie{
			Name: name, Path: path, Domain: domain,
			MaxAge:   -1, // written as Max-Age=0
			Expires:  time.Unix(0, 0).UTC(),
			HttpOnly: httpOnly, Secure: secure, SameSite: sameSite,
		}
		f.deletion[i] = deletion.String()
	}
	return f
}

// sessionCookie is the Set-Cookie value that carries id to the client,
// signed when there are secrets, with a lifetime of age when persistent
// (none for a browser-session cookie): the same text as net/http's
// Cookie.String, which the tests hold it to. The value needs no sanitizing: IDs and signatures are
// hex and base64url.
func (h *Handler) sessionCookie(r *http.Request, id string, age time.Duration, persistent bool, now time.Time) string {
	f := &h.cookieFormat
	value := id
	if h.signer != nil {
		value = h.signer.cookieValue(id)
	}
	var b strings.Builder
	b.Grow(len(f.nameEq) + len(value) + len(f.attrs) + len(f.tail[1]) + 64)
	b.WriteString(f.nameEq)
	b.WriteString(value)
	b.WriteString(f.attrs)
	if persistent {
		var buf [len(http.TimeFormat)]byte
		b.WriteString("; Expires=")
		b.Write(now.Add(age).UTC().AppendFormat(buf[:0], http.TimeFormat))
		b.WriteString("; Max-Age=")
		b.Write(strconv.AppendInt(buf[:0], int64(max(age/time.Second, 1)), 10))
	}
	b.WriteString(f.tail[h.secureIndex(r)])
	return b.String()
}

// deletionCookie is the Set-Cookie value that removes the session cookie
// from the client.
func (h *Handler) deletionCookie(r *http.Request) string {
	return h.cookieFormat.deletion[h.secureIndex(r)]
}

// secureIndex is 1 when the cookie is Secure on this request, else 0.
func (h *Handler) secureIndex(r *http.Request) int {
	if h.secure == secureAlways || h.secure == secureAuto && r.TLS != nil {
		return 1
	}
	return 0
}

// updateCookie sends the cookie when the client's copy is missing, stale
// or due for renewal, and deletes it when the session ended or never was.
// It reports whether it set or deleted a cookie.
func (h *Handler) updateCookie(r *http.Request, hdr http.Header, sess *session, stored, changed bool, slot *[1]string) bool {
	switch {
	case sess.followed || sess.superseded:
		// The session moved to a new ID under this request: the client
		// holds, or is about to get, its new cookie, which any cookie
		// sent here would overwrite.
	case stored:
		persistent := h.persistentCookie(sess)
		if changed || sess.id != sess.clientID || sess.renewed && persistent || sess.resign {
			now := time.Now()
			addValue(hdr, "Set-Cookie", h.sessionCookie(r, sess.id, h.cookieAgeOf(sess, now), persistent, now), slot)
			return true
		}
	case sess.cookiesSent == 1 && !sess.storeFailed && !sess.foreign:
		// The client holds a cookie of a session that is cleared,
		// unknown, expired or malformed: delete it, so it stops costing
		// a store lookup on every request. With several cookies of the
		// name (one may be a sibling domain's, or planted), a deletion
		// cookie could delete the wrong one, so none is sent.
		addValue(hdr, "Set-Cookie", h.deletionCookie(r), slot)
		return true
	}
	return false
}

// persistentCookie reports whether the session's cookie has a lifetime
// (Max-Age): its own choice (X-Session-Persist) if it made one, else the
// handler's sessioncookie.
func (h *Handler) persistentCookie(sess *session) bool {
	switch sess.meta.Persist {
	case sessionstore.PersistOn:
		return true
	case sessionstore.PersistOff:
		return false
	}
	return !h.SessionCookie
}

// cookieAgeOf is the cookie lifetime of a session: its own expiry if it
// has one, else the handler's, and never past its max_lifetime.
func (h *Handler) cookieAgeOf(sess *session, now time.Time) time.Duration {
	age := h.cookieAge
	switch own := sess.meta.Expiry; {
	case own == sessionstore.Permanent:
		age = PermanentCookieAge
	case own > 0:
		age = own
	}
	if h.MaxLifetime > 0 && !sess.meta.Created.IsZero() {
		if left := sess.meta.Created.Add(time.Duration(h.MaxLifetime)).Sub(now); left < age {
			age = max(left, time.Second)
		}
	}
	return age
}
