package memorystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// fakeClock is a clock the test moves by hand. It is safe for concurrent
// use, so the concurrency tests can move it while the store reads it.
type fakeClock struct{ ns atomic.Int64 }

// testEpoch is a realistic "now", so that arithmetic that would overflow
// with real timestamps overflows in the tests too.
var testEpoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func (c *fakeClock) now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newTestStore returns a store on a fake clock whose sweeper never runs on
// its own (the tests call sweep), and stops it when the test ends.
func newTestStore(t *testing.T, maxSessions int) (*memStore, *fakeClock) {
	t.Helper()
	return newTestStoreLogger(t, maxSessions, nil)
}

func newTestStoreLogger(t *testing.T, maxSessions int, logger *zap.Logger) (*memStore, *fakeClock) {
	t.Helper()
	s := newMemStore(maxSessions, time.Hour, logger)
	c := &fakeClock{}
	c.ns.Store(testEpoch)
	// The sweeper reads s.now only on a tick, an hour away: no race.
	s.now = c.now
	t.Cleanup(func() {
		if err := s.Destruct(); err != nil {
			t.Errorf("Destruct: %v", err)
		}
	})
	return s, c
}

var bg = context.Background()

// forever is a ttl whose renewal interval, a tenth of it (29 years), no
// test reaches: Load with it is a pure read of an entry without an own
// expiry.
const forever = time.Duration(math.MaxInt64)

func mustPatch(t *testing.T, s *memStore, key string, ttl time.Duration, patches ...string) string {
	t.Helper()
	data, err := s.Patch(bg, key, patches, sessionstore.PatchOptions{TTL: ttl, Create: true})
	if err != nil {
		t.Fatalf("Patch(%q, %q): %v", key, patches, err)
	}
	return data
}

// peek loads key without renewing it and returns its data, or "" when it
// is not found.
func peek(t *testing.T, s *memStore, key string) string {
	t.Helper()
	data, renewed, err := unpackLoad(s.Load(bg, key, forever))
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		if data != "" || renewed {
			t.Errorf("Load(%q) = %q, %v with sessionstore.ErrNotFound", key, data, renewed)
		}
		return ""
	case err != nil:
		t.Fatalf("Load(%q): %v", key, err)
	}
	if renewed {
		t.Errorf("Load(%q) with ttl forever renewed", key)
	}
	return data
}

func wantFound(t *testing.T, s *memStore, key, want string) {
	t.Helper()
	if got := peek(t, s, key); got != want {
		if got == "" {
			t.Errorf("Load(%q): not found, want %s", key, want)
		} else {
			t.Errorf("Load(%q) = %s, want %s", key, got, want)
		}
	}
}

func wantGone(t *testing.T, s *memStore, key string) {
	t.Helper()
	if got := peek(t, s, key); got != "" {
		t.Errorf("Load(%q) = %s, want sessionstore.ErrNotFound", key, got)
	}
}

// wantHeld is wantFound through Inspect, which never renews: for entries
// last renewed longer ago than forever's renewal interval.
func wantHeld(t *testing.T, s *memStore, key, want string) {
	t.Helper()
	if got, _, err := unpackInspect(s.Inspect(bg, key)); err != nil || got != want {
		t.Errorf("Inspect(%q) = %q, %v; want %s", key, got, err, want)
	}
}

func wantLen(t *testing.T, s *memStore, want int) {
	t.Helper()
	if got := s.Len(); got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
}

// heldEntry is an entry as a shard holds it, with its key and data.
type heldEntry struct {
	memEntry
	key, data string
}

// shardIndex returns the number of the shard that holds key.
func (s *memStore) shardIndex(key string) int { return int(s.hash(key) % memShardCount) }

// entryOf returns a copy of the entry under key as the store holds it,
// expired or not.
func entryOf(s *memStore, key string) (heldEntry, bool) {
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.find(h, key)
	if !ok {
		return heldEntry{}, false
	}
	return heldEntry{memEntry: sh.slots[i], key: string(sh.key(i)), data: sh.data(i)}, true
}

// checkInvariants verifies every shard: the heap is in heap order and each
// entry's position is its place in it; each slot is either in the heap or
// free, once; the index finds every entry by its key, and holds nothing
// else; every key is in the shard it hashes to; the arena's garbage is
// what the entries do not use; and the entries add up to Len. The store
// must be quiescent.
func checkInvariants(t *testing.T, s *memStore) {
	t.Helper()
	total := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		seen := make(map[uint32]bool)
		used := 0
		for j, slot := range sh.heap {
			if int(slot) >= len(sh.slots) || seen[slot] {
				t.Errorf("shard %d: heap[%d] is slot %d, out of range or twice", i, j, slot)
				continue
			}
			seen[slot] = true
			e := &sh.slots[slot]
			key := string(sh.key(slot))
			used += int(e.keyLen + e.dataLen)
			if e.pos != uint32(j) {
				t.Errorf("shard %d: heap[%d] (%q) has position %d", i, j, key, e.pos)
			}
			if e.hash != s.hash(key) {
				t.Errorf("shard %d: slot %d (%q) has hash %x, want %x", i, slot, key, e.hash, s.hash(key))
			}
			if got, ok := sh.find(e.hash, key); !ok || got != slot {
				t.Errorf("shard %d: find(%q) = %d, %v; want slot %d", i, key, got, ok, slot)
			}
			if si := s.shardIndex(key); si != i {
				t.Errorf("shard %d: key %q belongs in shard %d", i, key, si)
			}
			if j > 0 && sh.less(uint32(j), uint32((j-1)/2)) {
				p := &sh.slots[sh.heap[(j-1)/2]]
				t.Errorf("shard %d: heap[%d] (%d,%d) sorts before its parent (%d,%d)",
					i, j, e.expires, e.renewed, p.expires, p.renewed)
			}
		}
		for _, slot := range sh.free {
			if seen[slot] {
				t.Errorf("shard %d: slot %d is both free and in the heap (or free twice)", i, slot)
			}
			seen[slot] = true
		}
		if len(seen) != len(sh.slots) {
			t.Errorf("shard %d: %d slots, %d in the heap or free", i, len(sh.slots), len(seen))
		}
		if n := len(sh.index) + len(sh.collided); n != len(sh.heap) {
			t.Errorf("shard %d: index and collided hold %d keys, the heap %d", i, n, len(sh.heap))
		}
		if used+sh.garbage != len(sh.arena) {
			t.Errorf("shard %d: entries use %d arena bytes and %d are garbage, but it holds %d",
				i, used, sh.garbage, len(sh.arena))
		}
		total += len(sh.heap)
		sh.mu.RUnlock()
	}
	if total != s.Len() {
		t.Errorf("shards hold %d entries, Len() = %d", total, s.Len())
	}
}

// keysInShards returns n keys with the given prefix that all hash to the
// same shard (same) or each to a different shard (!same).
func keysInShards(s *memStore, prefix string, n int, same bool) []string {
	var keys []string
	used := map[int]bool{}
	want := -1
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		si := s.shardIndex(k)
		if same {
			if want < 0 {
				want = si
			}
			if si != want {
				continue
			}
		} else {
			if used[si] {
				continue
			}
			used[si] = true
		}
		keys = append(keys, k)
	}
	return keys
}

