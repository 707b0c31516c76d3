// Package appsession is the app's side of caddy-session: it reads the
// session the gateway hands over in request headers (X-Session-Id,
// X-Session-New, X-Session-Data), checks X-Session-Signature, and turns
// changes into the response headers the gateway applies (X-Session-Set,
// X-Session-Clear, X-Session-Regenerate, X-Session-Expiry), which never
// reach the client.
//
// Inside Middleware, a handler gets its session with From:
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		s := appsession.From(r)
//		s.Regenerate()
//		if err := s.Set("user", r.FormValue("user")); err != nil {
//			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
//			return
//		}
//		fmt.Fprintln(w, "welcome")
//	})
//	http.ListenAndServe("127.0.0.1:9000", appsession.Middleware(appsession.Options{
//		Secrets: []string{os.Getenv("SESSION_SECRET")},
//	})(mux))
//
// All changes of one response go out as one JSON merge patch, in ASCII,
// written when the handler writes its response header; a change that
// would make the data larger than MaxSize bytes of canonical JSON is
// refused by Set or Update, before anything is sent.
package appsession

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultMaxSize is the gateway's default max_size: the most bytes of
// canonical JSON a session's data may hold.
const DefaultMaxSize = 8000

// MaxExpiry is the longest expiry X-Session-Expiry takes: 400 days.
const MaxExpiry = 400 * 24 * time.Hour

// ErrTooLarge is returned (wrapped) by Set and Update for a change that
// would make the data larger than the session's max size.
var ErrTooLarge = errors.New("appsession: session data would be larger than max_size")

// ErrResponseStarted is returned by the methods that change the session
// once the response header, and so the session's instructions, have been
// written.
var ErrResponseStarted = errors.New("appsession: response header already written; the change cannot be sent")

// ErrNoSession is returned (wrapped) by Read when the session headers are
// missing or malformed: the request did not come through the gateway.
var ErrNoSession = errors.New("appsession: no session headers from the gateway")

// A Session is one request's session: the data the gateway sent, and the
// changes to send back. Its methods are safe for concurrent use.
type Session struct {
	mu       sync.Mutex
	names    headerNames
	id       string
	isNew    bool
	verified bool
	maxSize  int

	base     map[string]any // the data as the gateway will have it before the patch
	baseSize int            // len of base in canonical form
	data     map[string]any // the data as it is to be after the response

	clear, regenerate bool
	expiry            int64 // seconds; -1 when not set
	sent              bool
}

// Read reads the session of sessionName ("" means "session") from the
// request headers h. It does not check X-Session-Signature: see Verify.
// The data's numbers are json.Number, so they stay exact. The session's
// max size is DefaultMaxSize (see SetMaxSize).
func Read(h http.Header, sessionName string) (*Session, error) {
	s := newSession(sessionName)
	id, okID := single(h, s.names.id)
	data, okData := single(h, s.names.data)
	if !okID || !okData {
		return nil, fmt.Errorf("%w: %s and %s are needed", ErrNoSession, s.names.id, s.names.data)
	}
	m, err := decodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoSession, s.names.data, err)
	}
	switch v := h.Get(s.names.isNew); v {
	case "true":
		s.isNew = true
	case "false", "":
	default:
		return nil, fmt.Errorf("%w: %s is %q", ErrNoSession, s.names.isNew, v)
	}
	s.id = id
	s.base = m
	s.baseSize = len(appendCanonical(nil, m))
	s.data = deepCopy(m).(map[string]any)
	return s, nil
}

// newSession returns an empty session of sessionName.
func newSession(sessionName string) *Session {
	return &Session{
		names:    namesFor(sessionName),
		maxSize:  DefaultMaxSize,
		base:     map[string]any{},
		baseSize: len("{}"),
		data:     map[string]any{},
		expiry:   -1,
	}
}

// ID is the session ID, "" for a session the gateway did not send.
func (s *Session) ID() string { return s.id }

// IsNew reports whether this request began the session.
func (s *Session) IsNew() bool { return s.isNew }

// Verified reports whether Middleware checked X-Session-Signature and it
// held. A session read with Read is never Verified: call Verify.
func (s *Session) Verified() bool { return s.verified }

