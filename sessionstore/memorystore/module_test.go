package memorystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func TestMemoryStoreModuleInfo(t *testing.T) {
	info, err := caddy.GetModule("http.session.stores.memory")
	if err != nil {
		t.Fatalf("module not registered: %v", err)
	}
	if _, ok := info.New().(*MemoryStore); !ok {
		t.Errorf("New() = %T, want *MemoryStore", info.New())
	}
	b, err := json.Marshal(MemoryStore{Name: "x", MaxSessions: 10})
	if err != nil || string(b) != `{"name":"x","max_sessions":10}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
	b, _ = json.Marshal(MemoryStore{})
	if string(b) != `{}` {
		t.Errorf("JSON of zero value = %s, want {}", b)
	}
}

func newCaddyContext(t *testing.T) caddy.Context {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func provision(t *testing.T, m *MemoryStore) {
	t.Helper()
	if err := m.Provision(newCaddyContext(t)); err != nil {
		t.Fatalf("Provision(%+v): %v", m, err)
	}
}

func poolRefs(name string) int {
	n, _ := memoryStores.References("memory/" + name)
	return n
}

func TestMemoryStoreSharedThroughPool(t *testing.T) {
	const name = "t1"
	m1 := &MemoryStore{Name: name}
	m2 := &MemoryStore{Name: name}
	provision(t, m1)
	provision(t, m2)
	if m1.store != m2.store {
		t.Fatal("two MemoryStores of one name have different stores")
	}
	if n := poolRefs(name); n != 2 {
		t.Errorf("pool references = %d, want 2", n)
	}

	if _, err := m1.Patch(bg, "sess", []string{`{"user":"bob"}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	data, _, err := unpackLoad(m2.Load(bg, "sess", time.Hour))
	if err != nil || data != `{"user":"bob"}` {
		t.Fatalf("Load through the other = %q, %v", data, err)
	}
	if m1.Len() != 1 || m2.Len() != 1 {
		t.Errorf("Len = %d, %d; want 1, 1", m1.Len(), m2.Len())
	}

	// Cleanup of one (an old config unloaded) keeps the store.
	if err := m1.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n := poolRefs(name); n != 1 {
		t.Errorf("pool references = %d, want 1", n)
	}
	select {
	case <-m2.store.sweepDone:
		t.Fatal("store stopped while still in use")
	default:
	}
	data, _, err = unpackLoad(m2.Load(bg, "sess", time.Hour))
	if err != nil || data != `{"user":"bob"}` {
		t.Fatalf("Load after the other's Cleanup = %q, %v", data, err)
	}
	if _, err := m2.Patch(bg, "sess", []string{`{"n":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: false}); err != nil {
		t.Fatal(err)
	}
	if err := m2.Rename(bg, "sess", "sess2", sessionstore.RenameOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := m2.Delete(bg, "sess2"); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Patch(bg, "left", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}

	// The last Cleanup stops the store.
	old := m2.store
	if err := m2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n := poolRefs(name); n != 0 {
		t.Errorf("pool references = %d after both cleanups, want 0", n)
	}
	select {
	case <-old.sweepDone:
	case <-time.After(5 * time.Second):
		t.Fatal("sweeper still running after the last Cleanup")
	}

	// A new one of the same name starts empty.
	m3 := &MemoryStore{Name: name}
	provision(t, m3)
	t.Cleanup(func() { m3.Cleanup() })
	if m3.store == old {
		t.Fatal("the stopped store was reused")
	}
	if n := m3.Len(); n != 0 {
		t.Errorf("new store Len() = %d, want 0", n)
	}
	if _, _, err := unpackLoad(m3.Load(bg, "left", time.Hour)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Load from the new store = %v, want sessionstore.ErrNotFound", err)
	}
}

func TestMemoryStoreNames(t *testing.T) {
	a := &MemoryStore{Name: "names-a"}
	b := &MemoryStore{Name: "names-b"}
	d := &MemoryStore{}
	for _, m := range []*MemoryStore{a, b, d} {
		provision(t, m)
		t.Cleanup(func() { m.Cleanup() })
	}
	if d.Name != "default" {
		t.Errorf("default name = %q", d.Name)
	}
	if a.store == b.store || a.store == d.store {
		t.Fatal("stores of different names are shared")
	}
	if _, err := a.Patch(bg, "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unpackLoad(b.Load(bg, "k", time.Hour)); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("another name's store sees the session: %v", err)
	}
}

func TestMemoryStoreMaxSessions(t *testing.T) {
	const name = "max"
	m1 := &MemoryStore{Name: name, MaxSessions: 5}
	provision(t, m1)
	t.Cleanup(func() { m1.Cleanup() })
	if got := m1.store.maxSessions.Load(); got != 5 {
		t.Errorf("max = %d, want 5", got)
	}
	// The newest config's setting wins.
	m2 := &MemoryStore{Name: name, MaxSessions: 2}
	provision(t, m2)
	t.Cleanup(func() { m2.Cleanup() })
	if got := m1.store.maxSessions.Load(); got != 2 {
		t.Errorf("max after a second provision = %d, want 2", got)
	}
	for i := 0; i < 4; i++ {
		if _, err := m1.Patch(bg, fmt.Sprint(i), []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Duration(i+1) * time.Hour, Create: true}); err != nil {
			t.Fatal(err)
		}
	}
	if n := m1.Len(); n != 2 {
		t.Errorf("Len() = %d, want the cap 2", n)
	}

	// A negative cap is refused and takes no reference to the pool.
	bad := &MemoryStore{Name: "negative", MaxSessions: -1}
	err := bad.Provision(newCaddyContext(t))
	if err == nil || !strings.Contains(err.Error(), "max_sessions") {
		t.Errorf("Provision(max_sessions -1) = %v, want an error naming max_sessions", err)
	}
	if n := poolRefs("negative"); n != 0 {
		t.Errorf("failed Provision left %d pool references", n)
	}
	if err := bad.Cleanup(); err != nil {
		t.Errorf("Cleanup after a failed Provision = %v", err)
	}
}

func TestSharedSettingsMergeAndRestore(t *testing.T) {
	s := newMemStore(0, time.Hour, nil)
	t.Cleanup(func() { _ = s.Destruct() })
	a, b, c := new(int), new(int), new(int)
	persistPath := func() string {
		if p := s.persist.path.Load(); p != nil {
			return *p
		}
		return ""
	}

	s.addUser(a, memSettings{maxSessions: 100, persist: "/tmp/a.jsonl", persistInterval: time.Minute})
	// Another handler of the same config with a bare `store memory`:
	// it neither resets the cap nor turns persistence off.
	s.addUser(b, memSettings{})
	if got := s.maxSessions.Load(); got != 100 {
		t.Errorf("max_sessions %d after a user that sets none, want 100", got)
	}
	if got := persistPath(); got != "/tmp/a.jsonl" {
		t.Errorf("persist %q after a user that sets none, want /tmp/a.jsonl", got)
	}

	// A new config with other settings takes over; if it fails and is
	// cleaned up, the running config's settings come back.
	s.addUser(c, memSettings{maxSessions: 10, persist: "/tmp/c.jsonl", persistInterval: time.Second})
	if s.maxSessions.Load() != 10 || persistPath() != "/tmp/c.jsonl" {
		t.Errorf("newest settings not applied: %d %q", s.maxSessions.Load(), persistPath())
	}
	s.removeUser(c)
	if s.maxSessions.Load() != 100 || persistPath() != "/tmp/a.jsonl" || s.persist.interval.Load() != int64(time.Minute) {
		t.Errorf("after the new config went, settings %d %q %v; want the running config's", s.maxSessions.Load(), persistPath(), time.Duration(s.persist.interval.Load()))
	}
	s.removeUser(a)
	if s.maxSessions.Load() != DefaultMaxSessions || persistPath() != "" {
		t.Errorf("with only a bare user left: %d %q", s.maxSessions.Load(), persistPath())
	}
}

// TestPersistFileLoadedWhenNamedAfterABareStore: a config with a bare
// `store memory` provisioned before another that names a persist file, on
// the same store, loads the file rather than saving the empty store over
// it.
func TestPersistFileLoadedWhenNamedAfterABareStore(t *testing.T) {
	path := t.TempDir() + "/s.jsonl"
	const name = "late-persist"
	// A first life of the store, with the file, that saves one session.
	first := &MemoryStore{Name: name, Persist: path}
	provision(t, first)
	if _, err := first.Patch(context.Background(), "session:kept", []string{`{"user":"kim"}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := first.Cleanup(); err != nil { // the last user: the store saves and stops
		t.Fatal(err)
	}
	if poolRefs(name) != 0 {
		t.Fatalf("the store outlived its last user")
	}
	// The next life: a bare store of the same name comes first.
	bare := &MemoryStore{Name: name}
	provision(t, bare)
	withFile := &MemoryStore{Name: name, Persist: path}
	provision(t, withFile)
	defer func() {
		_ = withFile.Cleanup()
		_ = bare.Cleanup()
	}()
	if e, err := bare.Load(context.Background(), "session:kept", time.Hour); err != nil || e.Data != `{"user":"kim"}` {
		t.Fatalf("the persisted session after the file was named late: %+v, %v", e, err)
	}
}
