// Package memorystore is the in-process session store, the default:
// http.session.stores.memory. Its sessions live in the Caddy process,
// survive config reloads, and survive restarts with a persist file.
package memorystore

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// memoryStores holds the running memory stores by name, so that a config
// reload hands the sessions of the old config to the new one.
var memoryStores = caddy.NewUsagePool()

// MemoryStore keeps sessions in the memory of the Caddy process. Sessions
// survive config reloads (every config naming the same store shares it),
// and restarts too when Persist names a file; they are not shared between
// Caddy instances.
//
// Reads never return an expired session, and expired sessions are swept in
// the background every minute. When the store is full, a session is evicted
// to make room, and the evictions are logged: an expired one first, then the
// oldest session not seen again since the request that created it (such as
// a visitor's who never came back), and only when there is none of those,
// the session nearest its expiry. So a flood of new sessions evicts its own,
// not the users who came back.
type MemoryStore struct {
	// Name identifies the store. Handlers whose stores have the same name
	// share one store, within a config and across reloads. Default: `default`.
	Name string `json:"name,omitempty"`

	// MaxSessions is the most sessions the store holds. When a new session
	// would pass it, another is evicted: the oldest not seen again since it
	// was created, else the one nearest its expiry.
	// Default: 1000000.
	MaxSessions int `json:"max_sessions,omitempty"`

	// Persist is a file where the store saves its sessions, every
	// PersistInterval when they changed and when it stops, and from which
	// it loads them when it starts, dropping the expired ones. It is
	// written atomically (a new file, then renamed over the old), readable
	// by its owner only. A file that cannot be read is moved aside to
	// <file>.corrupt-<time>, and the store starts empty. Placeholders such
	// as {env.STATE_DIR} are replaced. Default: none, sessions live in
	// memory only.
	Persist string `json:"persist,omitempty"`

	// PersistInterval is how often the store saves to Persist when its
	// sessions changed. Default: 1m.
	PersistInterval caddy.Duration `json:"persist_interval,omitempty"`

	store    *memStore
	poolKey  string
	released bool // Caddy calls Cleanup from one goroutine
}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.session.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// Provision finds the store of this name, or starts it.
func (m *MemoryStore) Provision(ctx caddy.Context) error {
	if m.Name == "" {
		m.Name = "default"
	}
	if m.MaxSessions < 0 {
		return fmt.Errorf("memory store %q: max_sessions must not be negative, got %d", m.Name, m.MaxSessions)
	}
	if m.PersistInterval < 0 {
		return fmt.Errorf("memory store %q: persist_interval must not be negative", m.Name)
	}
	if m.PersistInterval == 0 {
		m.PersistInterval = caddy.Duration(defaultPersistInterval)
	}
	m.Persist = caddy.NewReplacer().ReplaceAll(m.Persist, "")
	if m.Persist != "" {
		if err := checkPersistPath(m.Persist); err != nil {
			return fmt.Errorf("memory store %q: %w", m.Name, err)
		}
	}
	m.poolKey = "memory/" + m.Name
	logger := ctx.Logger()
	val, _, err := memoryStores.LoadOrNew(m.poolKey, func() (caddy.Destructor, error) {
		return newPersistentMemStore(m.MaxSessions, defaultSweepInterval, logger, m.Persist, time.Duration(m.PersistInterval)), nil
	})
	if err != nil {
		return fmt.Errorf("memory store %q: %w", m.Name, err)
	}
	m.store = val.(*memStore)
	// The store's settings merge those of all its users, the one that
	// started it included (see applySettings).
	m.store.addUser(m, memSettings{
		maxSessions:     m.MaxSessions,
		persist:         m.Persist,
		persistInterval: time.Duration(m.PersistInterval),
		logger:          logger,
	})
	return nil
}

// Cleanup releases this config's use of the store; the last user stops it.
func (m *MemoryStore) Cleanup() error {
	// A second Cleanup must not release the store again. The store itself
	// stays reachable: a request of the old config may still be running.
	if m.store == nil || m.released {
		return nil
	}
	m.released = true
	m.store.removeUser(m)
	_, err := memoryStores.Delete(m.poolKey)
	return err
}

// Load implements sessionstore.Store.
func (m *MemoryStore) Load(ctx context.Context, key string, ttl time.Duration) (sessionstore.Entry, error) {
	return m.store.Load(ctx, key, ttl)
}

// Patch implements sessionstore.Store.
func (m *MemoryStore) Patch(ctx context.Context, key string, patches []string, opts sessionstore.PatchOptions) (string, error) {
	return m.store.Patch(ctx, key, patches, opts)
}

// Delete implements sessionstore.Store.
func (m *MemoryStore) Delete(ctx context.Context, key string) error {
	return m.store.Delete(ctx, key)
}

// Rename implements sessionstore.Store.
func (m *MemoryStore) Rename(ctx context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	return m.store.Rename(ctx, oldKey, newKey, opts)
}

// Len implements sessionstore.Counter.
func (m *MemoryStore) Len() int { return m.store.Len() }

// Inspect implements sessionstore.Inspector.
func (m *MemoryStore) Inspect(ctx context.Context, key string) (sessionstore.Entry, time.Duration, error) {
	return m.store.Inspect(ctx, key)
}

// ListSubject implements sessionstore.SubjectIndex.
func (m *MemoryStore) ListSubject(ctx context.Context, prefix, subject string, limit int) ([]sessionstore.SubjectSession, int, error) {
	return m.store.ListSubject(ctx, prefix, subject, limit)
}

// DeleteSubject implements sessionstore.SubjectIndex.
func (m *MemoryStore) DeleteSubject(ctx context.Context, prefix, subject string, keep func(sessionstore.SubjectSession) bool) (int, error) {
	return m.store.DeleteSubject(ctx, prefix, subject, keep)
}

// SharedKey implements Shared: memory stores of one name are one store.
func (m *MemoryStore) SharedKey() string { return m.poolKey }

// NotifyRemovals implements RemovalNotifier: fn hears of the sessions that
// expire or are evicted.
func (m *MemoryStore) NotifyRemovals(fn func(key, reason string)) { m.store.onRemove.Store(&fn) }

// Interface guards
var (
	_ sessionstore.Store           = (*MemoryStore)(nil)
	_ sessionstore.Counter         = (*MemoryStore)(nil)
	_ sessionstore.Inspector       = (*MemoryStore)(nil)
	_ sessionstore.Shared          = (*MemoryStore)(nil)
	_ sessionstore.RemovalNotifier = (*MemoryStore)(nil)
	_ sessionstore.SubjectIndex    = (*MemoryStore)(nil)
	_ caddy.Provisioner            = (*MemoryStore)(nil)
	_ caddy.CleanerUpper           = (*MemoryStore)(nil)
	_ caddy.Destructor             = (*memStore)(nil)
)
