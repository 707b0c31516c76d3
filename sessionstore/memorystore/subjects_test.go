package memorystore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-session/caddy-session/sessionstore"
)

func strPtr(s string) *string { return &s }

// login writes a session of subject under key, with the rest of the Meta
// a handler records.
func login(t *testing.T, s *memStore, key, subject string) {
	t.Helper()
	opts := sessionstore.PatchOptions{TTL: time.Hour, Create: true, Subject: strPtr(subject), Scope: "site",
		Persist: sessionstore.PersistOn, UserAgent: "ua of " + key, Addr: "192.0.2.0/24"}
	if _, err := s.Patch(bg, key, []string{`{"user":"` + subject + `"}`}, opts); err != nil {
		t.Fatalf("Patch(%q): %v", key, err)
	}
}

// wantSubjectKeys lists subject's sessions under prefix, and fails unless
// they are want, in that order, with the Meta login gave them.
func wantSubjectKeys(t *testing.T, s *memStore, prefix, subject string, want ...string) {
	t.Helper()
	list, total, err := s.ListSubject(bg, prefix, subject, sessionstore.MaxSubjectSessions)
	if err != nil {
		t.Fatalf("ListSubject(%q, %q): %v", prefix, subject, err)
	}
	var got []string
	for _, ss := range list {
		got = append(got, ss.Key)
		// A renamed session ("x" added to its key) keeps the user agent
		// it was created with.
		want := sessionstore.Meta{Scope: "site", Subject: subject, Persist: sessionstore.PersistOn,
			UserAgent: "ua of " + strings.TrimSuffix(ss.Key, "x"), Addr: "192.0.2.0/24"}
		if ss.Meta != want {
			t.Errorf("ListSubject(%q): %s has meta %+v, want %+v", subject, ss.Key, ss.Meta, want)
		}
	}
	if !slices.Equal(got, want) || total != len(want) {
		t.Errorf("ListSubject(%q, %q) = %q, total %d; want %q", prefix, subject, got, total, want)
	}
}

// The entry keeps its size with the new Meta: a million sessions are a
// million entries.
func TestMemEntryStaysSmall(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(memEntry{}) > 72 {
		t.Errorf("memEntry is %d bytes, was 72", unsafe.Sizeof(memEntry{}))
	}
}

