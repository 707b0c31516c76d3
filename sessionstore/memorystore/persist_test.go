package memorystore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.jsonl")
	ctx := context.Background()

	a := newPersistentMemStore(100, time.Hour, nil, path, time.Hour)
	for key, ttl := range map[string]time.Duration{"s:live": time.Hour, "s:perm": 0, "s:short": 50 * time.Millisecond} {
		if _, err := a.Patch(ctx, key, []string{`{"k":"` + key + `","é":1}`}, sessionstore.PatchOptions{TTL: ttl, Create: true, Scope: "site:443"}); err != nil {
			t.Fatal(err)
		}
	}
	// A grace record is not saved: it lives for seconds.
	if _, err := a.Patch(ctx, "s:old", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := a.Rename(ctx, "s:old", "s:new", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := a.Destruct(); err != nil { // saves
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600: it holds session data", info.Mode().Perm())
	}
	if leftovers, _ := filepath.Glob(path + ".tmp-*"); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	time.Sleep(100 * time.Millisecond) // s:short expires while the store is down
	b := newPersistentMemStore(100, time.Hour, nil, path, time.Hour)
	defer b.Destruct()
	if b.Len() != 3 {
		t.Errorf("after restart Len = %d, want 3 (the expired one dropped)", b.Len())
	}
	if _, err := b.Load(ctx, "s:old", time.Hour); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("the grace record came back: %v", err)
	}
	if e, err := b.Load(ctx, "s:live", time.Hour); err != nil || e.Meta.Scope != "site:443" {
		t.Errorf("s:live after restart: scope %q, %v", e.Meta.Scope, err)
	}
	data, ttl, err := unpackInspect(b.Inspect(ctx, "s:live"))
	if err != nil || data != `{"k":"s:live","\u00e9":1}` || ttl < 59*time.Minute {
		t.Errorf("s:live after restart: %q ttl %v, %v", data, ttl, err)
	}
	if _, ttl, err := unpackInspect(b.Inspect(ctx, "s:perm")); err != nil || ttl != 0 {
		t.Errorf("s:perm after restart: ttl %v, %v; want permanent", ttl, err)
	}
	if _, _, err := unpackInspect(b.Inspect(ctx, "s:short")); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("an expired session came back: %v", err)
	}
}

func TestPersistSavesOnlyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s := newPersistentMemStore(100, time.Hour, nil, path, time.Hour)
	defer s.Destruct()
	if _, err := s.Patch(context.Background(), "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	first, _ := os.Stat(path)
	time.Sleep(20 * time.Millisecond)
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.Stat(path); !second.ModTime().Equal(first.ModTime()) {
		t.Error("an unchanged store was written again")
	}
	_ = s.Delete(context.Background(), "k")
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	if third, _ := os.Stat(path); third.ModTime().Equal(first.ModTime()) {
		t.Error("a change was not saved")
	}
}

func TestPersistPeriodically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s := newPersistentMemStore(100, time.Hour, nil, path, time.Second)
	defer s.Destruct()
	if _, err := s.Patch(context.Background(), "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if body, err := os.ReadFile(path); err == nil && strings.Contains(string(body), `"k":"k"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the store was not saved within its interval")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPersistCorruptFileMovedAside(t *testing.T) {
	for name, body := range map[string]string{
		"garbage":         "this is not JSON\n",
		"wrong format":    `{"format":"something else"}` + "\n",
		"truncated":       `{"format":"` + persistFormat + `","saved":"2026-01-01T00:00:00Z"}` + "\n" + `{"k":"a","d":"{}","r":1`,
		"data not object": `{"format":"` + persistFormat + `","saved":"2026-01-01T00:00:00Z"}` + "\n" + `{"k":"a","d":"[1]","r":1}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.jsonl")
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.ErrorLevel)
			s := newPersistentMemStore(100, time.Hour, zap.New(core), path, time.Hour)
			defer s.Destruct()
			if s.Len() != 0 {
				t.Errorf("Len = %d, want an empty store", s.Len())
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("moved aside: %v, want one file", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); string(kept) != body {
				t.Errorf("the moved file lost its content: %q", kept)
			}
			if logs.Len() != 1 {
				t.Errorf("logged %d errors, want 1", logs.Len())
			}
			// The store works, and saves a good file in its place.
			if _, err := s.Patch(context.Background(), "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
				t.Fatal(err)
			}
			if err := s.save(); err != nil {
				t.Fatal(err)
			}
			if _, err := readPersisted(path); err != nil {
				t.Errorf("the new file does not read back: %v", err)
			}
		})
	}
}

func TestPersistMissingFileIsEmpty(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := newPersistentMemStore(100, time.Hour, zap.New(core), filepath.Join(t.TempDir(), "none.jsonl"), time.Hour)
	defer s.Destruct()
	if s.Len() != 0 || logs.Len() != 0 {
		t.Errorf("Len %d, errors logged %d; want an empty store and no error", s.Len(), logs.Len())
	}
}

// TestPersistSavedWhenItsUserGoesFirst: two users of one store, the one
// that names the file cleaned up first (as Caddy may at shutdown); the
// sessions must still be saved.
func TestPersistSavedWhenItsUserGoesFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s := newMemStore(0, time.Hour, nil)
	withFile, bare := new(int), new(int)
	s.addUser(withFile, memSettings{persist: path, persistInterval: time.Hour})
	s.addUser(bare, memSettings{})
	if _, err := s.Patch(context.Background(), "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
		t.Fatal(err)
	}
	s.removeUser(withFile)
	s.removeUser(bare)
	if err := s.Destruct(); err != nil {
		t.Fatal(err)
	}
	entries, err := readPersisted(path)
	if err != nil || len(entries) != 1 || entries[0].Key != "k" {
		t.Errorf("saved %v, %v; want the one session", entries, err)
	}
}
