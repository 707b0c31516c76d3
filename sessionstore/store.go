// Package sessionstore is the interface between the session handler and the
// places session data is kept: the Store interface, its optional extensions
// and the types they share. The stores live in its subpackages (memorystore,
// redisstore), the JSON engine they share in mergepatch, and the conformance
// suite that holds every store to this contract in storetest.
//
// A store knows nothing of cookies, IDs or HTTP: it keeps JSON objects under
// string keys, each with an idle lifetime. Data crosses the interface as the
// compact, ASCII-only JSON text that mergepatch.Canonicalize produces, so the
// handler can hand it to the upstream as a header value without another pass
// over it.
package sessionstore

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a key is not in the store, or has expired.
var ErrNotFound = errors.New("session not found")

// ErrTooLarge is returned by Patch when the result would pass the size
// limit; nothing is written.
var ErrTooLarge = errors.New("session data too large")

// ErrMoved is what a MovedError is: see there.
var ErrMoved = errors.New("session moved to a new key by a regenerate")

// MovedError is returned by Load and Patch for a key that a Rename with a
// Grace moved away less than the grace ago: the session lives on under To.
// Nothing is read or written. The handler may write to To on behalf of a
// request that loaded the session before the move; it never hands To (or
// the ID in it) to a client.
type MovedError struct {
	To string // the key the session moved to
}

func (e *MovedError) Error() string { return ErrMoved.Error() }

// Unwrap makes errors.Is(err, ErrMoved) hold.
func (e *MovedError) Unwrap() error { return ErrMoved }

// MaxScopeLength bounds a Meta.Scope.
const MaxScopeLength = 255

// Permanent as a session's own Expiry makes it never expire.
const Permanent time.Duration = -1

// Meta is what a store keeps beside a session's data when a feature needs
// it: nothing, unless asked to (so a Redis store keeps sanic_session's
// layout exactly while max_lifetime and X-Session-Expiry are not used).
type Meta struct {
	// Created is when the session was created; zero when not recorded.
	Created time.Time
	// Expiry is the session's own idle lifetime (X-Session-Expiry), which
	// replaces the handler's; zero when it has none, Permanent for none
	// at all.
	Expiry time.Duration
	// Scope names the site the session belongs to (see the handler's
	// isolation); empty for a session stored before scopes, which any
	// site accepts. At most MaxScopeLength bytes.
	Scope string
	// Subject names the session's owner (X-Session-Subject), by which a
	// SubjectIndex finds it; empty when it has none. Printable ASCII (the
	// handler sees to that; stores refuse only what is too long), at most
	// MaxSubjectLength bytes.
	Subject string
	// Persist is the session's own choice of cookie (X-Session-Persist).
	Persist Persist
	// UserAgent and Addr are the client's user agent and address as the
	// handler recorded them (its `record` option), already shortened, for
	// a list of a subject's sessions; empty when not recorded. At most
	// MaxRecordLength bytes each.
	UserAgent string
	Addr      string
}

// MaxSubjectLength bounds a Meta.Subject.
const MaxSubjectLength = 256

// MaxRecordLength bounds a Meta.UserAgent and a Meta.Addr.
const MaxRecordLength = 128

// Persist is a session's own choice between a persistent cookie and a
// browser-session one, which overrides the handler's sessioncookie.
type Persist uint8

// The values of Persist.
const (
	PersistDefault Persist = iota // the handler's sessioncookie decides
	PersistOn                     // a persistent cookie, with Max-Age
	PersistOff                    // a browser-session cookie, without
)

// Entry is a loaded session.
type Entry struct {
	Data    string // canonical JSON
	Meta    Meta
	Renewed bool // the load renewed the entry's lifetime
}