func TestMetaTailRoundTrip(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, m := range []metaTail{
		{},
		{scope: "site"},
		{subject: "alice"},
		{userAgent: "Firefox"},
		{addr: "192.0.2.0/24"},
		{scope: "site", addr: "2001:db8::/48"},
		{scope: long(sessionstore.MaxScopeLength), subject: long(sessionstore.MaxSubjectLength),
			userAgent: long(sessionstore.MaxRecordLength), addr: long(sessionstore.MaxRecordLength)},
		{subject: long(sessionstore.MaxSubjectLength)},
	} {
		enc := m.encode()
		if len(enc) != m.encodedLen() {
			t.Errorf("%+v: encoded in %d bytes, encodedLen %d", m, len(enc), m.encodedLen())
		}
		if m.empty() != (len(enc) == 0) {
			t.Errorf("%+v: empty %v, encoded in %d bytes", m, m.empty(), len(enc))
		}
		if got := decodeTail(string(enc)); got != m {
			t.Errorf("decodeTail(encode(%+v)) = %+v", m, got)
		}
		if got := string(tailSubject(enc)); got != m.subject {
			t.Errorf("%+v: tailSubject = %q", m, got)
		}
		if err := m.check(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
		// A tail cut short decodes to no more than it holds.
		for n := range enc {
			_ = decodeTail(string(enc[:n]))
		}
	}
}

// The index hashes subjects from the arena's bytes and from strings: the
// two must agree.
func TestHashBytesIsHashOfString(t *testing.T) {
	s, _ := newTestStore(t, 0)
	for _, v := range []string{"", "alice", "a somewhat longer subject, past the first block of the hash........"} {
		if s.hashBytes([]byte(v)) != s.hash(v) {
			t.Errorf("hashBytes(%q) != hash(%q)", v, v)
		}
	}
}

func TestMemPatchRefusesLongMeta(t *testing.T) {
	s, _ := newTestStore(t, 0)
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, opts := range []sessionstore.PatchOptions{
		{Scope: long(sessionstore.MaxScopeLength + 1)},
		{Subject: strPtr(long(sessionstore.MaxSubjectLength + 1))},
		{UserAgent: long(sessionstore.MaxRecordLength + 1)},
		{Addr: long(sessionstore.MaxRecordLength + 1)},
		{Persist: sessionstore.PersistOff + 1},
	} {
		opts.Create, opts.TTL = true, time.Hour
		if _, err := s.Patch(bg, "k", []string{`{"a":1}`}, opts); err == nil {
			t.Errorf("Patch with %+v: no error", opts)
		}
	}
	wantLen(t, s, 0)
	// At the limits, all is kept.
	opts := sessionstore.PatchOptions{TTL: time.Hour, Create: true, Scope: long(sessionstore.MaxScopeLength),
		Subject: strPtr(long(sessionstore.MaxSubjectLength)), UserAgent: long(sessionstore.MaxRecordLength), Addr: long(sessionstore.MaxRecordLength)}
	if _, err := s.Patch(bg, "k", []string{`{"a":1}`}, opts); err != nil {
		t.Fatal(err)
	}
	e, err := s.Load(bg, "k", time.Hour)
	if err != nil || e.Meta.Scope != opts.Scope || e.Meta.Subject != *opts.Subject || e.Meta.UserAgent != opts.UserAgent || e.Meta.Addr != opts.Addr {
		t.Errorf("Load = %+v, %v", e.Meta, err)
	}
	checkInvariants(t, s)
}

// The index survives a save and a restart, and a crash after which the
// journal is replayed: each restarted store lists the subject's sessions
// with their Meta, and their order.
func TestSubjectIndexSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.jsonl")
	s := newPersistentMemStore(100, time.Hour, nil, path, time.Hour)
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano()) // a file's expiries are against the real clock
	s.now = c.now
	defer s.Destruct()
	for _, k := range []string{"app:a1", "app:a2", "app:a3", "other:a4"} {
		login(t, s, k, "alice")
		c.advance(time.Second)
	}
	login(t, s, "app:b1", "bob")
	login(t, s, "app:gone", "alice")
	if err := s.Delete(bg, "app:gone"); err != nil {
		t.Fatal(err)
	}
	// A session whose subject was removed is no longer alice's.
	login(t, s, "app:anon", "alice")
	if _, err := s.Patch(bg, "app:anon", nil, sessionstore.PatchOptions{TTL: time.Hour, Subject: strPtr("")}); err != nil {
		t.Fatal(err)
	}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	fromSnapshot := restart(t, crashCopy(t, path), 100, nil)
	wantSubjectKeys(t, fromSnapshot, "app:", "alice", "app:a3", "app:a2", "app:a1")
	wantSubjectKeys(t, fromSnapshot, "", "bob", "app:b1")
	checkInvariants(t, fromSnapshot)

	// After the save, changes reach the journal only: a regenerate, a
	// new login, a change of subject.
	if err := s.Rename(bg, "app:a1", "app:a1x", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Second)
	login(t, s, "app:a5", "alice")
	c.advance(time.Second)
	if _, err := s.Patch(bg, "app:b1", nil, sessionstore.PatchOptions{TTL: time.Hour, Subject: strPtr("alice"), UserAgent: "ua of app:b1"}); err != nil {
		t.Fatal(err)
	}
	wantSubjectKeys(t, s, "app:", "alice", "app:b1", "app:a5", "app:a1x", "app:a3", "app:a2")
	s.flushJournal()
	fromJournal := restart(t, crashCopy(t, path), 100, nil)
	sameSessions(t, s, fromJournal, false)
	wantSubjectKeys(t, fromJournal, "app:", "alice", "app:b1", "app:a5", "app:a1x", "app:a3", "app:a2")
	wantSubjectKeys(t, fromJournal, "", "bob")
	if n, err := fromJournal.DeleteSubject(bg, "app:", "alice", nil); err != nil || n != 5 {
		t.Errorf("DeleteSubject after the restart = %d, %v; want 5", n, err)
	}
	wantSubjectKeys(t, fromJournal, "", "alice", "other:a4")
	checkInvariants(t, fromJournal)
}

