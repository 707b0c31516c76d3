// Package sessionstore holds the interface between the session handler and
// the places session data is kept, and the stores that implement it.
//
// A store knows nothing of cookies, IDs or HTTP: it keeps JSON objects under
// string keys, each with an idle lifetime. Data crosses the interface as the
// compact, ASCII-only JSON text that Canonicalize produces, so the handler can
// hand it to the upstream as a header value without another pass over it.
package sessionstore

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when a key is not in the store, or has expired.
var ErrNotFound = errors.New("session not found")

// Store keeps session data. Implementations must be safe for concurrent use:
// requests of one session may arrive at the same time, through one Caddy or
// several sharing a store.
//
// A ttl of zero means the entry never expires.
type Store interface {
	// Load returns the data under key. When at least renewAfter has passed
	// since the entry's lifetime was last renewed, Load renews it to ttl
	// and reports renewed; otherwise the entry's expiry is left as it is,
	// which keeps the common read path a pure read. A missing or expired
	// entry gives ErrNotFound.
	Load(ctx context.Context, key string, ttl, renewAfter time.Duration) (data string, renewed bool, err error)

	// Patch applies the JSON merge patches (RFC 7396), in order, to the data
	// under key as one atomic change, and stores the result with a fresh
	// lifetime of ttl. A result with no keys deletes the entry. When key is
	// absent and create is false, nothing is written and ErrNotFound is
	// returned; with create, the patches apply to an empty object. Each
	// patch must already have passed ValidatePatch.
	Patch(ctx context.Context, key string, patches []string, ttl time.Duration, create bool) (data string, err error)

	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error

	// Rename moves the entry under oldKey to newKey with a fresh lifetime
	// of ttl, as one atomic change: no reader sees both or neither. It
	// returns ErrNotFound when oldKey is absent.
	Rename(ctx context.Context, oldKey, newKey string, ttl time.Duration) error
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
	// Inspect returns the data under key and the time left before it
	// expires, 0 for a permanent entry. A missing or expired entry gives
	// ErrNotFound.
	Inspect(ctx context.Context, key string) (data string, ttl time.Duration, err error)
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
