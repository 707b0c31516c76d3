// Package caddymodule is the Caddy face of caddy-session: the `session` HTTP
// handler, its Caddyfile directive and its placeholders.
package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/internal/throttle"
	"github.com/caddy-session/caddy-session/sessionstore"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, as sanic_session has them.
const (
	DefaultCookieName  = "session"
	DefaultPath        = "/"
	DefaultExpiry      = 30 * 24 * time.Hour
	DefaultPrefix      = "session:"
	DefaultSessionName = "session"
)

// renewFraction sets how often an unchanged session's lifetime is renewed:
// once at least expiry/renewFraction has passed since the last renewal.
// Renewing moves the store entry's expiry and re-sends the cookie together,
// so an unchanged session costs one Set-Cookie per tenth of its expiry
// instead of one per response.
const renewFraction = 10

// storeErrorLogInterval bounds the store failure log in a flood.
const storeErrorLogInterval = 10 * time.Second

// Handler gives the requests it handles a session: it keeps the session ID
// in a cookie and the data in a store, hands both to the next handlers as
// request headers (X-Session-Id, X-Session-Data, X-Session-New) and
// placeholders ({http.session.id}, ...), and applies the changes the upstream
// asks for in response headers (X-Session-Set, X-Session-Clear,
// X-Session-Regenerate), which it removes before the response leaves.
//
// Its options are those of the Python sanic_session extension, with the same
// names and defaults.
type Handler struct {
	// CookieName is the name of the session cookie. Default: `session`.
	CookieName string `json:"cookie_name,omitempty"`

	// Domain is the cookie's Domain attribute. Default: none, so the
	// browser sends the cookie to the host that set it only.
	Domain string `json:"domain,omitempty"`

	// Path is the cookie's Path attribute. Default: `/`.
	Path string `json:"path,omitempty"`

	// Expiry is how long a session lives without a request: the store
	// entry's lifetime and the cookie's Max-Age, both renewed with use.
	// Zero makes sessions permanent: no expiry in the store, and a cookie
	// of 400 days (the browsers' maximum) renewed with use. A positive
	// value must be at least one second and a whole number of seconds.
	// Default: 2592000s (30 days).
	Expiry *caddy.Duration `json:"expiry,omitempty"`

	// HTTPOnly adds the HttpOnly attribute, which hides the cookie from
	// JavaScript. Default: true.
	HTTPOnly *bool `json:"httponly,omitempty"`

	// SessionCookie leaves out Max-Age and Expires, so the browser drops
	// the cookie when it closes. The store still ends the session after
	// Expiry. Default: false.
	SessionCookie bool `json:"sessioncookie,omitempty"`

	// SameSite is the cookie's SameSite attribute: `strict`, `lax` or
	// `none`, in any case. `none` requires Secure `always`. Default: none
	// set, and the attribute is left out.
	SameSite string `json:"samesite,omitempty"`

	// Secure sets when the cookie gets the Secure attribute: `always`,
	// `never`, or `auto` (when the request came over TLS). A cookie name
	// starting with `__Secure-` or `__Host-` requires Secure, so `auto`
	// becomes `always` for it. Default: `auto`.
	Secure string `json:"secure,omitempty"`

	// Prefix is put before the session ID to make its store key.
	// Default: `session:`.
	Prefix *string `json:"prefix,omitempty"`

	// SessionName names this session for headers and placeholders:
	// `session` gives X-Session-* headers and {http.session.*}
	// placeholders, `alt_session` gives X-Alt-Session-* and
	// {http.alt_session.*}. Default: `session`.
	SessionName string `json:"session_name,omitempty"`

	// ForwardCookie keeps the session cookie in the request to the next
	// handlers. By default it is removed: they get X-Session-Id instead.
	// Default: false.
	ForwardCookie bool `json:"forward_cookie,omitempty"`

	// StoreRaw is the store that keeps the session data, a module in the
	// `http.session.stores` namespace named by its `backend` field.
	// Default: `{"backend": "memory"}`.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.session.stores inline_key=backend"`

	store      sessionstore.Store
	names      contractNames
	prefix     string
	expiry     time.Duration // the store lifetime; 0 means none
	renewAfter time.Duration
	cookieAge  time.Duration
	httpOnly   bool
	secure     secureMode
	sameSite   http.SameSite
	failClosed bool
	logger     *zap.Logger
	// storeErrors throttles the log of store failures.
	storeErrors *throttle.Throttle
	registry    *registry
	metrics     *handlerMetrics
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.session",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies the defaults and loads the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.CookieName == "" {
		h.CookieName = DefaultCookieName
	}
	if h.Path == "" {
		h.Path = DefaultPath
	}
	if h.SessionName == "" {
		h.SessionName = DefaultSessionName
	}
	if err := h.checkConfig(); err != nil {
		return err
	}

	h.prefix = h.effectivePrefix()
	h.expiry = h.effectiveExpiry()
	h.cookieAge, h.renewAfter = h.expiry, h.expiry/renewFraction
	if h.expiry == 0 {
		h.cookieAge, h.renewAfter = permanentCookieAge, permanentCookieAge/renewFraction
	}
	h.httpOnly = h.HTTPOnly == nil || *h.HTTPOnly
	h.secure = h.effectiveSecure()
	h.sameSite = parseSameSite(h.SameSite)
	h.names = newContractNames(h.SessionName)

	if h.StoreRaw == nil {
		h.StoreRaw = caddyconfig.JSONModuleObject(struct{}{}, "backend", "memory", nil)
	}
	mod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return fmt.Errorf("session %q: loading store: %w", h.SessionName, err)
	}
	store, ok := mod.(sessionstore.Store)
	if !ok {
		return fmt.Errorf("session %q: module %T is not a session store", h.SessionName, mod)
	}
	h.store = store
	if p, ok := store.(sessionstore.FailurePolicy); ok {
		h.failClosed = p.FailClosed()
	}
	h.storeErrors = throttle.New(storeErrorLogInterval)

	reg, err := acquireRegistry()
	if err != nil {
		return err
	}
	h.registry = reg
	if err := reg.metrics.register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.metrics = reg.metrics.forHandler(h.SessionName, backendName(store))
	reg.add(h)
	if n, ok := store.(sessionstore.RemovalNotifier); ok {
		id := storeIdentity(store)
		n.NotifyRemovals(func(key, reason string) { reg.storeRemoved(id, key, reason) })
	}
	return nil
}

