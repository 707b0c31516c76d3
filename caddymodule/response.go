package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// instructions are the changes the upstream asked for in its response.
type instructions struct {
	patches    []string
	clear      bool
	regenerate bool
	// expiry is the session's own idle expiry (X-Session-Expiry): 0 when
	// not given, sessionstore.Permanent for "0".
	expiry time.Duration
}

// takeInstructions removes every header with the session's prefix from the
// response, so none reaches the client, and returns the instructions among
// them. An X-Session-Set that is not a JSON object refuses all patches of
// the response, leaving the data as it was.
//
// The patches are appended to patches, whose room saves the common
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
				if err := mergepatch.Validate(v); err != nil {
					badPatch = true
					h.logger.Error("refused "+h.names.headerPrefix+"Set from upstream: the session is left as it was",
						zap.String("session_name", h.SessionName), zap.Error(err))
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
	if len(values) != 1 {
		h.logger.Error("refused response header from upstream: want one value", zap.String("session_name", h.SessionName), zap.String("header", name))
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(values[0]), 10, 64)
	if err != nil || n < 0 || n > int64(PermanentCookieAge/time.Second) {
		h.logger.Error("refused response header from upstream: want whole seconds, from 0 (permanent) to 34560000 (400 days)",
			zap.String("session_name", h.SessionName), zap.String("header", name))
		return 0
	}
	if n == 0 {
		return sessionstore.Permanent
	}
	return time.Duration(n) * time.Second
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
			h.logger.Error("refused response header from upstream: expected true or false",
				zap.String("session_name", h.SessionName), zap.String("header", name))
		}
	}
	return on
}

// apply carries out the upstream's instructions on the session, in the
// order Clear, Regenerate, Set, and sets or deletes the cookie and the
// headers that go with it, in the room out gives them.
func (h *Handler) apply(r *http.Request, hdr http.Header, sess *session, in instructions, out *responseValues) {
	stored, changed := !sess.isNew, false
	switch {
	case !in.any():
		// The common response: nothing to write, at most a renewal.
	case sess.storeFailed:
		h.applyUnloaded(context.WithoutCancel(r.Context()), sess, in)
	default:
		ctx := context.WithoutCancel(r.Context()) // the client leaving must not tear a write
		if in.clear {
			stored = h.clear(ctx, sess, stored)
		}
		if in.regenerate && !in.clear {
			stored = h.regenerate(ctx, sess, stored)
		}
		if len(in.patches) > 0 || in.expiry != 0 && stored {
			// An expiry alone is a patch with no changes: it rewrites
			// the entry with its new lifetime.
			stored, changed = h.patch(ctx, sess, stored, in.patches, in.expiry)
		}
	}
	if h.updateCookie(r, hdr, sess, stored, changed, &out.setCookie) {
		keepOutOfSharedCaches(hdr, &out.cacheControl)
	}
	varyOnCookie(hdr, &out.vary)
}

// responseValues back the response header values the handler sets, so
// that a header the response does not have yet needs no slice of its own.
type responseValues struct {
	vary, setCookie, cacheControl [1]string
}

// addValue adds value to the header key, in room when the header is new.
// The slice it makes has no spare capacity, so whoever appends to it
// later copies it rather than write into room.
func addValue(hdr http.Header, key, value string, room *[1]string) {
	if old := hdr[key]; len(old) > 0 {
		hdr[key] = append(old, value)
		return
	}
	room[0] = value
	hdr[key] = room[:]
}

// any reports whether the upstream asked for anything.
func (in *instructions) any() bool {
	return in.clear || in.regenerate || len(in.patches) > 0 || in.expiry != 0
}

