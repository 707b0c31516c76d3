package caddymodule

// The life of a session: loaded from the client's cookie under the ID rules,
// then cleared, regenerated or patched as the upstream asks.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// session is the state of one request's session.
type session struct {
	id    string
	data  string // canonical JSON, "{}" when empty
	isNew bool   // no stored session backed the request's cookie
	// clientID is the ID of the client's cookie that was used: the one
	// the store held, or, when none was, the first well-formed one.
	clientID string
	// cookiesSent is how many cookies of our name the request carried (up
	// to maxCookieCopies). With more than one, no deletion cookie is sent:
	// it could not say which one it deletes.
	cookiesSent int
	// resign: the cookie used was signed with an older secret (or an
	// older signature format), so it is re-issued, signed with the first.
	resign bool
	// superseded: the client's cookie names a session that a regenerate
	// moved to a new ID moments ago (a request that was in flight, or
	// sent before the new cookie arrived). The client has the new cookie
	// or is about to: this response sets none, and the upstream's changes
	// to the empty session it sees are dropped.
	superseded bool
	// foreign: the client's cookie names a session of another site (see
	// scopeMatches). It is not this site's to delete.
	foreign bool
	// followed: the session moved to a new ID (a concurrent regenerate)
	// after this request loaded it, and this request's changes went to
	// it there. The new ID is never this request's to hand out: the
	// response sets no cookie.
	followed bool
	// renewed: loading the session renewed its lifetime in the store.
	renewed bool
	// storeFailed: the store could not say whether the session exists,
	// so the client's cookie is left alone.
	storeFailed bool
	// meta is what the store keeps beside the data: the creation time
	// (with max_lifetime) and the session's own expiry.
	meta sessionstore.Meta
	// key is a store key built for the session, kept so that a request
	// loading and then changing its session builds it once; see storeKey.
	key string
}

// storeKey returns the session's key in the store: the one kept, unless
// the session's ID has changed since it was built.
func (h *Handler) storeKey(sess *session) string {
	if len(sess.key) != len(h.prefix)+len(sess.id) || sess.key[len(h.prefix):] != sess.id {
		sess.key = h.prefix + sess.id
	}
	return sess.key
}

// loadSession reads the session cookie and the stored session it names. A
// value that is not a well-formed (and, with secrets, well-signed) ID, or
// an ID the store does not hold, never becomes the session's ID: the
// session starts anew with a random one.
func (h *Handler) loadSession(r *http.Request, sess *session) error {
	var cands clientCookies
	h.readClientIDs(r.Header, &cands)
	*sess = session{data: mergepatch.EmptyData, isNew: true, cookiesSent: cands.sent}
	if cands.rejected != "" {
		h.reject(cands.rejected)
	}
	if cands.n > 0 {
		sess.clientID = cands.ids[0]
	}
	// Each well-formed cookie is looked up in order, and the first the
	// store holds is the session: a cookie tossed in beside the real one
	// (by a sibling subdomain, say) neither hides it nor gets it deleted.
	for i := range cands.n {
		id := cands.ids[i]
		key := h.prefix + id
		entry, err := h.sessions.Load(r.Context(), key, h.expiry)
		switch {
		case err == nil && entry.Meta.Scope != "" && !h.scopeMatches(entry.Meta.Scope, r):
			// Another site's session: as if unknown here, and left
			// alone, since the cookie is that site's.
			sess.foreign = true
			h.reject(rejectedForeign)
		case errors.Is(err, sessionstore.ErrMoved):
			sess.superseded = true
		case err == nil && h.outlived(entry.Meta):
			h.endOutlived(r.Context(), id)
		case err == nil:
			sess.id, sess.data, sess.isNew, sess.renewed, sess.meta = id, entry.Data, false, entry.Renewed, entry.Meta
			sess.clientID, sess.resign, sess.key = id, cands.stale[i], key
			sess.superseded, sess.foreign = false, false // another cookie's
			return nil
		case errors.Is(err, sessionstore.ErrNotFound):
			h.reject(rejectedUnknown)
		case h.failClosed:
			h.logStoreError("loading session failed; refusing the request (on_error closed)", id, err)
			return caddyhttp.Error(http.StatusServiceUnavailable, err)
		default:
			// The store cannot say whether this cookie's session
			// exists: it is the client's, and is left alone.
			sess.storeFailed, sess.clientID = true, id
			h.logStoreError("loading session failed; serving the request with a new session", id, err)
		}
		if sess.storeFailed {
			break
		}
	}
	var err error
	if sess.id, err = newID(); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return nil
}