// A subject of many sessions: its key set turns into a map, and back into
// a slice as they go, and the index stays exact throughout.
func TestSubjectManySessions(t *testing.T) {
	s, c := newTestStore(t, 0)
	const n = 3 * keySetMax
	var keys []string
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		keys = append(keys, k)
		login(t, s, k, "many")
		c.advance(time.Millisecond)
	}
	checkInvariants(t, s)
	list, total, err := s.ListSubject(bg, "", "many", 10)
	if err != nil || len(list) != 10 || total != n || list[0].Key != keys[n-1] || list[9].Key != keys[n-10] {
		t.Fatalf("ListSubject(many, 10): %d listed, total %d, %v; first %v", len(list), total, err, list[:min(1, len(list))])
	}
	if list, total, _ := s.ListSubject(bg, "", "many", 0); len(list) != 0 || total != n {
		t.Errorf("ListSubject(many, 0): %d listed, total %d; want none listed, total %d", len(list), total, n)
	}
	for i, k := range keys[:n-3] {
		if i%2 == 0 {
			if err := s.Delete(bg, k); err != nil {
				t.Fatal(err)
			}
		} else if _, err := s.Patch(bg, k, nil, sessionstore.PatchOptions{TTL: time.Hour, Subject: strPtr("")}); err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, s)
	}
	wantSubjectKeys(t, s, "", "many", keys[n-1], keys[n-2], keys[n-3])
	s.subjects.mu.Lock()
	ks := s.subjects.many[s.hash("many")]
	s.subjects.mu.Unlock()
	if ks == nil || ks.many != nil || len(ks.few) != 3 {
		t.Errorf("a key set of 3 left is %+v, want a slice", ks)
	}
	// Down to one, the subject moves to the index's map of numbers.
	for _, k := range keys[n-3 : n-1] {
		if err := s.Delete(bg, k); err != nil {
			t.Fatal(err)
		}
	}
	s.subjects.mu.Lock()
	_, inMany := s.subjects.many[s.hash("many")]
	only, inOne := s.subjects.one[s.hash("many")]
	s.subjects.mu.Unlock()
	if inMany || !inOne || only != s.hash(keys[n-1]) {
		t.Errorf("a subject of one session left: in many %v, in one %v (%x)", inMany, inOne, only)
	}
	wantSubjectKeys(t, s, "", "many", keys[n-1])
	checkInvariants(t, s)
}

// Sessions that expired are neither listed nor deleted, and a lister that
// finds one before the sweeper drops it.
func TestSubjectExpiredDroppedByLister(t *testing.T) {
	s, c := newTestStore(t, 0)
	login(t, s, "short", "alice")
	if _, err := s.Patch(bg, "long", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: 3 * time.Hour, Create: true, Subject: strPtr("alice")}); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Hour)
	if _, total, _ := s.ListSubject(bg, "", "alice", 10); total != 1 {
		t.Errorf("total %d, want 1", total)
	}
	wantLen(t, s, 1) // the lister dropped the expired one
	if n, err := s.DeleteSubject(bg, "", "alice", nil); err != nil || n != 1 {
		t.Errorf("DeleteSubject = %d, %v; want 1", n, err)
	}
	wantLen(t, s, 0)
	checkInvariants(t, s)
}

// A "sign out everywhere" racing a chain of regenerates of one session
// still ends the session: when DeleteSubject returns, no key of the chain
// can be loaded. Fails when the lister does not look again for a session
// that moved under it.
func TestDeleteSubjectRacingRename(t *testing.T) {
	s, _ := newTestStore(t, 0)
	for round := range 100 {
		key := func(i int) string { return fmt.Sprintf("r%d-%d", round, i) }
		login(t, s, key(0), "alice")
		var wg sync.WaitGroup
		renamed := 0
		wg.Go(func() {
			for i := 0; i < 100_000; i++ {
				err := s.Rename(bg, key(i), key(i+1), sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute})
				if err != nil {
					return
				}
				renamed++
			}
		})
		n, err := s.DeleteSubject(bg, "", "alice", nil)
		if err != nil || n != 1 {
			t.Fatalf("round %d: DeleteSubject = %d, %v; want 1", round, n, err)
		}
		// What DeleteSubject deleted stays deleted: the renamer stops at it.
		wg.Wait()
		for i := 0; i <= renamed+1; i++ {
			if _, err := s.Load(bg, key(i), time.Hour); err == nil {
				t.Fatalf("round %d: %s still loads after DeleteSubject (%d renames)", round, key(i), renamed)
			} else if !errors.Is(err, sessionstore.ErrNotFound) && !errors.Is(err, sessionstore.ErrMoved) {
				t.Fatal(err)
			}
		}
		wantLen(t, s, 0)
	}
	checkInvariants(t, s)
}

