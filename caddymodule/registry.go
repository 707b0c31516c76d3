package caddymodule

import (
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// registries holds the one registry while any config has a session
// handler, so the record and the metrics' counts survive config reloads.
var registries = caddy.NewUsagePool()

const registryKey = "session-registry"

// registry records the session handlers of the running configs, for the
// admin API and the active-sessions gauge, and owns the metrics.
type registry struct {
	mu       sync.RWMutex
	handlers map[*Handler]struct{}
	metrics  *metrics
}

// acquireRegistry returns the registry, made on first use; each call must
// be matched by a releaseRegistry.
func acquireRegistry() (*registry, error) {
	val, _, err := registries.LoadOrNew(registryKey, func() (caddy.Destructor, error) {
		reg := &registry{handlers: map[*Handler]struct{}{}}
		reg.metrics = newMetrics(reg)
		return reg, nil
	})
	if err != nil {
		return nil, fmt.Errorf("session registry: %w", err)
	}
	return val.(*registry), nil
}

func releaseRegistry() error {
	_, err := registries.Delete(registryKey)
	return err
}

// currentRegistry returns the registry if any config has a session
// handler, without taking a reference.
func currentRegistry() *registry {
	var reg *registry
	registries.Range(func(_, val any) bool {
		reg = val.(*registry)
		return false
	})
	return reg
}

// Destruct implements caddy.Destructor.
func (*registry) Destruct() error { return nil }

func (reg *registry) add(h *Handler) {
	reg.mu.Lock()
	reg.handlers[h] = struct{}{}
	reg.mu.Unlock()
}

func (reg *registry) remove(h *Handler) {
	reg.mu.Lock()
	delete(reg.handlers, h)
	reg.mu.Unlock()
}

// prefixedStore is one (store, prefix) pair that holds a session_name's
// sessions; handlers of the old and new config during a reload, or two
// handlers of one config, may share it.
type prefixedStore struct {
	sessionName string
	cookieName  string
	prefix      string
	backend     string
	store       sessionstore.Store
	handler     *Handler
}

// storeIdentity says which handlers' stores are one store.
func storeIdentity(s sessionstore.Store) any {
	if sh, ok := s.(sessionstore.Shared); ok {
		return sh.SharedKey()
	}
	return s
}

// stores returns the distinct (store, prefix) pairs of the handlers whose
// session_name is name, or of all handlers when name is "".
func (reg *registry) stores(name string) []prefixedStore {
	reg.mu.RLock()
	defer reg.mu.RUnlock()
	type ident struct {
		name   string
		store  any
		prefix string
	}
	seen := map[ident]bool{}
	var out []prefixedStore
	for h := range reg.handlers {
		if name != "" && h.SessionName != name {
			continue
		}
		id := ident{h.SessionName, storeIdentity(h.store), h.prefix}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, prefixedStore{
			sessionName: h.SessionName,
			cookieName:  h.CookieName,
			prefix:      h.prefix,
			backend:     backendName(h.store),
			store:       h.store,
			handler:     h,
		})
	}
	return out
}

// storeRemoved hears of a session a store removed on its own, and counts
// and logs it under the session_name whose prefix the key has.
func (reg *registry) storeRemoved(storeKey any, key, reason string) {
	reg.mu.RLock()
	var owner *Handler
	for h := range reg.handlers {
		if storeIdentity(h.store) == storeKey && strings.HasPrefix(key, h.prefix) &&
			(owner == nil || len(h.prefix) > len(owner.prefix)) {
			owner = h
		}
	}
	reg.mu.RUnlock()
	if owner == nil {
		return
	}
	owner.metrics.destroyed(reason)
	if reason == sessionstore.RemovedEvicted {
		owner.logger.Debug("session evicted: the store was full",
			zap.String("session_name", owner.SessionName),
			zap.String("session_hash", idHash(strings.TrimPrefix(key, owner.prefix))))
	}
}

func backendName(s sessionstore.Store) string {
	if m, ok := s.(caddy.Module); ok {
		id := m.CaddyModule().ID
		return id.Name()
	}
	return fmt.Sprintf("%T", s)
}
