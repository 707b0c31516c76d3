package memorystore

import (
	"fmt"
	"testing"
	"time"
)

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