// applyUnloaded handles the instructions for a session the store failed to
// load: the client's session may exist, so nothing may replace it. Changes
// are dropped (the client keeps its cookie); a Clear still deletes the
// client's session, since a logout must not be lost, and once that worked
// the cookie is deleted like any other that leads to no session.
func (h *Handler) applyUnloaded(ctx context.Context, sess *session, in instructions) {
	if len(in.patches) > 0 || in.regenerate || in.expiry != 0 {
		h.logStoreError("the session could not be loaded, so the upstream's changes to it are dropped", sess.clientID, errSessionUnloaded)
	}
	if !in.clear || sess.clientID == "" {
		return
	}
	start := time.Now()
	err := h.store.Delete(ctx, h.prefix+sess.clientID)
	h.metrics.storeOp(opDelete, start, err)
	if err != nil {
		h.logStoreError("clearing session failed; the stored session is left as it was", sess.clientID, err)
		return
	}
	h.metrics.destroyed(destroyedCleared)
	h.logEvent("session cleared", sess.clientID)
	sess.storeFailed = false // the store has answered: the session is gone
}

// errSessionUnloaded explains dropped changes in the log.
var errSessionUnloaded = errors.New("session store failed on load")

// clear empties the session and deletes its entry. A cleared ID is never
// used again, even if the same response sets new data.
func (h *Handler) clear(ctx context.Context, sess *session, stored bool) bool {
	if stored {
		start := time.Now()
		err := h.store.Delete(ctx, h.storeKey(sess))
		h.metrics.storeOp(opDelete, start, err)
		if err != nil {
			h.logStoreError("clearing session failed; the stored session is left as it was", sess.id, err)
		} else {
			h.metrics.destroyed(destroyedCleared)
			h.logEvent("session cleared", sess.id)
		}
	}
	sess.data, sess.meta = mergepatch.EmptyData, sessionstore.Meta{}
	h.renewID(sess)
	return false
}

