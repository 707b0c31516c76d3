package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is a module that serves the session routes of Caddy's admin API:
//
//	GET    /session/                    the configured sessions
//	GET    /session/<session_name>/<id> one session: its data and remaining lifetime
//	DELETE /session/<session_name>/<id> revoke it: the next request with its
//	                                    cookie starts a new session
//	GET    /session/<session_name>/?subject=<subject>
//	                                    the subject's sessions, by handle
//	DELETE /session/<session_name>/?subject=<subject>
//	                                    revoke every one of them
//
// Where several handlers share a session_name, the routes act on each
// store they use.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.session",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/session/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// sessionInfo is one configured session in GET /session/.
type sessionInfo struct {
	SessionName string `json:"session_name"`
	CookieName  string `json:"cookie_name"`
	Prefix      string `json:"prefix"`
	Store       string `json:"store"`
	// Sessions is how many sessions the store holds, where it can count.
	Sessions *int `json:"sessions,omitempty"`
}

// storedSession is one store's copy of a session in GET /session/<name>/<id>.
type storedSession struct {
	Store  string          `json:"store"`
	Prefix string          `json:"prefix"`
	Data   json.RawMessage `json:"data"`
	// ExpiresIn is the remaining lifetime in seconds; absent for a
	// permanent session.
	ExpiresIn *int64 `json:"expires_in,omitempty"`
	// Created is when the session was created, where the store keeps it.
	Created *time.Time `json:"created,omitempty"`
	// Expiry is the session's own idle expiry in seconds, set by the
	// upstream (0 for permanent); absent when it has none.
	Expiry *int64 `json:"expiry,omitempty"`
	// Scope is the site the session belongs to; absent for a session
	// stored before scopes.
	Scope string `json:"scope,omitempty"`
}

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/session/")
	if rest == "" {
		if r.Method != http.MethodGet {
			return methodNotAllowed(w, r, http.MethodGet)
		}
		return a.list(w)
	}
	name, id, ok := strings.Cut(rest, "/")
	bySubject := ok && id == "" && r.URL.Query().Has("subject")
	if !ok || name == "" || id == "" && !bySubject || strings.Contains(id, "/") {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("not found: use /session/, /session/<session_name>/<id> or /session/<session_name>/?subject=<subject>")}
	}
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
	default:
		return methodNotAllowed(w, r, http.MethodGet, http.MethodDelete)
	}
	var stores []prefixedStore
	if reg := currentRegistry(); reg != nil {
		stores = reg.stores(name)
	}
	if len(stores) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no session named %q is configured", name)}
	}
	if bySubject {
		subject := r.URL.Query().Get("subject")
		if subject == "" || !validSubject(subject) {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("subject: want printable ASCII of 1 to %d bytes", sessionstore.MaxSubjectLength)}
		}
		if r.Method == http.MethodGet {
			return a.getSubject(w, r, name, subject, stores)
		}
		return a.revokeSubject(w, r, subject, stores)
	}
	if !validID(id) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such session: not a session ID")}
	}
	if r.Method == http.MethodGet {
		return a.get(w, r, name, id, stores)
	}
	return a.revoke(w, r, id, stores)
}

func (adminAPI) list(w http.ResponseWriter) error {
	out := []sessionInfo{}
	if reg := currentRegistry(); reg != nil {
		for _, s := range reg.stores("") {
			info := sessionInfo{SessionName: s.sessionName, CookieName: s.cookieName, Prefix: s.prefix, Store: s.backend}
			if c, ok := s.store.(sessionstore.Counter); ok {
				n := c.Len()
				info.Sessions = &n
			}
			out = append(out, info)
		}
	}
	return writeJSON(w, out)
}

func (adminAPI) get(w http.ResponseWriter, r *http.Request, name, id string, stores []prefixedStore) error {
	var found []storedSession
	for _, s := range stores {
		insp, ok := s.store.(sessionstore.Inspector)
		if !ok {
			continue
		}
		entry, ttl, err := insp.Inspect(r.Context(), s.prefix+id)
		if errors.Is(err, sessionstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("reading the session from store %s: %w", s.backend, err)}
		}
		one := storedSession{Store: s.backend, Prefix: s.prefix, Data: json.RawMessage(entry.Data), Scope: entry.Meta.Scope}
		if ttl > 0 {
			secs := int64(math.Ceil(ttl.Seconds()))
			one.ExpiresIn = &secs
		}
		if c := entry.Meta.Created; !c.IsZero() {
			c = c.UTC()
			one.Created = &c
		}
		if e := entry.Meta.Expiry; e != 0 {
			secs := int64(max(e, 0) / time.Second)
			one.Expiry = &secs
		}
		found = append(found, one)
	}
	if len(found) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such session")}
	}
	return writeJSON(w, map[string]any{"session_name": name, "id": id, "stores": found})
}