func TestMemPatchInvalidChangesNothing(t *testing.T) {
	s, _ := newTestStore(t, 0)
	mustPatch(t, s, "k", time.Hour, `{"a":1}`)
	before, _ := entryOf(s, "k")
	for _, bad := range [][]string{{`[1]`}, {`{"b":2}`, `nope`}, {`{} x`}} {
		if data, err := s.Patch(bg, "k", bad, sessionstore.PatchOptions{TTL: 2 * time.Hour, Create: true}); err == nil {
			t.Errorf("Patch(%q) = %q, want error", bad, data)
		}
		if data, err := s.Patch(bg, "new", bad, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err == nil {
			t.Errorf("Patch(new, %q) = %q, want error", bad, data)
		}
	}
	wantFound(t, s, "k", `{"a":1}`)
	wantGone(t, s, "new")
	wantLen(t, s, 1)
	if after, _ := entryOf(s, "k"); after.expires != before.expires || after.renewed != before.renewed {
		t.Errorf("a failed patch changed the lifetime: %+v -> %+v", before, after)
	}
	checkInvariants(t, s)
}

func TestMemPatchUnlocksOnError(t *testing.T) {
	// Every error path must release the shard lock, or this deadlocks.
	s, _ := newTestStore(t, 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			s.Patch(bg, "k", []string{`[]`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
			s.Patch(bg, "k", []string{`{}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: false})
		}
		if _, err := s.Patch(bg, "k", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true}); err != nil {
			t.Errorf("Patch: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Patch deadlocked after an error")
	}
}

func TestMemExpiry(t *testing.T) {
	const ttl = 10 * time.Minute
	tests := []struct {
		name    string
		elapsed time.Duration
		found   bool
	}{
		{"fresh", 0, true},
		{"renewal due", ttl / sessionstore.RenewFraction, true},
		{"just before expiry", ttl - time.Nanosecond, true},
		{"at expiry", ttl, false},
		{"after expiry", ttl + time.Nanosecond, false},
		{"long after", 1000 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestStore(t, 0)
			mustPatch(t, s, "k", ttl, `{"a":1}`)
			c.advance(tt.elapsed)

			// Every read path agrees on whether the entry is there: the
			// renewing one (ttl, due from a tenth of it on) and the pure
			// read (forever, never due).
			for _, loadTTL := range []time.Duration{ttl, forever} {
				data, _, err := unpackLoad(s.Load(bg, "k", loadTTL))
				if tt.found {
					if err != nil || data != `{"a":1}` {
						t.Errorf("Load(ttl %v) = %q, %v; want data", loadTTL, data, err)
					}
				} else if !errors.Is(err, sessionstore.ErrNotFound) || data != "" {
					t.Errorf("Load(ttl %v) = %q, %v; want sessionstore.ErrNotFound", loadTTL, data, err)
				}
			}
			data, err := s.Patch(bg, "k", []string{`{"b":2}`}, sessionstore.PatchOptions{TTL: ttl, Create: false})
			if tt.found {
				if err != nil || data != `{"a":1,"b":2}` {
					t.Errorf("Patch(create=false) = %q, %v", data, err)
				}
			} else {
				if !errors.Is(err, sessionstore.ErrNotFound) || data != "" {
					t.Errorf("Patch(create=false) on expired = %q, %v; want sessionstore.ErrNotFound", data, err)
				}
				wantLen(t, s, 0) // the expired entry was dropped
				// create=true starts from nothing, not from the old data.
				if data := mustPatch(t, s, "k", ttl, `{"b":2}`); data != `{"b":2}` {
					t.Errorf("Patch(create=true) on expired = %s, want {\"b\":2}", data)
				}
			}
			checkInvariants(t, s)
		})
	}
}

func TestMemExpiredNotRenewedByLoad(t *testing.T) {
	// A Load that would renew (a minute is past the renewal interval of
	// the ttl) must not bring an expired entry back.
	s, c := newTestStore(t, 0)
	mustPatch(t, s, "k", time.Minute, `{"a":1}`)
	c.advance(time.Minute)
	if _, renewed, err := unpackLoad(s.Load(bg, "k", time.Minute)); !errors.Is(err, sessionstore.ErrNotFound) || renewed {
		t.Fatalf("Load(expired, renewal due) = %v, %v; want sessionstore.ErrNotFound", renewed, err)
	}
	e, ok := entryOf(s, "k")
	if !ok || e.expires != testEpoch+int64(time.Minute) {
		t.Errorf("expired entry was renewed: %+v", e)
	}
}

func TestMemTTLZeroNeverExpires(t *testing.T) {
	s, c := newTestStore(t, 0)
	mustPatch(t, s, "k", 0, `{"a":1}`)
	for _, step := range []time.Duration{time.Hour, 24 * time.Hour, 100 * 365 * 24 * time.Hour} {
		c.advance(step)
		wantHeld(t, s, "k", `{"a":1}`)
	}
	if n := s.sweep(); n != 0 {
		t.Errorf("sweep dropped %d permanent entries", n)
	}
	wantLen(t, s, 1)
	// Renewing a permanent entry (due: a century is past its renewal
	// interval) with ttl 0 keeps it permanent.
	if _, renewed, err := unpackLoad(s.Load(bg, "k", 0)); err != nil || !renewed {
		t.Fatalf("Load(ttl 0) = %v, %v", renewed, err)
	}
	if e, _ := entryOf(s, "k"); e.expires != math.MaxInt64 {
		t.Errorf("expires = %d, want MaxInt64", e.expires)
	}
}

func TestMemHugeTTL(t *testing.T) {
	// The handler accepts expiries up to what a time.Duration holds; now
	// plus such a ttl must not wrap around into the past.
	for _, ttl := range []time.Duration{
		200 * 365 * 24 * time.Hour,
		time.Duration(math.MaxInt64 - testEpoch + 1),
		time.Duration(math.MaxInt64/int64(time.Second)) * time.Second,
		time.Duration(math.MaxInt64),
	} {
		t.Run(ttl.String(), func(t *testing.T) {
			s, c := newTestStore(t, 0)
			mustPatch(t, s, "p", ttl, `{"a":1}`)
			mustPatch(t, s, "r", time.Hour, `{"a":1}`)
			if err := s.Rename(bg, "r", "r2", ttl); err != nil {
				t.Fatal(err)
			}
			// A Load renews with ttl once a tenth of it has passed:
			// l is permanent until then, so it lives to see it.
			mustPatch(t, s, "l", 0, `{"a":1}`)
			c.advance(sessionstore.RenewInterval(ttl))
			if _, renewed, err := unpackLoad(s.Load(bg, "l", ttl)); err != nil || !renewed {
				t.Fatalf("Load = %v, %v", renewed, err)
			}
			c.advance(24 * time.Hour)
			for _, k := range []string{"p", "r2", "l"} {
				wantHeld(t, s, k, `{"a":1}`)
			}
			if n := s.sweep(); n != 0 {
				t.Errorf("sweep dropped %d entries", n)
			}
		})
	}
}

// TestMemLoadRenewal walks one entry through a series of loads. Times are
// offsets from the entry's creation. The entry's ttl is 10m, so its
// renewal is due a minute after the last one; a step that loads with
// forever instead is a pure read (see forever).
func TestMemLoadRenewal(t *testing.T) {
	const ttl = 10 * time.Minute
	type step struct {
		at          time.Duration
		loadTTL     time.Duration // ttl, or forever for a pure read
		found       bool
		renewed     bool
		wantExpires time.Duration // offset; checked when found
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"not due is a pure read", []step{
			{30 * time.Second, ttl, true, false, ttl},
			{time.Minute - 1, ttl, true, false, ttl},
			{9 * time.Minute, forever, true, false, ttl},
			{ttl, forever, false, false, 0}, // never renewed: gone at the original expiry
		}},
		{"due renews", []step{
			{time.Minute, ttl, true, true, time.Minute + ttl},
			{time.Minute, ttl, true, false, time.Minute + ttl}, // just renewed
			{2*time.Minute - 1, ttl, true, false, time.Minute + ttl},
			{2 * time.Minute, ttl, true, true, 2*time.Minute + ttl},
			// Past the original expiry, and the first renewal's.
			{11*time.Minute + 30*time.Second, forever, true, false, 2*time.Minute + ttl},
			{12*time.Minute - 1, forever, true, false, 2*time.Minute + ttl},
			{12 * time.Minute, forever, false, false, 0},
		}},
		{"each interval renews", []step{
			{time.Minute, ttl, true, true, time.Minute + ttl},
			{2 * time.Minute, ttl, true, true, 2*time.Minute + ttl},
			{3 * time.Minute, ttl, true, true, 3*time.Minute + ttl},
		}},
		{"renewing at the last moment", []step{
			{ttl - 1, ttl, true, true, ttl - 1 + ttl},
			{2*ttl - 2, forever, true, false, 2*ttl - 1},
			{2*ttl - 1, ttl, false, false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestStore(t, 0)
			start := c.now()
			mustPatch(t, s, "k", ttl, `{"a":1}`)
			for i, st := range tt.steps {
				c.ns.Store(start + int64(st.at))
				data, renewed, err := unpackLoad(s.Load(bg, "k", st.loadTTL))
				if !st.found {
					if !errors.Is(err, sessionstore.ErrNotFound) {
						t.Fatalf("step %d at %v: Load = %q, %v; want sessionstore.ErrNotFound", i, st.at, data, err)
					}
					continue
				}
				if err != nil || data != `{"a":1}` {
					t.Fatalf("step %d at %v: Load = %q, %v", i, st.at, data, err)
				}
				if renewed != st.renewed {
					t.Errorf("step %d at %v: renewed = %v, want %v", i, st.at, renewed, st.renewed)
				}
				e, _ := entryOf(s, "k")
				if got := time.Duration(e.expires - start); got != st.wantExpires {
					t.Errorf("step %d at %v: expires at %v, want %v", i, st.at, got, st.wantExpires)
				}
			}
			checkInvariants(t, s)
		})
	}
}

func TestMemDeleteExpired(t *testing.T) {
	s, c := newTestStore(t, 0)
	mustPatch(t, s, "a", time.Minute, `{"x":1}`)
	c.advance(time.Hour)
	if err := s.Delete(bg, "a"); err != nil {
		t.Fatal(err)
	}
	wantLen(t, s, 0)
	if n := s.sweep(); n != 0 {
		t.Errorf("sweep after delete dropped %d", n)
	}
	checkInvariants(t, s)
}

func TestMemRename(t *testing.T) {
	const ttl = 10 * time.Minute
	s0, _ := newTestStore(t, 0)
	same := keysInShards(s0, "same", 2, true)
	diff := keysInShards(s0, "diff", 2, false)
	tests := []struct {
		name       string
		oldKey     string
		newKey     string
		newTTL     time.Duration
		occupyNew  bool // newKey holds another entry before the rename
		createOld  bool
		expireOld  bool
		wantErr    error
		wantLen    int
		wantNewTTL time.Duration // checked when the rename succeeds
	}{
		{"moves", "old", "new", ttl, false, true, false, nil, 1, ttl},
		{"same shard", same[0], same[1], ttl, false, true, false, nil, 1, ttl},
		{"different shards", diff[0], diff[1], ttl, false, true, false, nil, 1, ttl},
		{"different shards reversed", diff[1], diff[0], ttl, false, true, false, nil, 1, ttl},
		{"new ttl", "old", "new", time.Hour, false, true, false, nil, 1, time.Hour},
		{"to permanent", "old", "new", 0, false, true, false, nil, 1, 0},
		{"over an existing key", "old", "new", ttl, true, true, false, nil, 1, ttl},
		{"over an existing key same shard", same[0], same[1], ttl, true, true, false, nil, 1, ttl},
		{"onto itself", "old", "old", ttl, false, true, false, nil, 1, ttl},
		{"missing old", "old", "new", ttl, false, false, false, sessionstore.ErrNotFound, 0, 0},
		{"missing old, new exists", "old", "new", ttl, true, false, false, sessionstore.ErrNotFound, 1, 0},
		{"expired old", "old", "new", ttl, false, true, true, sessionstore.ErrNotFound, 0, 0},
		{"expired old, new exists", "old", "new", ttl, true, true, true, sessionstore.ErrNotFound, 1, 0},
		{"expired onto itself", "old", "old", ttl, false, true, true, sessionstore.ErrNotFound, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestStore(t, 0)
			// keysInShards used s0's seed: give s the same one.
			s.seed = s0.seed
			if tt.createOld {
				mustPatch(t, s, tt.oldKey, 5*time.Minute, `{"v":"old"}`)
			}
			if tt.occupyNew {
				mustPatch(t, s, tt.newKey, time.Hour, `{"v":"new"}`)
			}
			elapsed := 3 * time.Minute
			if tt.expireOld {
				elapsed = 5 * time.Minute
			}
			c.advance(elapsed)
			renameAt := c.now()

			err := s.Rename(bg, tt.oldKey, tt.newKey, tt.newTTL)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Rename = %v, want %v", err, tt.wantErr)
			}
			wantLen(t, s, tt.wantLen)
			checkInvariants(t, s)
			if tt.wantErr != nil {
				if tt.oldKey != tt.newKey {
					if _, ok := entryOf(s, tt.oldKey); ok && tt.expireOld {
						t.Errorf("expired old key still held")
					}
				}
				if tt.occupyNew {
					wantFound(t, s, tt.newKey, `{"v":"new"}`)
				} else {
					wantGone(t, s, tt.newKey)
				}
				return
			}
			if tt.oldKey != tt.newKey {
				wantGone(t, s, tt.oldKey)
			}
			wantFound(t, s, tt.newKey, `{"v":"old"}`)
			e, ok := entryOf(s, tt.newKey)
			if !ok {
				t.Fatal("new key not held")
			}
			if e.key != tt.newKey {
				t.Errorf("entry key = %q, want %q", e.key, tt.newKey)
			}
			if e.renewed != renameAt {
				t.Errorf("renewed = %d, want the rename time %d", e.renewed, renameAt)
			}
			wantExpires := int64(math.MaxInt64)
			if tt.wantNewTTL > 0 {
				wantExpires = renameAt + int64(tt.wantNewTTL)
			}
			if e.expires != wantExpires {
				t.Errorf("expires = %d, want %d", e.expires, wantExpires)
			}
			// The fresh lifetime outlives the old one.
			if tt.wantNewTTL > 0 {
				c.ns.Store(wantExpires - 1)
				wantFound(t, s, tt.newKey, `{"v":"old"}`)
				c.ns.Store(wantExpires)
				wantGone(t, s, tt.newKey)
			}
		})
	}
}

func TestMemSweep(t *testing.T) {
	s, c := newTestStore(t, 0)
	ttls := map[string]time.Duration{
		"m1": time.Minute, "m1b": time.Minute, "m2": 2 * time.Minute,
		"m3": 3 * time.Minute, "m10": 10 * time.Minute, "perm": 0, "perm2": 0,
	}
	for k, ttl := range ttls {
		mustPatch(t, s, k, ttl, `{"k":1}`)
	}
	wantLen(t, s, len(ttls))
	if n := s.sweep(); n != 0 {
		t.Errorf("sweep before anything expired dropped %d", n)
	}

	c.advance(2 * time.Minute) // m1, m1b and m2 expire
	// Time alone frees nothing: Len still counts the expired entries.
	wantLen(t, s, len(ttls))
	if n := s.sweep(); n != 3 {
		t.Errorf("sweep dropped %d, want 3", n)
	}
	wantLen(t, s, len(ttls)-3)
	for k := range ttls {
		_, held := entryOf(s, k)
		if wantHeld := k != "m1" && k != "m1b" && k != "m2"; held != wantHeld {
			t.Errorf("%q held = %v, want %v", k, held, wantHeld)
		}
	}
	checkInvariants(t, s)

	if n := s.sweep(); n != 0 {
		t.Errorf("second sweep dropped %d", n)
	}
	c.advance(1000 * time.Hour)
	if n := s.sweep(); n != 2 {
		t.Errorf("last sweep dropped %d, want 2", n)
	}
	wantLen(t, s, 2)
	wantFound(t, s, "perm", `{"k":1}`)
	wantFound(t, s, "perm2", `{"k":1}`)
	checkInvariants(t, s)
}

func TestMemSweepManyInOneShard(t *testing.T) {
	// More expired entries in one shard than one batch removes.
	s, c := newTestStore(t, 0)
	keys := keysInShards(s, "k", 2*sweepBatch+100, true)
	for i, k := range keys {
		ttl := time.Minute
		if i%10 == 0 {
			ttl = time.Hour
		}
		mustPatch(t, s, k, ttl, `{"a":1}`)
	}
	wantKept := (len(keys) + 9) / 10
	c.advance(time.Minute)
	if n := s.sweep(); n != len(keys)-wantKept {
		t.Errorf("sweep dropped %d, want %d", n, len(keys)-wantKept)
	}
	wantLen(t, s, wantKept)
	checkInvariants(t, s)
}

func TestMemBackgroundSweeper(t *testing.T) {
	// Real time: a short sweep interval and ttl, nothing reads the entries.
	s := newMemStore(0, 10*time.Millisecond, nil)
	t.Cleanup(func() { s.Destruct() })
	for i := 0; i < 20; i++ {
		mustPatch(t, s, fmt.Sprintf("short%d", i), 30*time.Millisecond, `{"a":1}`)
	}
	mustPatch(t, s, "perm", 0, `{"a":1}`)
	mustPatch(t, s, "long", time.Hour, `{"a":1}`)

	deadline := time.Now().Add(10 * time.Second)
	for s.Len() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("Len() = %d after 10s, want 2: the sweeper did not run", s.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantFound(t, s, "perm", `{"a":1}`)
	wantFound(t, s, "long", `{"a":1}`)
}

func TestMemDestructStopsSweeper(t *testing.T) {
	s := newMemStore(0, time.Millisecond, nil)
	if err := s.Destruct(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.sweepDone:
	default:
		t.Fatal("sweeper still running after Destruct")
	}
}

func TestMemCapEvictsNearestExpiry(t *testing.T) {
	s, c := newTestStore(t, 3)
	mustPatch(t, s, "a", 30*time.Minute, `{"k":"a"}`)
	mustPatch(t, s, "b", 10*time.Minute, `{"k":"b"}`)
	mustPatch(t, s, "c", 20*time.Minute, `{"k":"c"}`)
	c.advance(time.Second)
	mustPatch(t, s, "d", 40*time.Minute, `{"k":"d"}`)
	wantLen(t, s, 3)
	wantGone(t, s, "b")
	for _, k := range []string{"a", "c", "d"} {
		wantFound(t, s, k, `{"k":"`+k+`"}`)
	}

	// Patching an existing key or renaming does not evict.
	mustPatch(t, s, "a", 30*time.Minute, `{"x":1}`)
	if err := s.Rename(bg, "c", "c2", 20*time.Minute); err != nil {
		t.Fatal(err)
	}
	wantLen(t, s, 3)
	for _, k := range []string{"a", "c2", "d"} {
		if _, ok := entryOf(s, k); !ok {
			t.Errorf("%q evicted by a patch or rename", k)
		}
	}

	// A renewal moves an entry away from eviction: c2 (expiring at 20m)
	// is next, unless renewed to beyond the others. Renewal with a ttl of
	// an hour is due 6m after the rename.
	c.advance(6 * time.Minute)
	if _, renewed, err := unpackLoad(s.Load(bg, "c2", time.Hour)); err != nil || !renewed {
		t.Fatalf("Load = %v, %v", renewed, err)
	}
	mustPatch(t, s, "e", 50*time.Minute, `{"k":"e"}`)
	wantLen(t, s, 3)
	if _, ok := entryOf(s, "a"); ok {
		t.Errorf("a (expiring at 30m) not evicted")
	}
	for _, k := range []string{"c2", "d", "e"} {
		if _, ok := entryOf(s, k); !ok {
			t.Errorf("%q evicted", k)
		}
	}
	checkInvariants(t, s)
}

func TestMemCapEvictsExpiredFirst(t *testing.T) {
	s, c := newTestStore(t, 2)
	mustPatch(t, s, "perm", 0, `{"a":1}`)
	mustPatch(t, s, "exp", time.Minute, `{"a":1}`)
	c.advance(time.Hour) // exp has expired, unswept
	mustPatch(t, s, "new", time.Minute, `{"a":1}`)
	wantLen(t, s, 2)
	if _, ok := entryOf(s, "exp"); ok {
		t.Error("expired entry not evicted first")
	}
	wantFound(t, s, "perm", `{"a":1}`)
	wantFound(t, s, "new", `{"a":1}`)
}

func TestMemCapPermanentEntries(t *testing.T) {
	s, c := newTestStore(t, 3)
	step := func() { c.advance(time.Second) }
	mustPatch(t, s, "p1", 0, `{"a":1}`)
	step()
	mustPatch(t, s, "e1", time.Hour, `{"a":1}`)
	step()
	mustPatch(t, s, "p2", 0, `{"a":1}`)
	step()
	// e2 outlives the wait for p1's renewal below.
	mustPatch(t, s, "e2", 100*24*time.Hour, `{"a":1}`) // evicts e1: expiring before permanent
	held := func(want ...string) {
		t.Helper()
		wantLen(t, s, len(want))
		for _, k := range want {
			if _, ok := entryOf(s, k); !ok {
				t.Errorf("%q was evicted", k)
			}
		}
	}
	held("p1", "p2", "e2")

	c.advance(sessionstore.PermanentRenewInterval)                                  // p1's renewal is due
	if _, renewed, err := unpackLoad(s.Load(bg, "p1", 0)); err != nil || !renewed { // p1 now renewed after p2
		t.Fatalf("Load(p1) = %v, %v", renewed, err)
	}
	step()
	mustPatch(t, s, "p3", 0, `{"a":1}`) // evicts e2, the only expiring one
	held("p1", "p2", "p3")

	step()
	mustPatch(t, s, "p4", 0, `{"a":1}`) // evicts p2: least recently renewed
	held("p1", "p3", "p4")

	step()
	mustPatch(t, s, "p5", 0, `{"a":1}`) // evicts p1, renewed before p3 was created
	held("p3", "p4", "p5")

	step()
	mustPatch(t, s, "p3", 0, `{"b":1}`) // a patch renews p3
	step()
	mustPatch(t, s, "p6", 0, `{"a":1}`) // evicts p4
	held("p3", "p5", "p6")
	checkInvariants(t, s)
}

func TestMemSetMaxSessions(t *testing.T) {
	s, c := newTestStore(t, 10)
	for i := 0; i < 6; i++ {
		mustPatch(t, s, fmt.Sprintf("k%d", i), time.Duration(i+1)*time.Minute, `{"a":1}`)
	}
	s.setMaxSessions(3)
	wantLen(t, s, 6) // lowering the cap evicts nothing by itself
	c.advance(time.Second)
	mustPatch(t, s, "k6", time.Hour, `{"a":1}`)
	wantLen(t, s, 3)
	for i := 0; i <= 6; i++ {
		k := fmt.Sprintf("k%d", i)
		_, ok := entryOf(s, k)
		if want := i >= 4; ok != want {
			t.Errorf("%s held = %v, want %v", k, ok, want)
		}
	}
	checkInvariants(t, s)

	for _, n := range []int{0, -5} {
		s.setMaxSessions(n)
		if got := s.maxSessions.Load(); got != DefaultMaxSessions {
			t.Errorf("setMaxSessions(%d): max = %d, want default %d", n, got, DefaultMaxSessions)
		}
	}
	if s2, _ := newTestStore(t, 0); s2.maxSessions.Load() != DefaultMaxSessions {
		t.Errorf("newMemStore(0): max = %d, want default", s2.maxSessions.Load())
	}
}

func TestMemEvictionLog(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s, c := newTestStoreLogger(t, 2, zap.New(core))
	insert := func(k string) {
		t.Helper()
		c.advance(time.Millisecond)
		mustPatch(t, s, k, time.Hour, `{"a":1}`)
	}
	insert("a")
	insert("b")
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d log lines before any eviction", n)
	}
	insert("c")
	entries := logs.TakeAll()
	if len(entries) != 1 {
		t.Fatalf("%d log lines after the first eviction, want 1", len(entries))
	}
	if got := entries[0].ContextMap()["evicted"]; got != int64(1) {
		t.Errorf("evicted = %v, want 1", got)
	}
	if got := entries[0].ContextMap()["max_sessions"]; got != int64(2) {
		t.Errorf("max_sessions = %v, want 2", got)
	}
	// Within the interval, evictions are counted, not logged.
	insert("d")
	insert("e")
	if n := logs.Len(); n != 0 {
		t.Errorf("%d log lines within the interval, want 0", n)
	}
	c.advance(evictionLogInterval)
	insert("f")
	entries = logs.TakeAll()
	if len(entries) != 1 {
		t.Fatalf("%d log lines after the interval, want 1", len(entries))
	}
	if got := entries[0].ContextMap()["evicted"]; got != int64(3) {
		t.Errorf("evicted = %v, want 3 (two held back and this one)", got)
	}
}

// TestMemConcurrentLoadsRenewOnce has many loads find one entry due for
// renewal at the same instant: exactly one of them renews it. The test
// holds the shard's lock while the loads start, so that they all pass the
// read-locked check together and race for the write lock.
func TestMemConcurrentLoadsRenewOnce(t *testing.T) {
	s, c := newTestStore(t, 0)
	mustPatch(t, s, "k", time.Hour, `{"a":1}`)
	sh := s.shardOf(s.hash("k"))
	const loaders = 32
	for round := 0; round < 5; round++ {
		c.advance(sessionstore.RenewInterval(time.Hour)) // due; the clock stays put during the round
		var renewals atomic.Int32
		var started, wg sync.WaitGroup
		sh.mu.Lock()
		for i := 0; i < loaders; i++ {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				data, renewed, err := unpackLoad(s.Load(bg, "k", time.Hour))
				if err != nil || data != `{"a":1}` {
					t.Errorf("Load = %q, %v", data, err)
				}
				if renewed {
					renewals.Add(1)
				}
			}()
		}
		started.Wait()
		time.Sleep(5 * time.Millisecond) // let the loads block on the lock
		sh.mu.Unlock()
		waitOrFail(t, &wg, 30*time.Second)
		if n := renewals.Load(); n != 1 {
			t.Fatalf("round %d: %d loads reported a renewal, want exactly 1", round, n)
		}
		e, _ := entryOf(s, "k")
		if want := c.now() + int64(time.Hour); e.expires != want {
			t.Errorf("round %d: expires %d, want %d", round, e.expires, want)
		}
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, timeout time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("goroutines did not finish within %v: deadlock?", timeout)
	}
}

func TestMemConcurrentMixed(t *testing.T) {
	for _, maxSessions := range []int{0, 20} {
		t.Run(fmt.Sprintf("max%d", maxSessions), func(t *testing.T) {
			s, c := newTestStore(t, maxSessions)
			const workers, ops, nkeys = 16, 1500, 64
			keys := make([]string, nkeys)
			for i := range keys {
				keys[i] = fmt.Sprintf("key%d", i)
			}
			ttls := []time.Duration{0, time.Second, 10 * time.Second, time.Minute}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					r := rand.New(rand.NewSource(int64(w)))
					<-start
					for i := 0; i < ops; i++ {
						k := keys[r.Intn(nkeys)]
						ttl := ttls[r.Intn(len(ttls))]
						switch op := r.Intn(100); {
						case op < 35:
							data, _, err := unpackLoad(s.Load(bg, k, ttl))
							if err == nil {
								checkCanonical(t, data)
							} else if !errors.Is(err, sessionstore.ErrNotFound) {
								t.Errorf("Load: %v", err)
							}
						case op < 65:
							p := fmt.Sprintf(`{"w%d":%d,"x":{"i":%d}}`, w, i, i)
							if r.Intn(5) == 0 {
								p = `{"x":null}`
							}
							data, err := s.Patch(bg, k, []string{p}, sessionstore.PatchOptions{TTL: ttl, Create: r.Intn(4) != 0})
							if err == nil {
								checkCanonical(t, data)
							} else if !errors.Is(err, sessionstore.ErrNotFound) {
								t.Errorf("Patch: %v", err)
							}
						case op < 75:
							if err := s.Delete(bg, k); err != nil {
								t.Errorf("Delete: %v", err)
							}
						case op < 90:
							to := keys[r.Intn(nkeys)]
							if err := s.Rename(bg, k, to, ttl); err != nil && !errors.Is(err, sessionstore.ErrNotFound) {
								t.Errorf("Rename: %v", err)
							}
						case op < 93:
							s.sweep()
						case op < 95 && maxSessions > 0:
							s.setMaxSessions(10 + r.Intn(20))
						default:
							c.advance(time.Duration(r.Intn(2000)) * time.Millisecond)
						}
					}
				}(w)
			}
			close(start)
			waitOrFail(t, &wg, 60*time.Second)
			checkInvariants(t, s)
			if n := s.Len(); n < 0 || n > nkeys {
				t.Errorf("Len() = %d, out of [0, %d]", n, nkeys)
			}
			// The store still works.
			mustPatch(t, s, "after", time.Hour, `{"ok":true}`)
			wantFound(t, s, "after", `{"ok":true}`)
			checkInvariants(t, s)
		})
	}
}

// checkCanonical fails when data is not canonical session data. It is
// safe to call from any goroutine.
func checkCanonical(t *testing.T, data string) {
	if c, err := mergepatch.Canonicalize(data); err != nil || c != data {
		t.Errorf("store returned non-canonical data %q (%v)", data, err)
	}
}

// model is a reference implementation of the sessionstore.Store contract, without a
// cap, for TestMemRandomAgainstModel.
type model struct {
	entries map[string]*modelEntry
}

type modelEntry struct {
	data             string
	expires, renewed int64
}

func (m *model) renew(e *modelEntry, now int64, ttl time.Duration) {
	e.renewed = now
	e.expires = math.MaxInt64
	if ttl > 0 {
		e.expires = now + int64(ttl)
	}
}

func (m *model) load(now int64, key string, ttl time.Duration) (string, bool, error) {
	e, ok := m.entries[key]
	if !ok || e.expires <= now {
		return "", false, sessionstore.ErrNotFound
	}
	// The model's entries have no own expiry: the ttl is their lifetime.
	if now-e.renewed >= int64(sessionstore.RenewInterval(ttl)) {
		m.renew(e, now, ttl)
		return e.data, true, nil
	}
	return e.data, false, nil
}

func (m *model) patch(now int64, key, p string, ttl time.Duration, create bool) (string, error) {
	e, ok := m.entries[key]
	if ok && e.expires <= now {
		delete(m.entries, key)
		ok = false
	}
	if !ok && !create {
		return "", sessionstore.ErrNotFound
	}
	cur := ""
	if ok {
		cur = e.data
	}
	data, err := mergepatch.Apply(cur, []string{p})
	if err != nil {
		return "", err
	}
	if data == mergepatch.EmptyData {
		delete(m.entries, key)
		return data, nil
	}
	if !ok {
		e = &modelEntry{}
		m.entries[key] = e
	}
	e.data = data
	m.renew(e, now, ttl)
	return data, nil
}

func (m *model) rename(now int64, oldKey, newKey string, ttl time.Duration) error {
	e, ok := m.entries[oldKey]
	if !ok {
		return sessionstore.ErrNotFound
	}
	delete(m.entries, oldKey)
	if e.expires <= now {
		return sessionstore.ErrNotFound
	}
	m.renew(e, now, ttl)
	m.entries[newKey] = e
	return nil
}

func (m *model) sweep(now int64) int {
	n := 0
	for k, e := range m.entries {
		if e.expires <= now {
			delete(m.entries, k)
			n++
		}
	}
	return n
}

// TestMemRandomAgainstModel runs random single-threaded operations on the
// store and on a reference model of the contract, and compares every result
// and the heap invariants after each operation.
func TestMemRandomAgainstModel(t *testing.T) {
	for _, layout := range []struct {
		name      string
		collide   bool // keys' hashes collide, a few per shard
		compactly bool // shards compact at a few bytes and slots
	}{
		{"default", false, false},
		{"collisions", true, false},
		{"compacting", false, true},
		{"both", true, true},
	} {
		for seed := int64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%s/%d", layout.name, seed), func(t *testing.T) {
				s, c := newTestStore(t, 0)
				if layout.collide {
					s.hashMask = 0x3f // two hash values a shard
				}
				if layout.compactly {
					setShardLimits(s, shardLimits{compactMinArena: 32, compactMinSlots: 2, maxArena: maxArena})
				}
				testMemRandomAgainstModel(t, s, c, seed)
			})
		}
	}
}

// setShardLimits replaces every shard's limits; the store must be new.
func setShardLimits(s *memStore, l shardLimits) {
	for i := range s.shards {
		s.shards[i].limits = l
	}
}

func testMemRandomAgainstModel(t *testing.T, s *memStore, c *fakeClock, seed int64) {
	{
		{
			m := &model{entries: map[string]*modelEntry{}}
			r := rand.New(rand.NewSource(seed))
			ttls := []time.Duration{0, time.Second, 5 * time.Second, time.Minute}
			patches := []string{`{"a":1}`, `{"b":{"c":2}}`, `{"a":null}`, `{"b":{"c":null}}`, `{"b":null}`, `{}`, `{"a":"é"}`,
				`{"s":"a longer value, for data that outgrows its place"}`, `{"s":null}`}
			key := func() string { return fmt.Sprintf("k%d", r.Intn(40)) }
			for i := 0; i < 4000; i++ {
				now := c.now()
				var desc string
				switch op := r.Intn(100); {
				case op < 30:
					k, ttl := key(), ttls[r.Intn(len(ttls))]
					desc = fmt.Sprintf("Load(%s, %v)", k, ttl)
					d1, r1, e1 := unpackLoad(s.Load(bg, k, ttl))
					d2, r2, e2 := m.load(now, k, ttl)
					if d1 != d2 || r1 != r2 || !errors.Is(e1, e2) {
						t.Fatalf("op %d %s = %q, %v, %v; model %q, %v, %v", i, desc, d1, r1, e1, d2, r2, e2)
					}
				case op < 65:
					k, p, ttl, create := key(), patches[r.Intn(len(patches))], ttls[r.Intn(len(ttls))], r.Intn(3) != 0
					desc = fmt.Sprintf("Patch(%s, %s, %v, %v)", k, p, ttl, create)
					d1, e1 := s.Patch(bg, k, []string{p}, sessionstore.PatchOptions{TTL: ttl, Create: create})
					d2, e2 := m.patch(now, k, p, ttl, create)
					if d1 != d2 || !errors.Is(e1, e2) {
						t.Fatalf("op %d %s = %q, %v; model %q, %v", i, desc, d1, e1, d2, e2)
					}
				case op < 75:
					k := key()
					desc = fmt.Sprintf("Delete(%s)", k)
					if err := s.Delete(bg, k); err != nil {
						t.Fatalf("op %d %s: %v", i, desc, err)
					}
					delete(m.entries, k)
				case op < 88:
					from, to, ttl := key(), key(), ttls[r.Intn(len(ttls))]
					desc = fmt.Sprintf("Rename(%s, %s, %v)", from, to, ttl)
					e1 := s.Rename(bg, from, to, ttl)
					e2 := m.rename(now, from, to, ttl)
					if !errors.Is(e1, e2) {
						t.Fatalf("op %d %s = %v; model %v", i, desc, e1, e2)
					}
				case op < 93:
					desc = "sweep"
					if n1, n2 := s.sweep(), m.sweep(now); n1 != n2 {
						t.Fatalf("op %d sweep dropped %d; model %d", i, n1, n2)
					}
				default:
					d := time.Duration(r.Intn(3000)) * time.Millisecond
					desc = fmt.Sprintf("advance %v", d)
					c.advance(d)
				}
				if s.Len() != len(m.entries) {
					t.Fatalf("op %d %s: Len() = %d; model %d", i, desc, s.Len(), len(m.entries))
				}
				for k, me := range m.entries {
					e, ok := entryOf(s, k)
					if !ok || e.data != me.data || e.expires != me.expires || e.renewed != me.renewed {
						t.Fatalf("op %d %s: entry %s = %+v, %v; model %+v", i, desc, k, e, ok, *me)
					}
				}
				checkInvariants(t, s)
				if t.Failed() {
					t.Fatalf("op %d %s broke the invariants", i, desc)
				}
			}
		}
	}
}

// TestMemRandomHeapWithCap runs random operations on a small capped store
// and checks the heap invariants and the cap after each one.
func TestMemRandomHeapWithCap(t *testing.T) {
	const maxSessions = 25
	s, c := newTestStore(t, maxSessions)
	r := rand.New(rand.NewSource(42))
	ttls := []time.Duration{0, time.Second, 5 * time.Second, time.Minute, time.Hour}
	evictedSome := false
	for i := 0; i < 5000; i++ {
		k := fmt.Sprintf("k%d", r.Intn(80))
		ttl := ttls[r.Intn(len(ttls))]
		before := s.Len()
		_, existed := entryOf(s, k)
		var desc string
		switch op := r.Intn(100); {
		case op < 25:
			desc = "Load"
			unpackLoad(s.Load(bg, k, ttl))
		case op < 70:
			desc = "Patch"
			if _, err := s.Patch(bg, k, []string{fmt.Sprintf(`{"i":%d}`, i)}, sessionstore.PatchOptions{TTL: ttl, Create: true}); err != nil {
				t.Fatal(err)
			}
			if !existed && before == maxSessions {
				// A new entry in a full store: one was evicted.
				if n := s.Len(); n != maxSessions {
					t.Fatalf("op %d: inserting into a full store left Len() = %d", i, n)
				}
				evictedSome = true
			}
		case op < 78:
			desc = "Delete"
			s.Delete(bg, k)
		case op < 90:
			desc = "Rename"
			s.Rename(bg, k, fmt.Sprintf("k%d", r.Intn(80)), ttl)
		case op < 95:
			desc = "sweep"
			s.sweep()
		default:
			desc = "advance"
			c.advance(time.Duration(r.Intn(2000)) * time.Millisecond)
		}
		if n := s.Len(); n > maxSessions {
			t.Fatalf("op %d %s: Len() = %d over the cap %d", i, desc, n, maxSessions)
		}
		checkInvariants(t, s)
		if t.Failed() {
			t.Fatalf("op %d %s broke the invariants", i, desc)
		}
	}
	if !evictedSome {
		t.Error("the run never evicted: the test does not exercise the cap")
	}
}

// TestMemShardFullLosesNothing fills a store whose shards can hold only a
// few bytes: a write or rename that does not fit fails and changes
// nothing, and a compaction makes room where garbage was.
func TestMemShardFullLosesNothing(t *testing.T) {
	s, _ := newTestStore(t, 0)
	// Room for "k" and two copies of {"a":"xx"}: enough to compact once.
	setShardLimits(s, shardLimits{compactMinArena: maxArena, compactMinSlots: maxArena, maxArena: 1 + 2*len(`{"a":"xx"}`)})
	mustPatch(t, s, "k", time.Hour, `{"a":"x"}`)

	if _, err := s.Patch(bg, "k", []string{`{"b":"a value too long for the shard"}`}, sessionstore.PatchOptions{TTL: time.Hour}); !errors.Is(err, errShardFull) {
		t.Fatalf("Patch past the shard's room: %v, want errShardFull", err)
	}
	if got := peek(t, s, "k"); got != `{"a":"x"}` {
		t.Fatalf("after the refused Patch, k = %s, want it as it was", got)
	}
	if err := s.Rename(bg, "k", "a key too long for the shard to take", time.Hour); !errors.Is(err, errShardFull) {
		t.Fatalf("Rename past the shard's room: %v, want errShardFull", err)
	}
	if got := peek(t, s, "k"); got != `{"a":"x"}` {
		t.Fatalf("after the refused Rename, k = %s, want it as it was", got)
	}
	// Longer data goes to the end of the arena; the next change needs the
	// garbage back, which makeRoom compacts for.
	for _, p := range []string{`{"a":"xx"}`, `{"a":"yy"}`, `{"a":"zz"}`} {
		if got := mustPatch(t, s, "k", time.Hour, p); got != p {
			t.Fatalf("Patch(%s) = %s", p, got)
		}
	}
	if got := peek(t, s, "k"); got != `{"a":"zz"}` {
		t.Fatalf("k = %s, want {\"a\":\"zz\"}", got)
	}
	checkInvariants(t, s)

	// A shard with no room left still takes a change that shrinks a
	// session: it is written in place.
	full, _ := newTestStore(t, 0)
	setShardLimits(full, shardLimits{compactMinArena: maxArena, compactMinSlots: maxArena, maxArena: 1 + len(`{"a":"x"}`)})
	mustPatch(t, full, "k", time.Hour, `{"a":"x"}`)
	if got := mustPatch(t, full, "k", time.Hour, `{"a":null,"b":1}`); got != `{"b":1}` {
		t.Fatalf("shrinking Patch in a full shard = %s", got)
	}
	checkInvariants(t, full)
}

// TestMemShrinksAfterMassRemoval: once most sessions are gone, the shards
// compact, so the store's memory follows its sessions down to a floor of
// compactMinSlots slots and compactMinArena bytes a shard.
func TestMemShrinksAfterMassRemoval(t *testing.T) {
	s, c := newTestStore(t, 0)
	const n, kept = 100_000, 100
	data := `{"user":"` + strings.Repeat("x", 200) + `"}`
	for i := 0; i < n; i++ {
		ttl := time.Minute
		if i < kept {
			ttl = time.Hour
		}
		mustPatch(t, s, fmt.Sprintf("session:%08d", i), ttl, data)
	}
	size := func() (slots, arena int) {
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.RLock()
			slots += cap(sh.slots)
			arena += cap(sh.arena)
			sh.mu.RUnlock()
		}
		return
	}
	slotsFull, arenaFull := size()
	c.advance(2 * time.Minute)
	if got := s.sweep(); got != n-kept {
		t.Fatalf("sweep dropped %d, want %d", got, n-kept)
	}
	slots, arena := size()
	maxSlots, maxArena := memShardCount*compactMinSlots*5/4, memShardCount*compactMinArena*5/4
	if slots > maxSlots || arena > maxArena {
		t.Errorf("after all but %d of %d sessions expired: %d slots (of %d; want at most %d), %d arena bytes (of %d; want at most %d)",
			kept, n, slots, slotsFull, maxSlots, arena, arenaFull, maxArena)
	}
	for i := 0; i < kept; i++ {
		if got := peek(t, s, fmt.Sprintf("session:%08d", i)); got != data {
			t.Fatalf("kept session %d = %q", i, got)
		}
	}
	checkInvariants(t, s)
}

func TestExpiryHeapOrder(t *testing.T) {
	// Insert in random order, take the top and remove it: entries come
	// out by expiry, then by last renewal.
	r := rand.New(rand.NewSource(7))
	sh := newMemShard()
	type times struct{ expires, renewed int64 }
	all := map[uint32]bool{}
	for i := 0; i < 300; i++ {
		e := memEntry{expires: int64(r.Intn(20)), renewed: int64(r.Intn(20))}
		if r.Intn(5) == 0 {
			e.expires = math.MaxInt64
		}
		all[sh.insert(uint64(i), fmt.Sprint(i), "{}", e)] = true
	}
	slots := func() []uint32 {
		var l []uint32
		for slot := range all {
			l = append(l, slot)
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return l
	}
	// Change some in place and fix them.
	for i := 0; i < 50; i++ {
		l := slots()
		e := &sh.slots[l[r.Intn(len(l))]]
		e.expires = int64(r.Intn(30))
		sh.fix(e.pos)
	}
	// Remove some from the middle (300 slots are too few to compact).
	for i := 0; i < 50; i++ {
		l := slots()
		slot := l[r.Intn(len(l))]
		delete(all, slot)
		sh.remove(slot)
	}
	var want []times
	for _, slot := range slots() {
		want = append(want, times{sh.slots[slot].expires, sh.slots[slot].renewed})
	}
	sort.Slice(want, func(i, j int) bool {
		if want[i].expires != want[j].expires {
			return want[i].expires < want[j].expires
		}
		return want[i].renewed < want[j].renewed
	})
	for i, w := range want {
		top, ok := sh.top()
		if !ok {
			t.Fatalf("heap empty after %d of %d", i, len(want))
		}
		if got := (times{sh.slots[top].expires, sh.slots[top].renewed}); got != w {
			t.Fatalf("pop %d = %v, want %v", i, got, w)
		}
		sh.remove(top)
	}
	if _, ok := sh.top(); ok || len(sh.heap) != 0 {
		t.Errorf("heap not empty: %d left", len(sh.heap))
	}
}

func TestMemKeysAreOpaque(t *testing.T) {
	s, _ := newTestStore(t, 0)
	keys := []string{"", " ", "a:b", "é", strings.Repeat("x", 10000), "\x00"}
	for i, k := range keys {
		mustPatch(t, s, k, time.Hour, fmt.Sprintf(`{"i":%d}`, i))
	}
	for i, k := range keys {
		wantFound(t, s, k, fmt.Sprintf(`{"i":%d}`, i))
	}
	wantLen(t, s, len(keys))
	checkInvariants(t, s)
}

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

func TestMemoryStoreUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    MemoryStore
		wantErr string // substring; empty for success
	}{
		{"bare", `memory`, MemoryStore{}, ""},
		{"empty block", "memory {\n}", MemoryStore{}, ""},
		{"both options", "memory {\n\tname x\n\tmax_sessions 10\n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"options one line", "memory {\n name x \n max_sessions 10 \n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"name only", "memory {\n\tname shared\n}", MemoryStore{Name: "shared"}, ""},
		{"max_sessions only", "memory {\n\tmax_sessions 1\n}", MemoryStore{MaxSessions: 1}, ""},
		{"quoted name", "memory {\n\tname \"a b\"\n}", MemoryStore{Name: "a b"}, ""},
		{"unknown option", "memory {\n\tfoo 1\n}", MemoryStore{}, `unknown option "foo"`},
		{"max_sessions zero", "memory {\n\tmax_sessions 0\n}", MemoryStore{}, `max_sessions must be a positive integer, got "0"`},
		{"max_sessions negative", "memory {\n\tmax_sessions -1\n}", MemoryStore{}, `max_sessions must be a positive integer, got "-1"`},
		{"max_sessions not a number", "memory {\n\tmax_sessions abc\n}", MemoryStore{}, `max_sessions must be a positive integer, got "abc"`},
		{"max_sessions fraction", "memory {\n\tmax_sessions 1.5\n}", MemoryStore{}, `max_sessions must be a positive integer`},
		{"max_sessions overflow", "memory {\n\tmax_sessions 99999999999999999999\n}", MemoryStore{}, `max_sessions must be a positive integer`},
		{"max_sessions missing value", "memory {\n\tmax_sessions\n}", MemoryStore{}, `max_sessions needs a value`},
		{"name missing value", "memory {\n\tname\n}", MemoryStore{}, `name needs a value`},
		{"name twice", "memory {\n\tname a\n\tname b\n}", MemoryStore{}, `option "name" given twice`},
		{"max_sessions twice", "memory {\n\tmax_sessions 1\n\tmax_sessions 2\n}", MemoryStore{}, `option "max_sessions" given twice`},
		{"name extra argument", "memory {\n\tname a b\n}", MemoryStore{}, `name: unexpected extra argument "b"`},
		{"max_sessions extra argument", "memory {\n\tmax_sessions 10 20\n}", MemoryStore{}, `max_sessions: unexpected extra argument "20"`},
		{"persist", "memory {\n\tpersist /var/lib/caddy/s.jsonl\n\tpersist_interval 30s\n}", MemoryStore{Persist: "/var/lib/caddy/s.jsonl", PersistInterval: caddy.Duration(30 * time.Second)}, ""},
		{"persist no file", "memory {\n\tpersist\n}", MemoryStore{}, "persist needs a file"},
		{"persist_interval too short", "memory {\n\tpersist_interval 10ms\n}", MemoryStore{}, `persist_interval must be a duration of 1s or more, got "10ms"`},
		{"persist_interval garbage", "memory {\n\tpersist_interval soon\n}", MemoryStore{}, "persist_interval"},
		{"argument on module line", `memory extra`, MemoryStore{}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m MemoryStore
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want one containing %q; got %+v", tt.wantErr, m)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if m.Name != tt.want.Name || m.MaxSessions != tt.want.MaxSessions {
				t.Errorf("got %+v, want %+v", m, tt.want)
			}
		})
	}
}

// TestMemoryStoreUnmarshalFromStoreLine parses the way the handler does:
// from `store memory { ... }`, the backend's segment onward.
func TestMemoryStoreUnmarshalFromStoreLine(t *testing.T) {
	tests := []struct {
		input   string
		want    MemoryStore
		wantErr string
	}{
		{"store memory", MemoryStore{}, ""},
		{"store memory {\n\tname x\n\tmax_sessions 10\n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"store memory {\n\tmax_sessions 0\n}", MemoryStore{}, "max_sessions"},
		{"store memory {\n\tbogus\n}", MemoryStore{}, `unknown option "bogus"`},
	}
	for _, tt := range tests {
		d := caddyfile.NewTestDispenser(tt.input)
		if !d.Next() || !d.NextArg() || d.Val() != "memory" {
			t.Fatalf("%q: bad test input", tt.input)
		}
		var m MemoryStore
		err := m.UnmarshalCaddyfile(d.NewFromNextSegment())
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.input, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.input, err)
		case m.Name != tt.want.Name || m.MaxSessions != tt.want.MaxSessions:
			t.Errorf("%q: got %+v, want %+v", tt.input, m, tt.want)
		}
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
	if err := m2.Rename(bg, "sess", "sess2", time.Hour); err != nil {
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

// unpackLoad and unpackInspect give tests the data, renewal and lifetime
// of a Load or Inspect result.
func unpackLoad(e sessionstore.Entry, err error) (string, bool, error) { return e.Data, e.Renewed, err }

func unpackInspect(e sessionstore.Entry, ttl time.Duration, err error) (string, time.Duration, error) {
	return e.Data, ttl, err
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