// maxCookieLookups bounds the store lookups one request's session cookies
// cost: a request stuffed with well-formed IDs is looked up this often.
const maxCookieLookups = 4

// clientCookies are the session IDs a request's cookies carry.
type clientCookies struct {
	ids [maxCookieLookups]string
	// stale[i]: ids[i] was signed with an older secret or format.
	stale [maxCookieLookups]bool
	n     int
	// sent counts the cookies of the name, well-formed or not.
	sent int
	// rejected is why the first refused value was refused, if one was.
	rejected string
}

// readClientIDs reads the session IDs the request's cookies carry, in
// order, distinct, and why a refused value was refused. With secrets, only
// a value whose signature holds gives an ID. Only the first
// maxCookieCopies cookies of the name are looked at, and the first
// maxCookieLookups IDs kept; reading costs no store lookup.
func (h *Handler) readClientIDs(hdr http.Header, c *clientCookies) {
	for v := range sessionCookieValues(hdr, h.CookieName) {
		c.sent++
		id, stale, ok := v, false, false
		if h.signer == nil {
			ok = validID(v)
		} else {
			id, stale, ok = h.signer.verifyCookie(v)
		}
		switch {
		case !ok:
			if c.rejected == "" {
				c.rejected = rejectedMalformed
				if h.signer != nil && strings.Contains(v, ".") {
					c.rejected = rejectedBadSignature
				}
			}
		case c.n < maxCookieLookups && !slices.Contains(c.ids[:c.n], id):
			c.ids[c.n], c.stale[c.n] = id, stale
			c.n++
		}
	}
	if c.n > 0 {
		// A refused value beside a usable one is not counted: the
		// client's session was found by its cookie.
		c.rejected = ""
	}
}

// outlived reports whether a session has passed max_lifetime.
func (h *Handler) outlived(m sessionstore.Meta) bool {
	return h.MaxLifetime > 0 && !m.Created.IsZero() && time.Since(m.Created) >= time.Duration(h.MaxLifetime)
}

// endOutlived deletes a session that has passed max_lifetime.
func (h *Handler) endOutlived(ctx context.Context, id string) {
	err := h.sessions.Delete(context.WithoutCancel(ctx), h.prefix+id)
	if err != nil {
		h.logStoreError("ending a session past max_lifetime failed", id, err)
		return
	}
	h.metrics.destroyed(destroyedExpired)
	h.logEvent("session ended: max_lifetime reached", id)
}

// apply carries out the upstream's instructions on the session, in the
// order Clear, Regenerate, Set, and sets or deletes the cookie and the
// headers that go with it, in the preallocated slots of out.
func (h *Handler) apply(r *http.Request, hdr http.Header, sess *session, in instructions, out *responseValues) {
	stored, changed := !sess.isNew, false
	switch {
	case !in.any():
		// The common response: nothing to write, at most a renewal.
	case sess.superseded:
		h.refuse(refusedSuperseded, "the request came with a session ID that a regenerate has just replaced, so the upstream's changes are dropped (the client has the new cookie)",
			zap.String("session_hash", idHash(sess.clientID)))
	case sess.storeFailed:
		h.applyUnloaded(context.WithoutCancel(r.Context()), sess, in)
	default:
		ctx := context.WithoutCancel(r.Context()) // the client leaving must not tear a write
		loadedSubject := sess.meta.Subject
		if in.clear {
			stored = h.clear(ctx, sess, stored)
		}
		if in.regenerate && !in.clear {
			stored = h.regenerate(ctx, sess, stored)
		}
		patched := false
		if len(in.patches) > 0 || in.changesMeta() && stored {
			// A change of what is kept beside the data alone is a
			// patch with no changes: it rewrites the entry with it.
			stored, changed = h.patch(ctx, r, sess, stored, &in)
			patched = true
		}
		if !stored && (!patched || changed) && (in.setSubject && in.subject != "" || in.persist != sessionstore.PersistDefault) {
			// (A patch that failed or was refused has said why already.)
			h.refuse(refusedNoSession, "refused "+h.names.headerPrefix+"Subject or "+h.names.headerPrefix+"Persist from upstream: the session holds no data (send them with the data that logs the user in)",
				zap.String("session_hash", idHash(sess.id)))
		}
		if in.revoke != "" {
			if sess.followed {
				h.refuse(refusedSuperseded, "refused "+h.names.headerPrefix+"Revoke from upstream: the session moved to a new ID under this request (a concurrent regenerate), whose own response speaks for it",
					zap.String("session_hash", idHash(sess.id)))
			} else {
				subject := sess.meta.Subject
				if subject == "" && in.clear {
					// A logout that signs out the other devices too:
					// the Revoke acts on the subject the session had.
					subject = loadedSubject
				}
				if h.revoke(ctx, r, sess, stored, subject, in.revoke) {
					stored, changed = false, true
				}
			}
		}
	}
	if h.updateCookie(r, hdr, sess, stored, changed, &out.setCookie) {
		keepOutOfSharedCaches(hdr, &out.cacheControl)
	}
	varyOnCookie(hdr, &out.vary)
}