func (adminAPI) revoke(w http.ResponseWriter, r *http.Request, id string, stores []prefixedStore) error {
	revoked := 0
	for _, s := range stores {
		if insp, ok := s.store.(sessionstore.Inspector); ok {
			if _, _, err := insp.Inspect(r.Context(), s.prefix+id); errors.Is(err, sessionstore.ErrNotFound) {
				continue
			}
		}
		err := s.handler.sessions.Delete(r.Context(), s.prefix+id)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("revoking the session in store %s: %w", s.backend, err)}
		}
		revoked++
		s.handler.metrics.revoked(revokedByAdmin, 1)
		s.handler.logEvent("session revoked through the admin API", id)
	}
	if revoked == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such session")}
	}
	return writeJSON(w, map[string]int{"revoked": revoked})
}

// adminDeviceJSON is a session as the admin API lists it: as the devices
// endpoint does, without `current`, which has no meaning here.
type adminDeviceJSON struct {
	deviceJSON
	// Current, never set, hides the embedded field from JSON.
	Current *bool `json:"current,omitempty"`
}

// subjectStore is one store's sessions of a subject in
// GET /session/<session_name>/?subject=.
type subjectStore struct {
	Store    string            `json:"store"`
	Prefix   string            `json:"prefix"`
	Sessions []adminDeviceJSON `json:"sessions"`
	// Total is how many sessions the subject has there, of which the
	// first (most recently seen) MaxSubjectSessions are listed.
	Total int `json:"total"`
}

// subjectIndexes keeps the stores that can find sessions by subject, and
// fails when none can.
func subjectIndexes(stores []prefixedStore) ([]prefixedStore, error) {
	var out []prefixedStore
	for _, s := range stores {
		if s.handler.subjects != nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotImplemented, Err: errors.New("no store of this session_name can find sessions by subject")}
	}
	return out, nil
}

func (adminAPI) getSubject(w http.ResponseWriter, r *http.Request, name, subject string, stores []prefixedStore) error {
	stores, err := subjectIndexes(stores)
	if err != nil {
		return err
	}
	out := []subjectStore{}
	for _, s := range stores {
		list, total, err := s.handler.subjectSessions(r.Context(), nil, subject, sessionstore.MaxSubjectSessions)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("listing the subject's sessions in store %s: %w", s.backend, err)}
		}
		one := subjectStore{Store: s.backend, Prefix: s.prefix, Sessions: make([]adminDeviceJSON, 0, len(list)), Total: total}
		for _, sess := range list {
			one.Sessions = append(one.Sessions, adminDeviceJSON{deviceJSON: s.handler.deviceOf(sess, "")})
		}
		out = append(out, one)
	}
	return writeJSON(w, map[string]any{"session_name": name, "subject": subject, "stores": out})
}

func (adminAPI) revokeSubject(w http.ResponseWriter, r *http.Request, subject string, stores []prefixedStore) error {
	stores, err := subjectIndexes(stores)
	if err != nil {
		return err
	}
	revoked := 0
	for _, s := range stores {
		n, err := s.handler.deleteSubject(r.Context(), nil, subject, revokedByAdmin, nil)
		revoked += n
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadGateway, Err: fmt.Errorf("revoking the subject's sessions in store %s (%d revoked before the error): %w", s.backend, revoked, err)}
		}
		s.handler.logger.Info("sessions of a subject revoked through the admin API",
			zap.String("session_name", s.sessionName), zap.Int("sessions", n))
	}
	return writeJSON(w, map[string]int{"revoked": revoked})
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) error {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return caddy.APIError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        fmt.Errorf("method %s not allowed; use %s", r.Method, strings.Join(allowed, " or ")),
	}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	return nil
}

// Interface guards
var _ caddy.AdminRouter = (*adminAPI)(nil)
