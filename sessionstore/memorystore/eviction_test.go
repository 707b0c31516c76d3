package memorystore

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-session/caddy-session/sessionstore"
)

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
	if err := s.Rename(bg, "c", "c2", sessionstore.RenameOptions{TTL: 20 * time.Minute}); err != nil {
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
			s.Rename(bg, k, fmt.Sprintf("k%d", r.Intn(80)), sessionstore.RenameOptions{TTL: ttl})
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
