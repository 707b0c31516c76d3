// Package appsession is the app's side of caddy-session: it reads the
// session the gateway hands over in request headers (X-Session-Id,
// X-Session-New, X-Session-Data), checks X-Session-Signature, and turns
// changes into the response headers the gateway applies (X-Session-Set,
// X-Session-Clear, X-Session-Regenerate, X-Session-Expiry,
// X-Session-Subject, X-Session-Revoke, X-Session-Persist), which never
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
//
// A login names the session's owner with SetSubject, so that the gateway
// can find the user's sessions, and may sign out the user's other devices
// with RevokeOthers; SetPersist is a "remember me":
//
//	s := appsession.From(r)
//	s.Regenerate()
//	if err := s.Set("user", user.Name); err != nil { ... }
//	if err := s.SetSubject(user.ID); err != nil { ... } // printable ASCII, at most 256 bytes
//	if err := s.RevokeOthers(); err != nil { ... }      // after a password change, say
//	if err := s.SetPersist(r.FormValue("remember") == "on"); err != nil { ... }
//
// and a "sign out everywhere" is s.RevokeAll(), this session included.
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

// MaxSubjectLength is the most bytes a subject (X-Session-Subject) may
// have.
const MaxSubjectLength = 256

// HandleLength is the length of a session's handle, the name by which the
// gateway lists a subject's sessions and Revoke ends one: 22 characters of
// base64url.
const HandleLength = 22

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
	expiry            int64  // seconds; -1 when not set
	subject           string // "" removes the subject, when subjectSet
	subjectSet        bool
	revoke            string // "others", "all" or a handle; "" when not set
	persist           int8   // 1 persistent, 0 browser-session; -1 when not set
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
		persist:  -1,
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
// its cookie, and with it its subject. Changes to the data made before in
// this response are dropped, and so is a subject set before (set it again
// after Clear for a new session); changes made after it start a new
// session under a new ID. A Regenerate, SetExpiry, SetPersist or Revoke
// stays.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sent {
		s.clear = true
		s.base, s.baseSize, s.data = map[string]any{}, len("{}"), map[string]any{}
		s.subject, s.subjectSet = "", false
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

// SetSubject names the session's owner (X-Session-Subject), typically the
// user's ID, which the gateway keeps beside the session (not in the data)
// so that it can find the user's sessions: to list them, and for
// RevokeOthers and RevokeAll. Send it with the data that logs the user in
// (and Regenerate): the gateway keeps a subject only for a session that
// has data. subject is opaque printable ASCII (bytes 0x20 to 0x7E), 1 to
// MaxSubjectLength bytes, with no leading or trailing space; anything else
// is an error, and changes nothing. RemoveSubject removes it.
func (s *Session) SetSubject(subject string) error {
	if err := checkSubject(subject); err != nil {
		return err
	}
	return s.setSubject(subject)
}

// RemoveSubject removes the session's subject (an empty
// X-Session-Subject): the session no longer counts among its owner's.
// Clear removes it too.
func (s *Session) RemoveSubject() error {
	return s.setSubject("")
}

func (s *Session) setSubject(subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return ErrResponseStarted
	}
	s.subject, s.subjectSet = subject, true
	return nil
}

// checkSubject returns an error unless subject is 1 to MaxSubjectLength
// bytes of printable ASCII with no leading or trailing space.
func checkSubject(subject string) error {
	switch {
	case subject == "":
		return errors.New("appsession: subject is empty: RemoveSubject removes the subject")
	case len(subject) > MaxSubjectLength:
		return fmt.Errorf("appsession: subject is %d bytes, more than %d", len(subject), MaxSubjectLength)
	case subject[0] == ' ' || subject[len(subject)-1] == ' ':
		return errors.New("appsession: subject has a leading or trailing space")
	}
	for i := 0; i < len(subject); i++ {
		if c := subject[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("appsession: subject has byte 0x%02x at %d: only printable ASCII (0x20 to 0x7E) is allowed", c, i)
		}
	}
	return nil
}

// Revoke ends sessions of this session's subject (X-Session-Revoke),
// after the response's other changes: target is "others" (every other
// session of the subject: see RevokeOthers), "all" (every one, this one
// included: see RevokeAll) or a session's handle, HandleLength characters
// of base64url as the gateway lists the subject's sessions (that session,
// if it is the subject's). A response carries one target: another one
// after the first is an error (the first stays), the same one again is
// not. Anything else is an error, and changes nothing.
func (s *Session) Revoke(target string) error {
	if target != "others" && target != "all" && !isHandle(target) {
		return fmt.Errorf(`appsession: revoke %.40q: want "others", "all" or a session handle (%d characters of base64url)`, target, HandleLength)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return ErrResponseStarted
	}
	if s.revoke != "" && s.revoke != target {
		return fmt.Errorf("appsession: revoke %.40q: this response already revokes %q, and carries one revoke", target, s.revoke)
	}
	s.revoke = target
	return nil
}

// RevokeOthers ends every other session of this session's subject: "sign
// out other devices", after a password change say. At a login, send it
// with SetSubject (and Regenerate): the other sessions are the user's
// others, this one stays.
func (s *Session) RevokeOthers() error { return s.Revoke("others") }

// RevokeAll ends every session of this session's subject, this one
// included ("sign out everywhere"): the gateway deletes this response's
// cookie.
func (s *Session) RevokeAll() error { return s.Revoke("all") }

// isHandle reports whether h is HandleLength characters of base64url.
func isHandle(h string) bool {
	if len(h) != HandleLength {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// SetPersist chooses this session's cookie (X-Session-Persist), a
// "remember me": true makes it persistent (with a Max-Age, as the
// gateway's expiry or SetExpiry gives it), false a browser-session cookie
// (without), whatever the gateway's sessioncookie says. The gateway keeps
// the choice for the session, across renewals and regenerates.
func (s *Session) SetPersist(persist bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent {
		return ErrResponseStarted
	}
	s.persist = 0
	if persist {
		s.persist = 1
	}
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
	if s.subjectSet {
		h.Set(s.names.subject, s.subject)
	}
	if s.persist >= 0 {
		h.Set(s.names.persist, strconv.FormatBool(s.persist == 1))
	}
	if s.revoke != "" {
		h.Set(s.names.revoke, s.revoke)
	}
	return h
}

// WriteHeaders adds the session's instructions to the response headers
// h and ends the session's changes: after it, the methods that return an
// error return ErrResponseStarted and the others (Delete, Clear,
// Regenerate) do nothing. Middleware calls
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
