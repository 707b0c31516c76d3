package caddymodule

// The devices endpoint: the current user's sessions as JSON, for a "your
// devices" page, and DELETE to sign one of them out.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// DefaultDevicesLimit is how many sessions the devices endpoint lists
// unless asked for another number (?limit=, up to
// sessionstore.MaxSubjectSessions).
const DefaultDevicesLimit = 100

// deviceJSON is one session in the devices endpoint's answer.
type deviceJSON struct {
	Handle    string `json:"handle"`
	Current   bool   `json:"current"`
	Created   string `json:"created,omitempty"`
	LastSeen  string `json:"last_seen"`
	UserAgent string `json:"user_agent,omitempty"`
	IP        string `json:"ip,omitempty"`
}

// devicesJSON is the devices endpoint's answer to GET.
type devicesJSON struct {
	Sessions []deviceJSON `json:"sessions"`
	Total    int          `json:"total"`
}

// devicesTarget reports whether path is the devices endpoint's, and the
// handle it names (empty for the list).
func (h *Handler) devicesTarget(path string) (handle string, ok bool) {
	if h.Devices == "" {
		return "", false
	}
	if path == h.Devices {
		return "", true
	}
	// The list with a slash, or a handle: devicesPrefix is made once, so
	// that every request's look at its path costs no allocation.
	return strings.CutPrefix(path, h.devicesPrefix)
}

// serveDevices answers a request to the devices endpoint, for the
// request's session.
func (h *Handler) serveDevices(w http.ResponseWriter, r *http.Request, sess *session, handle string) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	varyOnCookie(hdr, new([1]string))
	ctx := context.WithoutCancel(r.Context())
	stored := !sess.isNew
	switch {
	case handle == "" && r.Method != http.MethodGet && r.Method != http.MethodHead:
		hdr.Set("Allow", "GET, HEAD")
		return h.devicesError(w, r, sess, stored, http.StatusMethodNotAllowed, "use GET to list the sessions")
	case handle != "" && r.Method != http.MethodDelete:
		hdr.Set("Allow", "DELETE")
		return h.devicesError(w, r, sess, stored, http.StatusMethodNotAllowed, "use DELETE to end a session")
	case handle != "" && !sameOrigin(r):
		// Checked first: another site learns nothing, not even whether
		// its victim is signed in.
		return h.devicesError(w, r, sess, stored, http.StatusForbidden, "cross-origin request refused: send it from this site (Sec-Fetch-Site: same-origin, or an Origin of this host)")
	case sess.storeFailed:
		return h.devicesError(w, r, sess, stored, http.StatusServiceUnavailable, "the session store is unavailable")
	case !stored || sess.meta.Subject == "":
		return h.devicesError(w, r, sess, stored, http.StatusUnauthorized, "this session has no subject: sign in first")
	}

	if handle != "" {
		if !validHandle(handle) {
			return h.devicesError(w, r, sess, stored, http.StatusNotFound, "no such session")
		}
		key, err := h.deleteHandle(ctx, r, sess.meta.Subject, handle, revokedByDevices)
		switch {
		case errors.Is(err, sessionstore.ErrNotFound):
			return h.devicesError(w, r, sess, stored, http.StatusNotFound, "no such session")
		case err != nil:
			h.logStoreError("ending a session from the devices endpoint failed", sess.id, err)
			return h.devicesError(w, r, sess, stored, http.StatusServiceUnavailable, "the session store is unavailable")
		}
		h.logEvent("session ended from the devices endpoint", sess.id, zap.Bool("current", key == h.storeKey(sess)))
		if key == h.storeKey(sess) {
			h.endedHere(sess)
			stored = false
		}
		h.updateCookie(r, hdr, sess, stored, !stored, new([1]string))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	limit := DefaultDevicesLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > sessionstore.MaxSubjectSessions {
			return h.devicesError(w, r, sess, stored, http.StatusBadRequest, "limit: want a number from 1 to "+strconv.Itoa(sessionstore.MaxSubjectSessions))
		}
		limit = n
	}
	list, total, err := h.subjectSessions(ctx, r, sess.meta.Subject, limit)
	if err != nil {
		h.logStoreError("listing a subject's sessions for the devices endpoint failed", sess.id, err)
		return h.devicesError(w, r, sess, stored, http.StatusServiceUnavailable, "the session store is unavailable")
	}
	out := devicesJSON{Sessions: make([]deviceJSON, 0, len(list)), Total: total}
	current := h.storeKey(sess)
	for _, s := range list {
		out.Sessions = append(out.Sessions, h.deviceOf(s, current))
	}
	return h.devicesReply(w, r, sess, stored, http.StatusOK, out)
}

// deviceOf is a listed session as the devices endpoint and the admin API
// show it: by its handle, never its ID.
func (h *Handler) deviceOf(s sessionstore.SubjectSession, current string) deviceJSON {
	d := deviceJSON{
		Handle:    handleOf(s.Key),
		Current:   s.Key == current,
		LastSeen:  s.LastSeen.UTC().Format(time.RFC3339),
		UserAgent: s.Meta.UserAgent,
		IP:        s.Meta.Addr,
	}
	if !s.Meta.Created.IsZero() {
		d.Created = s.Meta.Created.UTC().Format(time.RFC3339)
	}
	return d
}

// devicesError answers with a JSON error.
func (h *Handler) devicesError(w http.ResponseWriter, r *http.Request, sess *session, stored bool, status int, msg string) error {
	return h.devicesReply(w, r, sess, stored, status, map[string]string{"error": msg})
}

// devicesReply writes v as the JSON answer, with the session cookie's
// renewal as any response of the session would carry it.
func (h *Handler) devicesReply(w http.ResponseWriter, r *http.Request, sess *session, stored bool, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hdr := w.Header()
	h.updateCookie(r, hdr, sess, stored, false, new([1]string))
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(append(body, '\n'))
	return err
}

// sameOrigin reports whether a request is shown to come from a page of
// its own site: by Sec-Fetch-Site, which browsers send and pages cannot
// forge, or else by an Origin naming the request's host (and, on a request
// that came over TLS, https). A request with neither is refused: it may
// come from an old browser that sent no proof.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return false
	}
	// Behind a proxy that ends TLS the request may be plain HTTP while
	// the page is https: only a TLS request pins the scheme.
	return r.TLS == nil || strings.EqualFold(u.Scheme, "https")
}