// PatchOptions shape a Patch.
type PatchOptions struct {
	// TTL is the lifetime to give the entry, unless it has its own Expiry.
	// Zero is no expiry.
	TTL time.Duration
	// Create allows the patch to create the entry; without it a missing
	// entry is ErrNotFound and nothing is written.
	Create bool
	// MaxSize refuses, with ErrTooLarge, a result of more bytes (see
	// OverSize); 0 is no limit. The stored data is then left as it was.
	MaxSize int
	// SetCreated records now as the creation time of an entry that has
	// none.
	SetCreated bool
	// Expiry, when not zero, sets the entry's own expiry (Permanent for
	// none), which then replaces TTL for this and later writes and loads.
	Expiry time.Duration
	// Scope, when not empty, is recorded as the entry's scope when it has
	// none: a new entry, or one stored before scopes.
	Scope string
	// Subject, when not nil, sets the entry's subject; an empty one
	// removes it. The entry then is (or is no longer) among the subject's
	// sessions in a SubjectIndex.
	Subject *string
	// Persist, when not PersistDefault, sets the entry's Persist.
	Persist Persist
	// UserAgent and Addr, when not empty, replace what the entry has
	// recorded of its client.
	UserAgent string
	Addr      string
}

// RenameOptions shape a Rename.
type RenameOptions struct {
	// TTL is the new entry's lifetime, unless it has its own Expiry. Zero
	// is no expiry.
	TTL time.Duration
	// Grace, when positive, keeps a record under the old key for that long
	// (on a regenerate, so that requests still in flight with the old ID
	// lose nothing): a Load, Patch or Rename of the old key then returns
	// a *MovedError naming the new key, and a Delete of it removes the
	// record. The record holds no data, and Inspect and Counter ignore it.
	Grace time.Duration
}

// Store keeps session data. Implementations must be safe for concurrent use:
// requests of one session may arrive at the same time, through one Caddy or
// several sharing a store.
//
// A ttl of zero means the entry never expires. An entry's own Expiry (see
// Meta) replaces the ttl the handler passes. The renewal policy is the
// store's: an entry's lifetime is renewed once RenewInterval of its
// lifetime has passed since the last renewal.
type Store interface {
	// Load returns the session under key. When at least RenewInterval of
	// its lifetime (ttl, or its own Expiry) has passed since the entry's
	// lifetime was last renewed, Load renews it and reports Renewed;
	// otherwise the entry's expiry is left as it is, which keeps the common
	// read path a pure read. A missing or expired entry gives ErrNotFound;
	// a key moved away by a Rename within its grace, a *MovedError.
	Load(ctx context.Context, key string, ttl time.Duration) (Entry, error)

	// Patch applies the JSON merge patches (RFC 7396), in order, to the data
	// under key as one atomic change, and stores the result with a fresh
	// lifetime. A result with no keys deletes the entry. Each patch must
	// already have passed mergepatch.Validate. A key moved away by a
	// Rename within its grace gives a *MovedError, and nothing is written.
	Patch(ctx context.Context, key string, patches []string, opts PatchOptions) (data string, err error)

	// Delete removes key and what is kept beside it (a grace record
	// included). Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error

	// Rename moves the entry under oldKey, with all its Meta, to newKey with a
	// fresh lifetime of opts.TTL (or its own Expiry), as one atomic change:
	// no reader sees both or neither. With opts.Grace it leaves a grace
	// record under oldKey. It returns ErrNotFound when oldKey holds no
	// session, and a *MovedError when it holds a grace record (a second
	// regenerate racing the first).
	Rename(ctx context.Context, oldKey, newKey string, opts RenameOptions) error
}

// RenewFraction sets how often a session's lifetime is renewed: once at
// least a RenewFraction-th of it has passed since the last renewal.
const RenewFraction = 10

// PermanentRenewInterval is how often a permanent session is renewed: a
// tenth of the 400 days that browsers keep a cookie, so the handler can keep
// a permanent session's cookie alive.
const PermanentRenewInterval = 40 * 24 * time.Hour

// RenewInterval is how long a session of lifetime ttl (0 for permanent)
// goes between renewals of its lifetime.
func RenewInterval(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return PermanentRenewInterval
	}
	return ttl / RenewFraction
}

