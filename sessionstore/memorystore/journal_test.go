package memorystore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// crashCopy copies a store's files as they are on disk now into a new
// directory, as a SIGKILL would leave them, and returns the persist path
// there. The store goes on running; the copy is what a restart would read.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	for _, suffix := range []string{"", journalSuffix, oldJournalSuffix} {
		b, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)+suffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, filepath.Base(path))
}

// restart starts a store from path, stopped when the test ends.
func restart(t *testing.T, path string, maxSessions int, logger *zap.Logger) *memStore {
	t.Helper()
	s := newPersistentMemStore(maxSessions, time.Hour, logger, path, time.Hour)
	t.Cleanup(func() { s.Destruct() })
	return s
}

// sameSessions fails unless b holds exactly a's sessions, with their data,
// meta (the meta tail's strings and persist included) and expiry, and, with seen, whether they are on probation (which a
// snapshot does not keep: its sessions come back seen).
func sameSessions(t *testing.T, a, b *memStore, seen bool) {
	t.Helper()
	want := map[string]heldEntry{}
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.RLock()
		for _, slot := range sh.heap {
			if !sh.slots[slot].moved {
				want[string(sh.key(slot))] = heldEntry{memEntry: sh.slots[slot], key: string(sh.key(slot)), data: sh.data(slot), tail: string(sh.tail(slot))}
			}
		}
		sh.mu.RUnlock()
	}
	if b.Len() != len(want) {
		t.Errorf("after the restart Len = %d, want %d", b.Len(), len(want))
	}
	for k, w := range want {
		g, ok := entryOf(b, k)
		switch {
		case !ok:
			t.Errorf("%s lost", k)
		case g.data != w.data || g.expires != w.expires || g.renewed != w.renewed || g.created != w.created ||
			g.ownExpiry != w.ownExpiry || g.tail != w.tail || g.persist != w.persist || (seen && g.seen != w.seen):
			t.Errorf("%s = %+v, want %+v", k, g, w)
		}
	}
	checkInvariants(t, b)
}

// Every kind of change reaches the journal and is written out within a
// second without a save: a crash then loses none of them. Fails without
// the journal's periodic flush.
func TestJournalSurvivesCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	s := newPersistentMemStore(5, time.Hour, nil, path, time.Hour)
	defer s.Destruct()
	patch := func(k, p string, opts sessionstore.PatchOptions) {
		t.Helper()
		opts.Create = true
		if opts.TTL == 0 {
			opts.TTL = time.Hour
		}
		if _, err := s.Patch(ctx, k, []string{p}, opts); err != nil {
			t.Fatal(err)
		}
	}
	patch("seen", `{"user":"alice"}`, sessionstore.PatchOptions{SetCreated: true, Scope: "site"})
	if _, err := s.Load(ctx, "seen", time.Hour); err != nil {
		t.Fatal(err)
	}
	patch("perm", `{"a":1}`, sessionstore.PatchOptions{Expiry: sessionstore.Permanent})
	patch("patched", `{"a":1}`, sessionstore.PatchOptions{})
	patch("patched", `{"b":"longer data, written elsewhere in the arena"}`, sessionstore.PatchOptions{})
	patch("deleted", `{"a":1}`, sessionstore.PatchOptions{})
	s.Delete(ctx, "deleted")
	patch("emptied", `{"a":1}`, sessionstore.PatchOptions{})
	patch("emptied", `{"a":null}`, sessionstore.PatchOptions{})
	patch("old", `{"a":1}`, sessionstore.PatchOptions{})
	if err := s.Rename(ctx, "old", "new", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// A renewal: a Load with a ttl whose renewal interval has passed.
	patch("renewed", `{"a":1}`, sessionstore.PatchOptions{TTL: 50 * time.Millisecond})
	time.Sleep(10 * time.Millisecond)
	if e, err := s.Load(ctx, "renewed", 50*time.Millisecond); err != nil || !e.Renewed {
		t.Fatalf("Load(renewed) = %+v, %v", e, err)
	}
	patch("renewed", `{"a":2}`, sessionstore.PatchOptions{TTL: time.Hour})
	// An eviction: the store holds 5 (seen, perm, patched, new, renewed).
	patch("evicts", `{"a":1}`, sessionstore.PatchOptions{})
	wantLen(t, s, 5)

	time.Sleep(journalFlushEvery + 500*time.Millisecond)
	b := restart(t, crashCopy(t, path), 5, nil)
	sameSessions(t, s, b, true) // all in the journal: no save yet
	// The session never seen is on probation after the restart too: the
	// next new one evicts it, not the seen one.
	if _, err := b.Patch(ctx, "after", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := entryOf(b, "seen"); !ok {
		t.Error("the seen session was evicted after the restart")
	}
}

// A save rotates the journal while writers go on: a crash at any point
// after loses none of the changes made before it, whether in the snapshot,
// the rotated journal or the new one.
func TestJournalRotationLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	ctx := context.Background()
	s := newPersistentMemStore(0, time.Hour, nil, path, time.Hour)
	defer s.Destruct()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := fmt.Sprintf("k%d", (i*7+g)%300)
				switch i % 5 {
				case 4:
					s.Delete(ctx, k)
				default:
					s.Patch(ctx, k, []string{fmt.Sprintf(`{"g%d":%d}`, g, i)}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
				}
			}
		}(g)
	}
	for i := 0; i < 5; i++ {
		s.version.Add(1)
		if err := s.save(); err != nil {
			t.Fatal(err)
		}
	}
	waitOrFail(t, &wg, time.Minute)
	// A save that stopped after the rotation, before its snapshot: the
	// rotated journal is left beside the old snapshot.
	j := s.jnl.Load()
	if _, err := j.rotate(path + oldJournalSuffix); err != nil {
		t.Fatal(err)
	}
	s.Patch(ctx, "late", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
	s.flushJournal()
	sameSessions(t, s, restart(t, crashCopy(t, path), 0, nil), false)
}

