package memorystore

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

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
	if err := s.Rename(bg, "k", "a key too long for the shard to take", sessionstore.RenameOptions{TTL: time.Hour}); !errors.Is(err, errShardFull) {
		t.Fatalf("Rename past the shard's room: %v, want errShardFull", err)
	}
	if got := peek(t, s, "k"); got != `{"a":"x"}` {
		t.Fatalf("after the refused Rename, k = %s, want it as it was", got)
	}
	// Longer data goes to the end of the arena; the next change needs the
	// garbage back, which ensureArenaFits compacts for.
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
		sh.insert(uint64(i), fmt.Sprint(i), nil, "{}", e)
		slot, _ := sh.find(uint64(i), fmt.Sprint(i))
		all[slot] = true
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