// Cleanup takes the handler out of the registry. The store module is a
// guest module: Caddy cleans it up on its own.
func (h *Handler) Cleanup() error {
	if h.registry == nil {
		return nil
	}
	h.registry.remove(h)
	h.registry = nil
	return releaseRegistry()
}

// Validate judges the configuration; Provision has applied the defaults.
func (h *Handler) Validate() error {
	return h.checkConfig()
}

// ServeHTTP implements caddyhttp.MiddlewareHandler. The request path is
// short: strip forged headers, load the session, hand it on, and apply the
// upstream's changes when it writes its response header.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.names.stripPrefixed(r.Header)

	sess, err := h.loadSession(r)
	if err != nil {
		return err
	}
	if sess.cookiePresent && !h.ForwardCookie {
		removeSessionCookie(r.Header, h.CookieName)
	}
	r.Header[h.names.idHeader] = []string{sess.id}
	r.Header[h.names.dataHeader] = []string{sess.data}
	r.Header[h.names.newHeader] = []string{boolString(sess.isNew)}

	sw := &sessionWriter{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		h:                     h,
		r:                     r,
		sess:                  sess,
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(sw.placeholder)

	err = next.ServeHTTP(sw, r)
	if !sw.wroteHeader {
		if err == nil {
			// The response is an implicit 200 written after we return:
			// its header is still ours to finish.
			sw.finish()
		} else {
			// The error handler writes its own response; the upstream's
			// instructions die with the one that failed.
			h.names.stripPrefixed(w.Header())
		}
	}
	return err
}

