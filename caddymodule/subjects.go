package caddymodule

// Whose session it is: the subject the upstream names, revocation of a
// subject's sessions (X-Session-Revoke), and the handles that name a
// session in a list without revealing its ID.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// handleLength is the length of a session handle: 16 bytes in base64url.
const handleLength = 22

// handleOf names the session under key in a list of a subject's sessions.
// It is a hash of the key: the same for every instance and every reload,
// and no way back to the ID.
func handleOf(key string) string {
	sum := sha256.Sum256([]byte("caddy-session handle\x00" + key))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// validHandle reports whether s has the form of a handle.
func validHandle(s string) bool {
	if len(s) != handleLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Who asked for a revocation, as caddy_session_revoked_total labels it.
const (
	revokedByOthers  = "others"  // X-Session-Revoke: others
	revokedByAll     = "all"     // X-Session-Revoke: all
	revokedByHandle  = "handle"  // X-Session-Revoke: <handle>
	revokedByDevices = "devices" // DELETE on the devices endpoint
	revokedByAdmin   = "admin"   // DELETE on the admin API
)

// owns reports whether a session the index found is this handler's to
// list and end: its ID has the form of ours (a handler whose prefix
// begins another's must not reach into it), and, when r is not nil, it
// belongs to r's site.
func (h *Handler) owns(s sessionstore.SubjectSession, r *http.Request) bool {
	if len(s.Key) < len(h.prefix) || !validID(s.Key[len(h.prefix):]) {
		return false
	}
	return r == nil || s.Meta.Scope == "" || h.scopeMatches(s.Meta.Scope, r)
}

// subjectSessions lists the subject's sessions this handler owns (see
// owns), the most recently seen first, at most limit of them, and how many
// there are.
func (h *Handler) subjectSessions(ctx context.Context, r *http.Request, subject string, limit int) ([]sessionstore.SubjectSession, int, error) {
	start := time.Now()
	all, total, err := h.subjects.ListSubject(ctx, h.prefix, subject, limit)
	h.metrics.storeOp(opListSubject, start, err)
	if err != nil {
		return nil, 0, err
	}
	// What is not this handler's to show (rare: another site on the same
	// store and prefix, or a session past max_lifetime) leaves the page
	// and the total; the page may then be shorter than limit.
	listed := len(all)
	all = slices.DeleteFunc(all, func(s sessionstore.SubjectSession) bool { return !h.owns(s, r) || h.outlived(s.Meta) })
	total -= listed - len(all)
	return all, total, nil
}

// deleteSubject ends the subject's sessions this handler owns, but those
// keep keeps, and counts them as revoked by by.
func (h *Handler) deleteSubject(ctx context.Context, r *http.Request, subject, by string, keep func(sessionstore.SubjectSession) bool) (int, error) {
	start := time.Now()
	n, err := h.subjects.DeleteSubject(ctx, h.prefix, subject, func(s sessionstore.SubjectSession) bool {
		return !h.owns(s, r) || keep != nil && keep(s)
	})
	h.metrics.storeOp(opDeleteSubject, start, err)
	h.metrics.revoked(by, n)
	return n, err
}

// deleteHandle ends the subject's session named by handle, and returns its
// key; ErrNotFound when the subject has no such session here.
func (h *Handler) deleteHandle(ctx context.Context, r *http.Request, subject, handle, by string) (string, error) {
	list, _, err := h.subjectSessions(ctx, r, subject, sessionstore.MaxSubjectSessions)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(list, func(s sessionstore.SubjectSession) bool { return handleOf(s.Key) == handle })
	if i < 0 {
		return "", sessionstore.ErrNotFound
	}
	key := list[i].Key
	if err := h.sessions.Delete(ctx, key); err != nil {
		return "", err
	}
	h.metrics.revoked(by, 1)
	return key, nil
}

// revoke carries out X-Session-Revoke for the session: subject names the
// sessions it may end (the session's, as this response leaves it, or as it
// was before a Clear of the same response). It reports whether it ended
// the session itself, which then is cleared.
func (h *Handler) revoke(ctx context.Context, r *http.Request, sess *session, stored bool, subject, what string) (ended bool) {
	refuse := func(reason, why string) {
		h.refuse(reason, "refused "+h.names.headerPrefix+"Revoke from upstream: "+why,
			zap.String("session_hash", idHash(sess.id)))
	}
	switch {
	case h.subjects == nil:
		refuse(refusedNoIndex, fmt.Sprintf("store %s cannot find sessions by subject", backendName(h.store)))
		return false
	case subject == "":
		refuse(refusedNoSubject, "the session has no subject (send "+h.names.headerPrefix+"Subject with the login)")
		return false
	}
	key := h.storeKey(sess)
	var err error
	switch what {
	case revokeOthers:
		var n int
		n, err = h.deleteSubject(ctx, r, subject, revokedByOthers, func(s sessionstore.SubjectSession) bool { return s.Key == key })
		h.logEvent("other sessions of the subject revoked", sess.id, zap.Int("sessions", n))
	case revokeAll:
		var n int
		n, err = h.deleteSubject(ctx, r, subject, revokedByAll, nil)
		h.logEvent("every session of the subject revoked", sess.id, zap.Int("sessions", n))
		if stored {
			// This one ends whatever the index said or failed to say:
			// a sign-out must never leave the session it was sent
			// from.
			if derr := h.sessions.Delete(ctx, key); derr == nil {
				ended = true
			} else if err == nil {
				err = derr
			}
		}
	default:
		var gone string
		gone, err = h.deleteHandle(ctx, r, subject, what, revokedByHandle)
		if errors.Is(err, sessionstore.ErrNotFound) {
			// A list shown a while ago: the session ended since.
			h.logEvent("revoke by handle: no such session of the subject", sess.id)
			return false
		}
		ended = err == nil && stored && gone == key
	}
	if err != nil {
		h.logStoreError("revoking sessions failed; some may be left", sess.id, err)
	}
	if ended {
		h.endedHere(sess)
	}
	return ended
}