// EffectiveTTL is the lifetime of an entry whose own expiry is own, when
// the handler's is ttl.
func EffectiveTTL(own, ttl time.Duration) time.Duration {
	switch {
	case own == Permanent:
		return 0
	case own > 0:
		return own
	}
	return ttl
}

// SubjectSession is one session of a subject, as a SubjectIndex lists it.
type SubjectSession struct {
	Key  string // the session's key
	Meta Meta
	// LastSeen is when the session was last written or had its lifetime
	// renewed, which is as often as it is written to for being used.
	LastSeen time.Time
}

// MaxSubjectSessions bounds the sessions a SubjectIndex lists at once.
const MaxSubjectSessions = 1000

// SubjectIndex is implemented by stores that find sessions by their
// Meta.Subject: to list a user's sessions and to end them ("sign out
// everywhere"). A subject is looked for among the keys that begin with a
// prefix (the handler's), so that apps sharing a store never see each
// other's users' sessions, however their subjects are named.
//
// An index may hold stale entries for a while (sessions that expired, or
// moved to a new key by a Rename) as long as it never lists, counts nor
// deletes them, and drops them when it finds them; it must never miss a
// live session of the subject.
type SubjectIndex interface {
	// ListSubject returns up to limit (at most MaxSubjectSessions) of
	// the live sessions under keys beginning with prefix whose subject is
	// subject, the most recently seen first (ties in any order), and how
	// many there are in all. A limit of 0 or less lists none, and only
	// counts them. A grace record is not a session. Nothing is renewed.
	ListSubject(ctx context.Context, prefix, subject string, limit int) (sessions []SubjectSession, total int, err error)

	// DeleteSubject deletes the sessions ListSubject would find, each as
	// Delete would, except those keep (when not nil) keeps, and returns
	// how many it deleted. When it returns, none of them can be loaded
	// through this store or any store sharing its data.
	DeleteSubject(ctx context.Context, prefix, subject string, keep func(SubjectSession) bool) (int, error)
}

// FailurePolicy is implemented by stores that can be unreachable, such as
// a store on another server. When FailClosed is true, a request whose
// session cannot be loaded is refused with 503 Service Unavailable; when
// false (and for stores without the method), it is served with a fresh
// session and nothing is written over the stored one.
type FailurePolicy interface {
	FailClosed() bool
}

// The interfaces below are optional: the handler, its metrics and the admin
// API use them where a store has them.

// Counter is implemented by stores that can count their sessions cheaply.
type Counter interface {
	// Len returns the number of sessions held.
	Len() int
}

// Inspector is implemented by stores that can read a session without
// touching its lifetime, for the admin API.
type Inspector interface {
	// Inspect returns the session under key and the time left before it
	// expires, 0 for a permanent entry. A missing or expired entry gives
	// ErrNotFound.
	Inspect(ctx context.Context, key string) (e Entry, ttl time.Duration, err error)
}

// Shared is implemented by stores whose state several module instances
// share (across handlers and config reloads). Two stores with the same
// SharedKey are one store.
type Shared interface {
	SharedKey() string
}

// Removal reasons reported to a RemovalNotifier's function.
const (
	RemovedExpired = "expired"
	RemovedEvicted = "evicted"
)

// RemovalNotifier is implemented by stores that remove sessions on their
// own (expiry sweeps, eviction) and can say so.
type RemovalNotifier interface {
	// NotifyRemovals makes the store call fn, outside its locks, with the
	// key and reason of each session it removes on its own. A later call
	// replaces fn.
	NotifyRemovals(fn func(key, reason string))
}

// OverSize reports whether a patch result must be refused under limit: it
// is longer than limit, and longer than the data it replaces, so that data
// already over a lowered limit may still shrink.
func OverSize(result, current string, limit int) bool {
	return limit > 0 && len(result) > limit && len(result) > len(current)
}
