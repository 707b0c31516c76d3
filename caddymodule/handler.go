// Package caddymodule is the Caddy face of caddy-session: the `session` HTTP
// handler, its Caddyfile directive and its placeholders.
package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/internal/throttle"
	"github.com/caddy-session/caddy-session/sessionstore"

	// The default store, registered wherever the handler is.
	_ "github.com/caddy-session/caddy-session/sessionstore/memorystore"
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

// DefaultRegenerateGrace is how long a regenerated session's old ID is
// remembered, so that requests in flight with it lose nothing.
const DefaultRegenerateGrace = 30 * time.Second

// DefaultMaxSize is the default limit on a session's data: 8000 bytes of
// JSON. The data goes upstream as one header line, and the strictest common
// app server, gunicorn, refuses a line over 8190 bytes, its name included:
// "X-Session-Data: " and 8000 bytes fit with room for a longer
// session_name.
const DefaultMaxSize = 8000

// storeErrorLogInterval bounds the store failure log, and the log of
// rejected cookies, in a flood.
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

	// Secrets sign the session cookie and the session headers sent to the
	// upstream (X-Session-Signature), with HMAC-SHA256. The first signs;
	// all verify, so a new secret is put first while cookies signed with
	// the old keep working until the old is removed. Each must be at least
	// 32 bytes; write them as {env.SESSION_SECRET} to keep them out of the
	// config. A cookie whose signature fails is treated as absent, without
	// a store lookup. Default: none, and the cookie is the bare ID, as
	// sanic_session's.
	Secrets []string `json:"secrets,omitempty"`

	// MaxLifetime is an absolute lifetime: a session ends this long after
	// it was created, however active. The creation time is kept beside the
	// data (see the README's store layouts). Default: none.
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`

	// MaxSize is the most bytes of JSON a session's data may hold. A change
	// from the upstream that would pass it is refused, and the stored data
	// kept. The data goes to the upstream as one header line, so app
	// servers' header limits apply (gunicorn: 8190 bytes a line).
	// Default: 8000.
	MaxSize int `json:"max_size,omitempty"`

	// RegenerateGrace is how long the old ID of a regenerated session
	// (X-Session-Regenerate, at a login) is remembered on the server: a
	// request still in flight with it, or sent before the browser got the
	// new cookie, then neither loses its changes (they go to the session
	// under its new ID) nor logs the user out (it gets no Set-Cookie). The
	// old ID is never accepted as the session and the new one never given
	// to its holder. 0 turns it off. Default: 30s.
	RegenerateGrace *caddy.Duration `json:"regenerate_grace,omitempty"`

	// Scope names the sessions' site, for handlers that share sessions on
	// purpose: every handler with the same scope (and store and prefix)
	// accepts the others' sessions. Without it, a session belongs to the
	// site that made it: the request's host (or Domain, when set) and the
	// port it came in on; another site never accepts it. At most 255
	// bytes. Default: none.
	Scope string `json:"scope,omitempty"`

	// Devices is a path the handler answers itself, for a "your devices"
	// page: GET gives, as JSON, the sessions of the current session's
	// subject (X-Session-Subject), each with its handle, when it was
	// created and last seen and, as Record allows, its client; DELETE
	// <devices>/<handle> ends one of them. It answers 401 to a session
	// without a subject, and refuses with 403 a DELETE that is not shown
	// same-origin by Sec-Fetch-Site or Origin. Default: none.
	Devices string `json:"devices,omitempty"`

	// Record is what is recorded of the client beside a session when it
	// is given a subject (at a login), for the devices list: `user_agent`
	// (shortened to browser and system), `ip` (the client address cut to
	// its /24 or /48 network) or `full_ip` (the whole address). The
	// client address is Caddy's, which honors trusted_proxies.
	// Default: nothing.
	Record []string `json:"record,omitempty"`

	// StoreRaw is the store that keeps the session data, a module in the
	// `http.session.stores` namespace named by its `backend` field.
	// Default: `{"backend": "memory"}`.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.session.stores inline_key=backend"`

	// store is the store module; sessions is the same store with each
	// operation metered, which is how the request path uses it.
	store    sessionstore.Store
	sessions meteredStore
	// subjects is the store's subject index; nil when it has none.
	subjects sessionstore.SubjectIndex
	record   recordOptions
	// devicesPrefix is Devices with a slash: where a handle begins.
	devicesPrefix string
	names         contractNames
	prefix        string
	expiry        time.Duration // the store lifetime; 0 means none
	grace         time.Duration // RegenerateGrace, resolved
	cookieAge     time.Duration
	httpOnly      bool
	secure        secureMode
	sameSite      http.SameSite
	// cookieFormat is the fixed text of the Set-Cookie values.
	cookieFormat setCookieFormat
	failClosed   bool
	signer       *signer // nil without secrets
	logger       *zap.Logger
	// storeErrors, rejections and refusals throttle the logs of store
	// failures, of refused cookies and of refused upstream instructions.
	storeErrors *throttle.Throttle
	rejections  *throttle.Throttle
	refusals    *throttle.Throttle
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
	h.grace = DefaultRegenerateGrace
	if h.RegenerateGrace != nil {
		h.grace = time.Duration(*h.RegenerateGrace)
	}
	h.cookieAge = h.expiry
	if h.expiry == 0 {
		h.cookieAge = PermanentCookieAge
	}
	if h.MaxSize == 0 {
		h.MaxSize = DefaultMaxSize
	}
	if len(h.Secrets) > 0 {
		repl := caddy.NewReplacer()
		secrets := make([]string, len(h.Secrets))
		for i, sec := range h.Secrets {
			secrets[i] = repl.ReplaceAll(sec, "")
			if len(secrets[i]) < minSecretLength {
				// Not the secret itself, nor its length, in the error.
				return fmt.Errorf("secret %d: shorter than %d bytes (was a placeholder left empty?)", i+1, minSecretLength)
			}
		}
		h.signer = newSigner(secrets, h.SessionName, h.CookieName)
	}
	h.httpOnly = h.HTTPOnly == nil || *h.HTTPOnly
	h.secure = h.effectiveSecure()
	h.sameSite = parseSameSite(h.SameSite)
	h.cookieFormat = newSetCookieFormat(h.CookieName, h.Path, h.Domain, h.httpOnly, h.sameSite)
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
	h.rejections = throttle.New(storeErrorLogInterval)
	h.refusals = throttle.New(storeErrorLogInterval)

	reg, err := acquireRegistry()
	if err != nil {
		return err
	}
	h.registry = reg
	if err := reg.metrics.register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.metrics = reg.metrics.forHandler(h.SessionName, backendName(store))
	h.sessions = meteredStore{store: store, metrics: h.metrics}
	h.subjects, _ = store.(sessionstore.SubjectIndex)
	if h.subjects == nil && h.Devices != "" {
		return fmt.Errorf("session %q: devices: store %s cannot find sessions by subject", h.SessionName, backendName(store))
	}
	h.record = parseRecord(h.Record)
	h.devicesPrefix = h.Devices + "/"
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
	h.names.stripConnectionTokens(r.Header)
	if r.Trailer != nil || len(r.TransferEncoding) > 0 {
		// Trailers come after the body, so they are stripped when it
		// ends; the declared ones at once.
		h.names.stripPrefixed(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, r: r, names: &h.names}
	}

	// One allocation holds the request's session, its response writer
	// and the values of the headers it sets.
	st := &requestState{}
	sess := &st.sess
	if err := h.loadSession(r, sess); err != nil {
		return err
	}
	if handle, ok := h.devicesTarget(r.URL.Path); ok {
		return h.serveDevices(w, r, sess, handle)
	}
	if sess.cookiesSent > 0 && !h.ForwardCookie {
		removeSessionCookie(r.Header, h.CookieName)
	}
	st.vals = [...]string{sess.id, sess.data, boolString(sess.isNew), ""}
	r.Header[h.names.idHeader] = st.vals[0:1:1]
	r.Header[h.names.dataHeader] = st.vals[1:2:2]
	r.Header[h.names.newHeader] = st.vals[2:3:3]
	if h.signer != nil {
		st.vals[3] = h.signer.assertion(time.Now().Unix(), sess.id, st.vals[2], sess.data)
		r.Header[h.names.signatureHeader] = st.vals[3:4:4]
	}

	sw := &st.sw
	sw.ResponseWriter = w
	sw.h, sw.r, sw.sess = h, r, sess
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Map(sw.placeholder)

	err := next.ServeHTTP(sw, r)
	// Response trailers are sent after we return: none of ours may go.
	h.names.stripTrailers(w.Header())
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