// regenerate gives the session a new ID; a stored session's entry moves to
// it in one step.
func (h *Handler) regenerate(ctx context.Context, sess *session, stored bool) bool {
	oldID := sess.id
	h.renewID(sess)
	if !stored {
		return false
	}
	start := time.Now()
	err := h.store.Rename(ctx, h.prefix+oldID, h.prefix+sess.id, h.expiry)
	h.metrics.storeOp(opRename, start, err)
	switch {
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

// patch applies the merge patches (and a new own expiry, when not zero) to
// the stored data, and reports whether the session is stored afterwards
// and whether it changed. A change over max_size is refused.
func (h *Handler) patch(ctx context.Context, sess *session, stored bool, patches []string, expiry time.Duration) (nowStored, changed bool) {
	opts := sessionstore.PatchOptions{
		TTL:        h.expiry,
		Create:     !stored,
		MaxSize:    h.MaxSize,
		SetCreated: h.MaxLifetime > 0,
		Expiry:     expiry,
	}
	start := time.Now()
	data, err := h.store.Patch(ctx, h.storeKey(sess), patches, opts)
	h.metrics.storeOp(opPatch, start, err)
	if errors.Is(err, sessionstore.ErrNotFound) {
		// The session ended (expired, or cleared by a concurrent
		// request) since this request loaded it: the changes start a
		// new session rather than bring the old ID back.
		stored, opts.Create = false, true
		sess.meta = sessionstore.Meta{}
		h.renewID(sess)
		start = time.Now()
		data, err = h.store.Patch(ctx, h.storeKey(sess), patches, opts)
		h.metrics.storeOp(opPatch, start, err)
	}
	switch {
	case errors.Is(err, sessionstore.ErrTooLarge):
		h.logger.Error("refused "+h.names.headerPrefix+"Set from upstream: the session would pass max_size; the stored session is left as it was",
			zap.String("session_name", h.SessionName), zap.String("session_hash", idHash(sess.id)), zap.Int("max_size", h.MaxSize))
		return stored, false
	case err != nil:
		h.logStoreError("saving session changes failed; the stored session is left as it was", sess.id, err)
		return stored, false
	}
	sess.data = data
	if expiry != 0 {
		sess.meta.Expiry = expiry
	}
	if h.MaxLifetime > 0 && sess.meta.Created.IsZero() {
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

// updateCookie sends the cookie when the client's copy is missing, stale
// or due for renewal, and deletes it when the session ended or never was.
// It reports whether it set or deleted a cookie.
func (h *Handler) updateCookie(r *http.Request, hdr http.Header, sess *session, stored, changed bool, room *[1]string) bool {
	switch {
	case stored:
		if changed || sess.id != sess.clientID || sess.renewed && !h.SessionCookie {
			now := time.Now()
			addValue(hdr, "Set-Cookie", h.sessionCookie(r, sess.id, h.cookieAgeOf(sess, now), now), room)
			return true
		}
	case sess.cookiePresent && !sess.storeFailed:
		// The client holds a cookie of a session that is cleared,
		// unknown, expired or malformed: delete it, so it stops costing
		// a store lookup on every request.
		addValue(hdr, "Set-Cookie", h.deletionCookie(r), room)
		return true
	}
	return false
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

// keepOutOfSharedCaches stops shared caches from storing a response that
// sets or deletes the session cookie, which would hand one visitor's
// session to the next. Without a Cache-Control from the upstream, it adds
// `private`; with one that allows shared caching, it adds
// `no-cache="Set-Cookie"`, so caches may keep the rest of the response but
// never the cookie.
func keepOutOfSharedCaches(hdr http.Header, room *[1]string) {
	cc := hdr["Cache-Control"]
	if len(cc) == 0 {
		addValue(hdr, "Cache-Control", "private", room)
		return
	}
	for _, v := range cc {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "private", "no-store":
				return
			}
		}
	}
	hdr.Add("Cache-Control", `no-cache="Set-Cookie"`)
}

// varyOnCookie marks the response as depending on the Cookie header, as
// every response under a session does.
func varyOnCookie(hdr http.Header, room *[1]string) {
	for _, v := range hdr["Vary"] {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Cookie") {
				return
			}
		}
	}
	addValue(hdr, "Vary", "Cookie", room)
}

// sessionWriter applies the session changes when the response header is
// written, whichever way that happens: WriteHeader, the first Write,
// ReadFrom or a Flush.
type sessionWriter struct {
	caddyhttp.ResponseWriterWrapper
	h           *Handler
	r           *http.Request
	sess        *session
	wroteHeader bool
	dataFields  map[string]json.RawMessage // parsed on first use by a placeholder
	out         responseValues
	patches     [2]string // room for the upstream's X-Session-Set values
}

// WriteHeader applies the session changes, then writes the header.
func (sw *sessionWriter) WriteHeader(status int) {
	switch {
	case sw.wroteHeader:
	case status == http.StatusSwitchingProtocols || status >= 200:
		sw.wroteHeader = true
		sw.finish()
	default:
		// An informational response (100, 103) goes out with the
		// headers set at this moment; the final response's come later.
		sw.h.names.stripPrefixed(sw.Header())
	}
	sw.ResponseWriterWrapper.WriteHeader(status)
}

func (sw *sessionWriter) Write(b []byte) (int, error) {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy from reaching the underlying writer's ReadFrom,
// which would write the header without us.
func (sw *sessionWriter) ReadFrom(src io.Reader) (int64, error) {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriterWrapper.ReadFrom(src)
}

// FlushError is what http.ResponseController calls to flush.
func (sw *sessionWriter) FlushError() error {
	if !sw.wroteHeader {
		sw.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(sw.ResponseWriterWrapper.ResponseWriter).Flush()
}

// Flush implements http.Flusher for handlers that assert it directly.
func (sw *sessionWriter) Flush() { _ = sw.FlushError() }

func (sw *sessionWriter) finish() {
	hdr := sw.Header()
	sw.h.apply(sw.r, hdr, sw.sess, sw.h.takeInstructions(hdr, sw.patches[:]), &sw.out)
	sw.h.names.stripTrailerDeclarations(hdr) // no trailer of ours may even be declared
	sw.dataFields = nil
}

// Interface guards
var (
	_ http.Flusher  = (*sessionWriter)(nil)
	_ io.ReaderFrom = (*sessionWriter)(nil)
)