// session is the state of one request's session.
type session struct {
	id    string
	data  string // canonical JSON, "{}" when empty
	isNew bool   // no stored session backed the request's cookie
	// clientID is the well-formed ID the client's cookie carried, if any.
	clientID string
	// cookiePresent: the request carried a cookie of our name.
	cookiePresent bool
	// renewed: loading the session renewed its lifetime in the store.
	renewed bool
	// storeFailed: the store could not say whether the session exists,
	// so the client's cookie is left alone.
	storeFailed bool
}

// loadSession reads the session cookie and the stored session it names. A
// value that is not a well-formed ID, or an ID the store does not hold,
// never becomes the session's ID: the session starts anew with a random one.
func (h *Handler) loadSession(r *http.Request) (*session, error) {
	id, present := readSessionCookie(r.Header, h.CookieName)
	sess := &session{data: sessionstore.EmptyData, isNew: true, clientID: id, cookiePresent: present}
	if present && id == "" {
		h.metrics.rejectedMalformed.Inc()
	}
	if id != "" {
		start := time.Now()
		data, renewed, err := h.store.Load(r.Context(), h.prefix+id, h.expiry, h.renewAfter)
		h.metrics.storeOp(opLoad, start, err)
		switch {
		case err == nil:
			sess.id, sess.data, sess.isNew, sess.renewed = id, data, false, renewed
			return sess, nil
		case errors.Is(err, sessionstore.ErrNotFound):
			h.metrics.rejectedUnknown.Inc()
		case h.failClosed:
			h.logStoreError("loading session failed; refusing the request (on_error closed)", id, err)
			return nil, caddyhttp.Error(http.StatusServiceUnavailable, err)
		default:
			sess.storeFailed = true
			h.logStoreError("loading session failed; serving the request with a new session", id, err)
		}
	}
	var err error
	if sess.id, err = newID(); err != nil {
		return nil, caddyhttp.Error(http.StatusInternalServerError, err)
	}
	return sess, nil
}

// instructions are the changes the upstream asked for in its response.
type instructions struct {
	patches    []string
	clear      bool
	regenerate bool
}