// applyUnloaded handles the instructions for a session the store failed to
// load: the client's session may exist, so nothing may replace it. Changes
// are dropped (the client keeps its cookie); a Clear still deletes the
// client's session, since a logout must not be lost, and once that worked
// the cookie is deleted like any other that leads to no session.
func (h *Handler) applyUnloaded(ctx context.Context, sess *session, in instructions) {
	if len(in.patches) > 0 || in.regenerate || in.changesMeta() || in.revoke != "" {
		h.refuse(refusedUnloaded, "the session could not be loaded, so the upstream's changes to it are dropped",
			zap.String("session_hash", idHash(sess.clientID)))
	}
	if !in.clear || sess.clientID == "" {
		return
	}
	err := h.sessions.Delete(ctx, h.prefix+sess.clientID)
	if err != nil {
		h.logStoreError("clearing session failed; the stored session is left as it was", sess.clientID, err)
		return
	}
	h.metrics.destroyed(destroyedCleared)
	h.logEvent("session cleared", sess.clientID)
	sess.storeFailed = false // the store has answered: the session is gone
}

// clear empties the session and deletes its entry. A cleared ID is never
// used again, even if the same response sets new data.
func (h *Handler) clear(ctx context.Context, sess *session, stored bool) bool {
	if stored {
		err := h.sessions.Delete(ctx, h.storeKey(sess))
		if err != nil {
			h.logStoreError("clearing session failed; the stored session is left as it was", sess.id, err)
		} else {
			h.metrics.destroyed(destroyedCleared)
			h.logEvent("session cleared", sess.id)
		}
	}
	h.endedHere(sess)
	return false
}

// endedHere makes the request's session the empty session that follows
// its end (a clear, a revoke): new data goes to a new ID, and the cookie
// is deleted.
func (h *Handler) endedHere(sess *session) {
	sess.data, sess.meta = mergepatch.EmptyData, sessionstore.Meta{}
	h.renewID(sess)
}

// regenerate gives the session a new ID; a stored session's entry moves to
// it in one step.
func (h *Handler) regenerate(ctx context.Context, sess *session, stored bool) bool {
	oldID := sess.id
	h.renewID(sess)
	if !stored {
		return false
	}
	err := h.sessions.Rename(ctx, h.prefix+oldID, h.prefix+sess.id, sessionstore.RenameOptions{TTL: h.expiry, Grace: h.grace})
	switch {
	case errors.Is(err, sessionstore.ErrMoved):
		// Another request (a login form sent twice) regenerated the
		// session a moment ago: its ID stands. This request's changes
		// follow the move, and its response sets no cookie.
		sess.id, sess.followed = oldID, true
		return true
	case err == nil:
		h.metrics.destroyed(destroyedRegenerated)
		h.logEvent("session regenerated", oldID, zap.String("new_session_hash", idHash(sess.id)))
		return true
	case errors.Is(err, sessionstore.ErrNotFound):
		sess.data, sess.meta = mergepatch.EmptyData, sessionstore.Meta{}
		return false
	default:
		h.logStoreError("regenerating session failed; the session keeps its ID", oldID, err)
		sess.id = oldID // the old entry is still the session
		return true
	}
}

