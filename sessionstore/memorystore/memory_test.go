package memorystore

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

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
			if err := s.Rename(bg, "r", "r2", sessionstore.RenameOptions{TTL: ttl}); err != nil {
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

			err := s.Rename(bg, tt.oldKey, tt.newKey, sessionstore.RenameOptions{TTL: tt.newTTL})
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
							if err := s.Rename(bg, k, to, sessionstore.RenameOptions{TTL: ttl}); err != nil && !errors.Is(err, sessionstore.ErrNotFound) {
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

// A rename to the same key with a grace renews the session and leaves no
// grace record, which would be a second entry under the key.
func TestMemRenameToItselfWithGrace(t *testing.T) {
	s, c := newTestStore(t, 0)
	mustPatch(t, s, "k", time.Hour, `{"a":1}`)
	c.advance(time.Minute)
	if err := s.Rename(bg, "k", "k", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, s)
	wantFound(t, s, "k", `{"a":1}`)
	if e, _ := entryOf(s, "k"); e.moved || e.renewed != c.now() {
		t.Errorf("entry after the rename: moved %v, renewed %d, want %d", e.moved, e.renewed, c.now())
	}
}