// keep runs outside the store's locks: it may use the store.
func TestDeleteSubjectKeepMayUseTheStore(t *testing.T) {
	s, _ := newTestStore(t, 0)
	login(t, s, "a", "alice")
	login(t, s, "b", "alice")
	n, err := s.DeleteSubject(bg, "", "alice", func(ss sessionstore.SubjectSession) bool {
		e, err := s.Load(bg, ss.Key, time.Hour)
		return err == nil && ss.Key == "a" && e.Meta.Subject == "alice"
	})
	if err != nil || n != 1 {
		t.Fatalf("DeleteSubject = %d, %v; want 1", n, err)
	}
	wantSubjectKeys(t, s, "", "alice", "a")
}

// A regenerate between DeleteSubject's listing and its deletion, with a
// grace and without: the session is deleted under its new key. keep runs
// between the two, so it is where the regenerate happens.
func TestDeleteSubjectFollowsRename(t *testing.T) {
	for _, grace := range []time.Duration{time.Minute, 0} {
		t.Run(fmt.Sprint("grace ", grace), func(t *testing.T) {
			s, _ := newTestStore(t, 0)
			login(t, s, "app:old", "alice")
			login(t, s, "app:other", "alice")
			renamed := false
			n, err := s.DeleteSubject(bg, "app:", "alice", func(ss sessionstore.SubjectSession) bool {
				if ss.Key == "app:old" && !renamed {
					renamed = true
					if err := s.Rename(bg, "app:old", "app:oldx", sessionstore.RenameOptions{TTL: time.Hour, Grace: grace}); err != nil {
						t.Error(err)
					}
				}
				return false
			})
			if err != nil || n != 2 {
				t.Errorf("DeleteSubject = %d, %v; want 2", n, err)
			}
			for _, k := range []string{"app:old", "app:oldx", "app:other"} {
				if _, err := s.Load(bg, k, time.Hour); err == nil {
					t.Errorf("%s still loads", k)
				}
			}
			wantLen(t, s, 0)
			checkInvariants(t, s)
		})
	}
}

// A regenerate between a lister's copy of the hashes and its look in the
// shards: the lister follows the grace record to the session.
func TestListSubjectFollowsRename(t *testing.T) {
	s, _ := newTestStore(t, 0)
	login(t, s, "app:old", "alice")
	hashes := s.subjects.keys(s.hash("alice"))
	if err := s.Rename(bg, "app:old", "app:oldx", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if len(hashes) != 1 || hashes[0] != s.hash("app:old") {
		t.Fatalf("the index held %x, want the old key's hash", hashes)
	}
	found, ok := s.resolveSubject(nil, hashes[0], "app:", "alice")
	if !ok || len(found) != 1 || found[0].Key != "app:oldx" {
		t.Errorf("resolving the old key's hash after the rename: %+v, %v; want app:oldx", found, ok)
	}
}

// A Delete of a grace record deletes the session it moved to, which
// leaves the index too; so do an eviction and an expiry sweep.
func TestSubjectLeavesIndexWithItsSession(t *testing.T) {
	s, c := newTestStore(t, 2)
	login(t, s, "old", "alice")
	if err := s.Rename(bg, "old", "oldx", sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Minute}); err != nil {
		t.Fatal(err)
	}
	wantSubjectKeys(t, s, "", "alice", "oldx")
	if err := s.Delete(bg, "old"); err != nil {
		t.Fatal(err)
	}
	wantGone(t, s, "oldx")
	wantSubjectKeys(t, s, "", "alice")
	checkInvariants(t, s)

	// Evicted: the store holds two.
	login(t, s, "e1", "alice")
	c.advance(time.Second)
	login(t, s, "e2", "bob")
	c.advance(time.Second)
	login(t, s, "e3", "bob")
	wantSubjectKeys(t, s, "", "alice")
	wantSubjectKeys(t, s, "", "bob", "e3", "e2")
	checkInvariants(t, s)

	// Expired and swept.
	c.advance(2 * time.Hour)
	if n := s.sweep(); n != 2 {
		t.Errorf("sweep dropped %d, want 2", n)
	}
	wantSubjectKeys(t, s, "", "bob")
	checkInvariants(t, s)
}