// patch applies the merge patches, and the changes to what is kept beside
// the data (own expiry, subject, persist), to the stored session, and
// reports whether the session is stored afterwards and whether it changed.
// A change over max_size is refused.
func (h *Handler) patch(ctx context.Context, r *http.Request, sess *session, stored bool, in *instructions) (nowStored, changed bool) {
	patches := in.patches
	opts := sessionstore.PatchOptions{
		TTL:        h.expiry,
		Create:     !stored,
		MaxSize:    h.MaxSize,
		SetCreated: h.MaxLifetime > 0 || in.setSubject,
		Expiry:     in.expiry,
		Persist:    in.persist,
	}
	if in.setSubject {
		opts.Subject = &in.subject
	}
	if h.record.any() && in.setSubject && in.subject != "" {
		// The client is recorded at a login (a session given a
		// subject), not on every change, nor for sessions nobody can
		// list.
		h.recordClient(r, &opts)
	}
	if sess.meta.Scope == "" {
		// A new session, or one stored before scopes: the store records
		// this site's scope (and keeps one an entry already has).
		opts.Scope = h.scopeOf(r)
	}
	data, err := h.sessions.Patch(ctx, h.storeKey(sess), patches, opts)
	var moved *sessionstore.MovedError
	if errors.As(err, &moved) {
		// A regenerate moved the session after this request loaded it:
		// the changes go to where it is now, once, and the response
		// keeps its hands off the cookie (the client has, or is about
		// to get, the new one; this request may never reveal it).
		followOpts := opts
		followOpts.Create = false
		if data, err = h.sessions.Patch(ctx, moved.To, patches, followOpts); err == nil {
			sess.followed = true
			h.logEvent("session changes followed a regenerate to the new ID", sess.id)
		}
	}
	if errors.Is(err, sessionstore.ErrNotFound) {
		// The session ended (expired, or cleared by a concurrent
		// request) since this request loaded it: the changes start a
		// new session rather than bring the old ID back.
		if sess.meta.Subject != "" {
			// A signed-in session that ended meanwhile was signed out
			// (revoked, or cleared by a logout): a request still in
			// flight must not sign it back in under a new ID, out of
			// reach of the next sign-out.
			h.refuse(refusedEnded, "refused the upstream's changes: the session was signed out since this request loaded it",
				zap.String("session_hash", idHash(sess.id)))
			h.endedHere(sess)
			return false, false
		}
		stored, opts.Create = false, true
		sess.meta = sessionstore.Meta{}
		h.renewID(sess)
		data, err = h.sessions.Patch(ctx, h.storeKey(sess), patches, opts)
	}
	switch {
	case errors.Is(err, sessionstore.ErrTooLarge):
		h.refuse(refusedTooLarge, "refused "+h.names.headerPrefix+"Set from upstream: the session would pass max_size; the stored session is left as it was",
			zap.String("session_hash", idHash(sess.id)), zap.Int("max_size", h.MaxSize))
		return stored, false
	case err != nil:
		h.logStoreError("saving session changes failed; the stored session is left as it was", sess.id, err)
		return stored, false
	}
	sess.data = data
	if in.expiry != 0 {
		sess.meta.Expiry = in.expiry
	}
	if in.setSubject {
		sess.meta.Subject = in.subject
	}
	if in.persist != sessionstore.PersistDefault {
		sess.meta.Persist = in.persist
	}
	if opts.SetCreated && sess.meta.Created.IsZero() {
		sess.meta.Created = time.Now()
	}
	nowStored = data != mergepatch.EmptyData
	if nowStored && !stored {
		h.metrics.created.Inc()
		h.logEvent("session created", sess.id)
	}
	return nowStored, true
}

// renewID gives the session a fresh ID. If the random source fails, the old
// ID stays: Caddy cannot run without one, so that does not happen in
// practice.
func (h *Handler) renewID(sess *session) {
	id, err := newID()
	if err != nil {
		h.logger.Error("generating session ID failed", zap.Error(err))
		return
	}
	sess.id = id
}