// requestState is what the handler keeps for one request.
type requestState struct {
	sess session
	sw   sessionWriter
	// vals back the request header values the handler sets, so that each
	// needs no slice of its own: the ID, the data, New and the signature.
	vals [4]string
}

// reject counts a refused cookie, and logs refusals at a bounded rate:
// many of them are someone probing for session IDs.
func (h *Handler) reject(reason string) {
	h.metrics.rejected(reason)
	if n, ok := h.rejections.Note(1, time.Now().UnixNano()); ok {
		h.logger.Warn("session cookies refused (unknown, expired, malformed or badly signed IDs)",
			zap.String("session_name", h.SessionName),
			zap.String("reason", reason),
			zap.Int64("refused_since_last_log", n))
	}
}

// logEvent logs a session's lifecycle event at debug level, naming the
// session by a hash of its ID.
func (h *Handler) logEvent(msg, id string, fields ...zap.Field) {
	if ce := h.logger.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(append(fields, zap.String("session_name", h.SessionName), zap.String("session_hash", idHash(id)))...)
	}
}

// refuse counts an instruction of the upstream's that was refused, and logs
// refusals at a bounded rate, with the count since the last line: a broken
// upstream refuses on every response.
func (h *Handler) refuse(reason, msg string, fields ...zap.Field) {
	h.metrics.refused(reason)
	n, ok := h.refusals.Note(1, time.Now().UnixNano())
	if !ok {
		return
	}
	h.logger.Error(msg, append(fields,
		zap.String("session_name", h.SessionName),
		zap.String("reason", reason),
		zap.Int64("refused_since_last_log", n))...)
}

// logStoreError logs a store failure. A store that is down fails every
// request, so the log is throttled to a line per storeErrorLogInterval,
// which counts the failures since the last.
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
