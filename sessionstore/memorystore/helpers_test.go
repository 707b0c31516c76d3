package memorystore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

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

// newMemStore makes a store without a file and starts its sweeper, which
// runs every sweepInterval until Destruct.
func newMemStore(maxSessions int, sweepInterval time.Duration, logger *zap.Logger) *memStore {
	return newPersistentMemStore(maxSessions, sweepInterval, logger, "", 0)
}

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

// heldEntry is an entry as a shard holds it, with its key, data and
// encoded meta tail.
type heldEntry struct {
	memEntry
	key, data, tail string
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
	return heldEntry{memEntry: sh.slots[i], key: string(sh.key(i)), data: sh.data(i), tail: string(sh.tail(i))}, true
}

// checkInvariants verifies every shard: the heap is in heap order and each
// entry's position is its place in it; each slot is either in the heap or
// free, once; the index finds every entry by its key, and holds nothing
// else; every key is in the shard it hashes to; the arena's garbage is
// what the entries do not use; and the entries but grace records add up to
// Len. The store must be quiescent.
func checkInvariants(t *testing.T, s *memStore) {
	t.Helper()
	total, graceRecords := 0, 0
	want := map[[2]uint64]int{} // (subject hash, key hash): sessions
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
			used += int(e.keyLen) + int(e.tailLen) + int(e.dataLen)
			if e.moved {
				graceRecords++
			}
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
		checkProbation(t, i, sh)
		total += len(sh.heap)
		for _, slot := range sh.heap {
			if subject := sh.subject(slot); len(subject) > 0 && !sh.slots[slot].moved {
				want[[2]uint64{s.hashBytes(subject), sh.slots[slot].hash}]++
			} else if len(subject) > 0 {
				t.Errorf("shard %d: grace record %q has subject %q", i, sh.key(slot), subject)
			}
		}
		sh.mu.RUnlock()
	}
	checkSubjectIndex(t, s, want)
	if total-graceRecords != s.Len() {
		t.Errorf("shards hold %d entries, %d of them grace records; Len() = %d", total, graceRecords, s.Len())
	}
}

// checkProbation verifies a shard's probation queue: each session neither
// seen nor a grace record is in it exactly once, validly (its slot and
// sequence number), and nothing else is valid in it; its valid items are
// in the order they were queued; and its stale items are bounded.
func checkProbation(t *testing.T, i int, sh *memShard) {
	t.Helper()
	if sh.probHead > len(sh.probation) {
		t.Errorf("shard %d: probation head %d past its %d items", i, sh.probHead, len(sh.probation))
		return
	}
	queued := map[uint32]bool{}
	var last probItem
	for _, it := range sh.probation[sh.probHead:] {
		if !sh.probValid(it) {
			continue
		}
		if queued[it.slot] {
			t.Errorf("shard %d: slot %d queued twice", i, it.slot)
		}
		queued[it.slot] = true
		if last.seq != 0 && !seqBefore(last.seq, it.seq) {
			t.Errorf("shard %d: probation item %d queued after %d", i, it.seq, last.seq)
		}
		last = it
	}
	for _, slot := range sh.heap {
		e := &sh.slots[slot]
		if want := !e.moved && !e.isSeen(); want != queued[slot] {
			t.Errorf("shard %d: slot %d (%q, seen %v, moved %v) queued for probation = %v",
				i, slot, sh.key(slot), e.isSeen(), e.moved, queued[slot])
		}
	}
	if n := len(sh.probation) - sh.probHead; n > 2*len(sh.heap)+probSlack+1 {
		t.Errorf("shard %d: %d probation items for %d entries", i, n, len(sh.heap))
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

// checkCanonical fails when data is not canonical session data. It is
// safe to call from any goroutine.
func checkCanonical(t *testing.T, data string) {
	if c, err := mergepatch.Canonicalize(data); err != nil || c != data {
		t.Errorf("store returned non-canonical data %q (%v)", data, err)
	}
}

// setShardLimits replaces every shard's limits; the store must be new.
func setShardLimits(s *memStore, l shardLimits) {
	for i := range s.shards {
		s.shards[i].limits = l
	}
}

// unpackLoad and unpackInspect give tests the data, renewal and lifetime
// of a Load or Inspect result.
func unpackLoad(e sessionstore.Entry, err error) (string, bool, error) { return e.Data, e.Renewed, err }

func unpackInspect(e sessionstore.Entry, ttl time.Duration, err error) (string, time.Duration, error) {
	return e.Data, ttl, err
}

// checkSubjectIndex verifies the subject index against the sessions the
// shards hold, want: it records exactly them, each (subject hash, key hash)
// as many times as there are such sessions, and each key set's count and
// form match what it holds.
func checkSubjectIndex(t *testing.T, s *memStore, want map[[2]uint64]int) {
	t.Helper()
	s.subjects.mu.Lock()
	defer s.subjects.mu.Unlock()
	got := map[[2]uint64]int{}
	for subject, h := range s.subjects.one {
		got[[2]uint64{subject, h}]++
		if _, ok := s.subjects.many[subject]; ok {
			t.Errorf("subject %x: both in one and in many", subject)
		}
	}
	for subject, ks := range s.subjects.many {
		if ks.n < 2 {
			t.Errorf("subject %x: a key set of %d in many", subject, ks.n)
		}
		n := 0
		if ks.many != nil {
			if ks.few != nil {
				t.Errorf("subject %x: a key set with both a slice and a map", subject)
			}
			for h, c := range ks.many {
				if c == 0 {
					t.Errorf("subject %x: key %x counted 0 times", subject, h)
				}
				got[[2]uint64{subject, h}] += int(c)
				n += int(c)
			}
		} else {
			if len(ks.few) > keySetMax {
				t.Errorf("subject %x: %d keys in a key set's slice, the most is %d", subject, len(ks.few), keySetMax)
			}
			for _, h := range ks.few {
				got[[2]uint64{subject, h}]++
			}
			n = len(ks.few)
		}
		if n != ks.n || n == 0 {
			t.Errorf("subject %x: a key set of %d keys counts %d", subject, n, ks.n)
		}
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("subject index: (subject %x, key %x) recorded %d times, the shards hold %d such sessions", k[0], k[1], got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("subject index: (subject %x, key %x) recorded %d times, the shards hold none", k[0], k[1], n)
		}
	}
}