// SetMaxSize sets the most bytes of canonical JSON the data may hold
// after a change (0 or less: no limit); it should be the gateway's
// max_size.
func (s *Session) SetMaxSize(n int) {
	s.mu.Lock()
	s.maxSize = n
	s.mu.Unlock()
}

// Data returns a copy of the data, with this response's changes.
func (s *Session) Data() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return deepCopy(s.data).(map[string]any)
}

// Get returns a copy of the value under key, with this response's
// changes, and whether there is one.
func (s *Session) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return deepCopy(v), ok
}

// Set puts value under key, so that the data's key is value after the
// response: an object replaces the one there. value is anything
// encoding/json can marshal; null members of objects are dropped (a merge
// patch cannot store them; nulls in arrays stay), and a nil value deletes
// the key. It returns an error wrapping ErrTooLarge if the data would
// pass the max size, and changes nothing then.
func (s *Session) Set(key string, value any) error {
	return s.Update(map[string]any{key: value})
}

// Update sets every key of values, as Set does, all or none.
func (s *Session) Update(values map[string]any) error {
	changes := make(map[string]any, len(values))
	for k, v := range values {
		n, err := normalize(map[string]any{k: v})
		if err != nil {
			return fmt.Errorf("appsession: key %q: %w", k, err)
		}
		// The key itself may have been normalized (invalid UTF-8).
		for nk, nv := range n.(map[string]any) {
			changes[nk] = stripNulls(nv)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return ErrResponseStarted
	}
	next := maps.Clone(s.data)
	for k, v := range changes {
		if v == nil {
			delete(next, k)
		} else {
			next[k] = v
		}
	}
	if err := s.checkSize(next); err != nil {
		return err
	}
	s.data = next
	return nil
}

// checkSize refuses next if the gateway would: it applies the patch the
// helper would send to the data it has, as the gateway does, and measures
// the canonical result.
func (s *Session) checkSize(next map[string]any) error {
	result := mergePatch(s.base, diffPatch(s.base, next))
	size := len(appendCanonical(nil, result))
	if OverSize(size, s.baseSize, s.maxSize) {
		return fmt.Errorf("%w: %d bytes of canonical JSON, max_size %d", ErrTooLarge, size, s.maxSize)
	}
	return nil
}

// Delete removes key from the data.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sent {
		next := maps.Clone(s.data)
		delete(next, key)
		s.data = next
	}
}

// Clear empties the session (X-Session-Clear): the gateway deletes it and
// its cookie. Changes made before in this response are dropped; changes
// made after it start a new session under a new ID.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sent {
		s.clear = true
		s.base, s.baseSize, s.data = map[string]any{}, len("{}"), map[string]any{}
	}
}

// Regenerate gives the session a new ID, its data kept
// (X-Session-Regenerate): do it on login, against session fixation.
func (s *Session) Regenerate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sent {
		s.regenerate = true
	}
}

// SetExpiry gives this session its own idle expiry (X-Session-Expiry),
// in whole seconds up to MaxExpiry; 0 makes it permanent.
func (s *Session) SetExpiry(d time.Duration) error {
	if d < 0 || d > MaxExpiry || d%time.Second != 0 {
		return fmt.Errorf("appsession: expiry %v: must be whole seconds from 0 to %v", d, MaxExpiry)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return ErrResponseStarted
	}
	s.expiry = int64(d / time.Second)
	return nil
}

// Headers returns the response headers that carry this response's
// changes to the gateway: nothing when there are none.
func (s *Session) Headers() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headersLocked()
}

func (s *Session) headersLocked() http.Header {
	h := http.Header{}
	if s.clear {
		h.Set(s.names.clear, "true")
	}
	if s.regenerate {
		h.Set(s.names.regenerate, "true")
	}
	if patch := diffPatch(s.base, s.data); patch != nil {
		h.Set(s.names.set, string(appendCanonical(nil, patch)))
	}
	if s.expiry >= 0 {
		h.Set(s.names.expiry, strconv.FormatInt(s.expiry, 10))
	}
	return h
}

// WriteHeaders adds the session's instructions to the response headers
// h and ends the session's changes: after it, Set, Update and SetExpiry
// return ErrResponseStarted and the others do nothing. Middleware calls
// it; call it yourself when using Read.
func (s *Session) WriteHeaders(h http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return
	}
	s.sent = true
	for k, vs := range s.headersLocked() {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
}