// takeInstructions removes every header with the session's prefix from the
// response, so none reaches the client, and returns the instructions among
// them. An X-Session-Set that is not a JSON object refuses all patches of
// the response, leaving the data as it was.
func (h *Handler) takeInstructions(hdr http.Header) instructions {
	var in instructions
	badPatch := false
	for name, values := range hdr {
		if !h.names.hasPrefix(name) {
			continue
		}
		delete(hdr, name)
		switch suffix := h.names.suffix(name); {
		case equalHeaderName(suffix, hdrSet):
			for _, v := range values {
				if err := sessionstore.ValidatePatch(v); err != nil {
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
		}
	}
	if badPatch {
		in.patches = nil
	}
	return in
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
// order Clear, Regenerate, Set, and sets or deletes the cookie.
func (h *Handler) apply(r *http.Request, hdr http.Header, sess *session, in instructions) {
	ctx := context.WithoutCancel(r.Context()) // the client leaving must not tear a write
	stored := !sess.isNew
	changed := false
	if in.clear {
		stored = h.clear(ctx, sess, stored)
	}
	if in.regenerate && !in.clear {
		stored = h.regenerate(ctx, sess, stored)
	}
	if len(in.patches) > 0 {
		stored, changed = h.patch(ctx, sess, stored, in.patches)
	}
	h.updateCookie(r, hdr, sess, stored, changed)
}

// clear empties the session and deletes its entry. A cleared ID is never
// used again, even if the same response sets new data.
func (h *Handler) clear(ctx context.Context, sess *session, stored bool) bool {
	if stored {
		start := time.Now()
		err := h.store.Delete(ctx, h.prefix+sess.id)
		h.metrics.storeOp(opDelete, start, err)
		if err != nil {
			h.logStoreError("clearing session failed; the stored session is left as it was", sess.id, err)
		} else {
			h.metrics.destroyed(destroyedCleared)
			h.logEvent("session cleared", sess.id)
		}
	}
	sess.data = sessionstore.EmptyData
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
		sess.data = sessionstore.EmptyData
		return false
	default:
		h.logStoreError("regenerating session failed; the session keeps its ID", oldID, err)
		sess.id = oldID // the old entry is still the session
		return true
	}
}

// patch applies the merge patches to the stored data and reports whether
// the session is stored afterwards and whether it changed.
func (h *Handler) patch(ctx context.Context, sess *session, stored bool, patches []string) (nowStored, changed bool) {
	start := time.Now()
	data, err := h.store.Patch(ctx, h.prefix+sess.id, patches, h.expiry, !stored)
	h.metrics.storeOp(opPatch, start, err)
	if errors.Is(err, sessionstore.ErrNotFound) {
		// The session ended (expired, or cleared by a concurrent
		// request) since this request loaded it: the changes start a
		// new session rather than bring the old ID back.
		stored = false
		h.renewID(sess)
		start = time.Now()
		data, err = h.store.Patch(ctx, h.prefix+sess.id, patches, h.expiry, true)
		h.metrics.storeOp(opPatch, start, err)
	}
	if err != nil {
		h.logStoreError("saving session changes failed; the stored session is left as it was", sess.id, err)
		return stored, false
	}
	sess.data = data
	nowStored = data != sessionstore.EmptyData
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
func (h *Handler) updateCookie(r *http.Request, hdr http.Header, sess *session, stored, changed bool) {
	switch {
	case stored:
		if changed || sess.id != sess.clientID || sess.renewed && !h.SessionCookie {
			hdr.Add("Set-Cookie", h.sessionCookie(r, sess.id, time.Now()).String())
		}
	case sess.cookiePresent && !sess.storeFailed:
		// The client holds a cookie of a session that is cleared,
		// unknown, expired or malformed: delete it, so it stops costing
		// a store lookup on every request.
		hdr.Add("Set-Cookie", h.deletionCookie(r).String())
	}
}

// logStoreError logs a store failure. A store that is down fails every
// request, so the log is throttled to a line per storeErrorLogInterval,
// which counts the failures since the last.
// logEvent logs a session's lifecycle event at debug level, naming the
// session by a hash of its ID.
func (h *Handler) logEvent(msg, id string, fields ...zap.Field) {
	if ce := h.logger.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(append(fields, zap.String("session_name", h.SessionName), zap.String("session_hash", idHash(id)))...)
	}
}

func (h *Handler) logStoreError(msg, id string, err error) {
	n, ok := h.storeErrors.Note(1, time.Now().UnixNano())
	if !ok {
		return
	}
	h.logger.Error(msg,
		zap.String("session_name", h.SessionName),
		zap.String("session_hash", idHash(id)),
		zap.Int64("failures_since_last_log", n),
		zap.Error(err))
}

// idHash names a session in logs without revealing its ID.
func idHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:4])
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// sessionWriter applies the session changes when the response header is
// written, whichever way that happens: WriteHeader, the first Write,
// ReadFrom or a Flush.
type sessionWriter struct {
	*caddyhttp.ResponseWriterWrapper
	h           *Handler
	r           *http.Request
	sess        *session
	wroteHeader bool
	dataFields  map[string]json.RawMessage // parsed on first use by a placeholder
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
	sw.h.apply(sw.r, hdr, sw.sess, sw.h.takeInstructions(hdr))
	sw.dataFields = nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ http.Flusher                = (*sessionWriter)(nil)
	_ io.ReaderFrom               = (*sessionWriter)(nil)
)
