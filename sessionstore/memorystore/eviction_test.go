package memorystore

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// seeAll loads keys, as their users' next requests would: they leave
// probation.
func seeAll(t *testing.T, s *memStore, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if peek(t, s, k) == "" {
			t.Fatalf("seeAll: %q not found", k)
		}
	}
}

// Once no session is on probation, eviction takes the one nearest its
// expiry.
func TestMemCapEvictsNearestExpiry(t *testing.T) {
	s, c := newTestStore(t, 3)
	mustPatch(t, s, "a", 30*time.Minute, `{"k":"a"}`)
	mustPatch(t, s, "b", 10*time.Minute, `{"k":"b"}`)
	mustPatch(t, s, "c", 20*time.Minute, `{"k":"c"}`)
	seeAll(t, s, "a", "b", "c")
	c.advance(time.Second)
	// d is on probation, but as the session being created it is not
	// evicted in its own place.
	mustPatch(t, s, "d", 40*time.Minute, `{"k":"d"}`)
	wantLen(t, s, 3)
	wantGone(t, s, "b")
	for _, k := range []string{"a", "c", "d"} { // seen: d leaves probation
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
	// Every session is seen right after it is created: this is the order
	// among sessions off probation.
	patch := func(k string, ttl time.Duration, p string) {
		t.Helper()
		mustPatch(t, s, k, ttl, p)
		seeAll(t, s, k)
	}
	patch("p1", 0, `{"a":1}`)
	step()
	patch("e1", time.Hour, `{"a":1}`)
	step()
	patch("p2", 0, `{"a":1}`)
	step()
	// e2 outlives the wait for p1's renewal below.
	patch("e2", 100*24*time.Hour, `{"a":1}`) // evicts e1: expiring before permanent
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
	patch("p3", 0, `{"a":1}`) // evicts e2, the only expiring one
	held("p1", "p2", "p3")

	step()
	patch("p4", 0, `{"a":1}`) // evicts p2: least recently renewed
	held("p1", "p3", "p4")

	step()
	patch("p5", 0, `{"a":1}`) // evicts p1, renewed before p3 was created
	held("p3", "p4", "p5")

	step()
	patch("p3", 0, `{"b":1}`) // a patch renews p3
	step()
	patch("p6", 0, `{"a":1}`) // evicts p4
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

// The first eviction of a flood is logged at once, the rest as a summary
// every interval while it lasts, and the last of them within an interval
// after it stops, without waiting for another eviction.
func TestMemEvictionLog(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s, c := newTestStoreLogger(t, 2, zap.New(core))
	const every = 100 * time.Millisecond
	s.evictionLog.every = every
	insert := func(k string) {
		t.Helper()
		c.advance(time.Millisecond)
		mustPatch(t, s, k, time.Hour, `{"a":1}`)
	}
	waitLines := func(n int) []observer.LoggedEntry {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for logs.Len() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return logs.TakeAll()
	}
	field := func(e observer.LoggedEntry, name string) any { return e.ContextMap()[name] }
	insert("a")
	insert("b")
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d log lines before any eviction", n)
	}
	insert("c")
	entries := logs.TakeAll() // at once, not after a wait
	if len(entries) != 1 {
		t.Fatalf("%d log lines right after the first eviction, want 1", len(entries))
	}
	if got := field(entries[0], "evicted"); got != int64(1) {
		t.Errorf("evicted = %v, want 1", got)
	}
	if got := field(entries[0], "max_sessions"); got != int64(2) {
		t.Errorf("max_sessions = %v, want 2", got)
	}
	// Then evictions are counted, not logged one by one.
	start := time.Now()
	seeAll(t, s, "b", "c") // so d evicts b, a seen session
	insert("d")
	insert("e")
	insert("f")
	if n := logs.Len(); n != 0 && time.Since(start) < every {
		t.Errorf("%d log lines within the interval, want 0", n)
	}
	// The summary comes without another eviction.
	entries = waitLines(1)
	if len(entries) != 1 {
		t.Fatalf("%d summary lines, want 1", len(entries))
	}
	if got := field(entries[0], "evicted"); got != int64(3) {
		t.Errorf("summary evicted = %v, want 3", got)
	}
	if got := field(entries[0], "evicted_seen"); got != int64(1) {
		t.Errorf("summary evicted_seen = %v, want 1", got)
	}
	// Quiet: no more lines, and the next eviction is logged at once.
	time.Sleep(3 * every)
	if n := logs.Len(); n != 0 {
		t.Errorf("%d log lines after the flood's summary, want 0", n)
	}
	insert("g")
	if n := logs.Len(); n != 1 {
		t.Errorf("%d log lines right after an eviction following a quiet spell, want 1", n)
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

// A flood of new sessions ten times the cap, none of them seen again,
// evicts only its own sessions, oldest first: the user who came back
// keeps theirs, though it is the nearest its expiry.
func TestMemFloodCannotEvictReturningUser(t *testing.T) {
	const maxSessions = 100
	s, c := newTestStore(t, maxSessions)
	mustPatch(t, s, "user", time.Hour, `{"user":"alice"}`)
	c.advance(time.Second)
	wantFound(t, s, "user", `{"user":"alice"}`) // the user's next request
	for i := 0; i < 10*maxSessions; i++ {
		c.advance(time.Millisecond)
		mustPatch(t, s, fmt.Sprintf("flood%d", i), time.Hour, `{"cart":1}`)
	}
	wantLen(t, s, maxSessions)
	wantHeld(t, s, "user", `{"user":"alice"}`)
	// The flood's newest 99 are left: it evicted oldest first.
	for i := 0; i < 10*maxSessions; i++ {
		_, held := entryOf(s, fmt.Sprintf("flood%d", i))
		if want := i >= 10*maxSessions-(maxSessions-1); held != want {
			t.Fatalf("flood%d held = %v, want %v", i, held, want)
		}
	}
	checkInvariants(t, s)
}

// Probation is one queue across shards: the oldest session on it goes
// first, whichever shard holds it.
func TestMemProbationOldestFirstAcrossShards(t *testing.T) {
	s, c := newTestStore(t, 6)
	keys := keysInShards(s, "k", 8, false) // each in its own shard
	for _, k := range keys[:6] {
		c.advance(time.Millisecond)
		// Later ones expire sooner: the old order would evict them first.
		mustPatch(t, s, k, time.Duration(10-len(k))*time.Hour, `{"a":1}`)
	}
	seeAll(t, s, keys[1])
	mustPatch(t, s, keys[6], time.Hour, `{"a":1}`)
	mustPatch(t, s, keys[7], time.Hour, `{"a":1}`)
	// keys[0] and keys[2] were the oldest on probation; keys[1] was seen.
	for i, k := range keys {
		_, held := entryOf(s, k)
		if want := i != 0 && i != 2; held != want {
			t.Errorf("%s (created %d) held = %v, want %v", k, i, held, want)
		}
	}
	checkInvariants(t, s)
}

// A store full of seen sessions still takes a new one: the session being
// created is not evicted in its own place; the next new one evicts it if
// it was not seen meanwhile, and evicts a seen one if it was.
func TestMemNewSessionInFullStoreOfSeen(t *testing.T) {
	s, c := newTestStore(t, 3)
	for i, k := range []string{"a", "b", "c"} {
		mustPatch(t, s, k, time.Duration(i+1)*time.Hour, `{"a":1}`)
	}
	seeAll(t, s, "a", "b", "c")
	c.advance(time.Second)
	mustPatch(t, s, "n1", 10*time.Hour, `{"a":1}`) // evicts a, nearest its expiry
	mustPatch(t, s, "n2", 10*time.Hour, `{"a":1}`) // evicts n1, on probation
	for k, want := range map[string]bool{"a": false, "b": true, "c": true, "n1": false, "n2": true} {
		if _, held := entryOf(s, k); held != want {
			t.Errorf("%s held = %v, want %v", k, held, want)
		}
	}
	seeAll(t, s, "n2")
	mustPatch(t, s, "n3", 10*time.Hour, `{"a":1}`) // evicts b: n2 was seen
	for k, want := range map[string]bool{"b": false, "c": true, "n2": true, "n3": true} {
		if _, held := entryOf(s, k); held != want {
			t.Errorf("%s held = %v, want %v", k, held, want)
		}
	}
	checkInvariants(t, s)
}

// A session renamed before it was seen stays on probation; one seen stays
// off it; grace records are never on it.
func TestMemRenameKeepsProbation(t *testing.T) {
	s, c := newTestStore(t, 3)
	mustPatch(t, s, "new", time.Hour, `{"a":1}`)
	mustPatch(t, s, "old", time.Hour, `{"a":1}`)
	seeAll(t, s, "old")
	for _, r := range [][2]string{{"new", "new2"}, {"old", "old2"}} {
		if err := s.Rename(bg, r[0], r[1], sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	checkInvariants(t, s)
	c.advance(time.Second)
	mustPatch(t, s, "x", time.Hour, `{"a":1}`)
	mustPatch(t, s, "y", time.Hour, `{"a":1}`) // evicts new2, queued before x
	for k, want := range map[string]bool{"new2": false, "old2": true, "x": true, "y": true} {
		if _, held := entryOf(s, k); held != want {
			t.Errorf("%s held = %v, want %v", k, held, want)
		}
	}
	checkInvariants(t, s)
}

// Loads marking sessions seen under the read lock race with creations
// that evict, with renames and deletes: run with -race.
func TestMemConcurrentSeenAndEviction(t *testing.T) {
	s, _ := newTestStore(t, 50)
	setShardLimits(s, shardLimits{compactMinArena: 256, compactMinSlots: 4, maxArena: maxArena})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 3000; i++ {
				k := fmt.Sprintf("k%d", r.Intn(200))
				switch r.Intn(10) {
				case 0, 1, 2, 3:
					s.Load(bg, k, time.Hour)
				case 4, 5, 6, 7:
					s.Patch(bg, k, []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Create: true})
				case 8:
					if to := fmt.Sprintf("k%d", r.Intn(200)); to != k {
						s.Rename(bg, k, to, sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Second})
					}
				default:
					s.Delete(bg, k)
				}
			}
		}(g)
	}
	waitOrFail(t, &wg, time.Minute)
	if n := s.Len(); n > 50 {
		t.Errorf("Len() = %d over the cap", n)
	}
	checkInvariants(t, s)
}