// record is a journal line that puts {"<k>":1} under k, renewed now.
func record(k string) string {
	return fmt.Sprintf(`{"o":"put","k":%q,"d":"{\"%s\":1}","r":%d}`, k, k, time.Now().UnixNano()) + "\n"
}

// A crash mid-write leaves the journal's last record cut short: it is
// skipped, counted and logged, the records before it are replayed, and it
// is cut off, so the next records follow a whole one.
func TestJournalTornLastRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	good := record("a") + record("b")
	if err := os.WriteFile(path+journalSuffix, []byte(good+record("c")[:20]), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	s := restart(t, path, 0, zap.New(core))
	wantFound(t, s, "a", `{"a":1}`)
	wantFound(t, s, "b", `{"b":1}`)
	wantGone(t, s, "c")
	torn := logs.FilterMessageSnippet("cut short").All()
	if len(torn) != 1 || torn[0].ContextMap()["torn_records"] != int64(1) {
		t.Errorf("torn record log lines: %v", logs.All())
	}
	if aside, _ := filepath.Glob(path + journalSuffix + ".corrupt-*"); len(aside) != 0 {
		t.Errorf("a torn last record moved the journal aside: %v", aside)
	}
	// The journal was folded into a snapshot and goes on whole.
	s.Patch(bg, "d", []string{`{"d":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
	s.flushJournal()
	b := restart(t, crashCopy(t, path), 0, nil)
	for _, k := range []string{"a", "b", "d"} {
		wantFound(t, b, k, fmt.Sprintf(`{"%s":1}`, k))
	}
}

// A flaw before the last record is corruption: the records before it are
// replayed, the journal is moved aside and the problem logged; the store
// starts.
func TestJournalCorruptRecordMovedAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	content := record("a") + `{"o":"put","k":` + "\n" + record("c")
	if err := os.WriteFile(path+journalSuffix, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	s := restart(t, path, 0, zap.New(core))
	wantFound(t, s, "a", `{"a":1}`)
	wantGone(t, s, "c")
	aside, _ := filepath.Glob(path + journalSuffix + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("journal moved aside to %v, want one file", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != content {
		t.Errorf("the journal moved aside holds %q, want what it held", b)
	}
	if n := logs.FilterMessageSnippet("moved it aside").Len(); n != 1 {
		t.Errorf("%d log lines about the corrupt journal: %v", n, logs.All())
	}
}

// Both files hold session data: readable by their owner only.
func TestJournalFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s := restart(t, path, 0, nil)
	mustPatch(t, s, "a", time.Hour, `{"a":1}`)
	s.flushJournal()
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + journalSuffix} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", p, info, err)
		}
	}
}

// A persist file the store could not write is a config error at
// Provision, not a failed save at shutdown.
func TestPersistPathCheckedAtProvision(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{
		"missing directory": filepath.Join(dir, "nope", "s.jsonl"),
		"a directory":       dir,
		"under a file":      filepath.Join(dir, "file", "s.jsonl"),
	} {
		os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
		m := &MemoryStore{Name: "checked-" + name, Persist: path}
		err := m.Provision(newCaddyContext(t))
		if err == nil || !strings.Contains(err.Error(), "persist") {
			t.Errorf("%s: Provision = %v, want an error about persist", name, err)
		}
		m.Cleanup()
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		if err := checkPersistPath(filepath.Join(ro, "s.jsonl")); err == nil {
			t.Error("a directory without write permission passed")
		}
	}
	if err := checkPersistPath(filepath.Join(dir, "ok.jsonl")); err != nil {
		t.Errorf("a writable path: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.probe-*")); len(left) != 0 {
		t.Errorf("probe files left: %v", left)
	}
}
