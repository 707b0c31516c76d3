package storetest

// The conformance tests of sessionstore.SubjectIndex and of the metadata
// that goes with it (subject, persist, the recorded client).

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// subjectTests are the subtests Run adds for the subject index.
var subjectTests = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"SubjectMeta", testSubjectMeta},
	{"SubjectList", testSubjectList},
	{"SubjectListPage", testSubjectListPage},
	{"SubjectFollowsRename", testSubjectFollowsRename},
	{"SubjectChange", testSubjectChange},
	{"SubjectGone", testSubjectGone},
	{"SubjectExpired", testSubjectExpired},
	{"DeleteSubject", testDeleteSubject},
	{"SubjectPrefix", testSubjectPrefix},
}

func strPtr(s string) *string { return &s }

// keepKey keeps the session under key.
func keepKey(key string) func(sessionstore.SubjectSession) bool {
	return func(s sessionstore.SubjectSession) bool { return s.Key == key }
}

// index returns the store's SubjectIndex: every store of this project has
// one.
func (h Harness) index(t *testing.T) sessionstore.SubjectIndex {
	t.Helper()
	idx, ok := h.Store.(sessionstore.SubjectIndex)
	if !ok {
		t.Fatalf("%T does not implement sessionstore.SubjectIndex", h.Store)
	}
	return idx
}

// login writes a session of subject under key.
func (h Harness) login(t *testing.T, key, subject string) {
	t.Helper()
	h.patch(t, key, sessionstore.PatchOptions{TTL: h.TTL, Create: true, Subject: strPtr(subject)}, `{"user":"`+subject+`"}`)
}

// listKeys lists subject's sessions and returns their keys, in order, and
// the total.
func (h Harness) listKeys(t *testing.T, subject string, limit int) ([]string, int) {
	t.Helper()
	list, total, err := h.index(t).ListSubject(bg, "", subject, limit)
	if err != nil {
		t.Fatalf("ListSubject(%q, %d): %v", subject, limit, err)
	}
	keys := make([]string, len(list))
	for i, s := range list {
		keys[i] = s.Key
		if s.Meta.Subject != subject {
			t.Errorf("ListSubject(%q) listed %q with subject %q", subject, s.Key, s.Meta.Subject)
		}
	}
	return keys, total
}

// wantSubject checks the keys subject's sessions are under, in any order.
func (h Harness) wantSubject(t *testing.T, subject string, want ...string) {
	t.Helper()
	got, total := h.listKeys(t, subject, sessionstore.MaxSubjectSessions)
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) || total != len(want) {
		t.Errorf("ListSubject(%q) = %q, total %d; want %q", subject, got, total, want)
	}
}

func testSubjectMeta(t *testing.T, h Harness) {
	h.patch(t, "m", sessionstore.PatchOptions{
		TTL: h.TTL, Create: true, Subject: strPtr("alice@example.com"), Persist: sessionstore.PersistOn,
		UserAgent: "Firefox 140 on Linux", Addr: "192.0.2.0/24",
	}, `{"a":1}`)
	want := sessionstore.Meta{Subject: "alice@example.com", Persist: sessionstore.PersistOn, UserAgent: "Firefox 140 on Linux", Addr: "192.0.2.0/24"}
	check := func(when string, want sessionstore.Meta) {
		t.Helper()
		e, ok := h.load(t, "m", h.TTL)
		if !ok || e.Meta != want {
			t.Errorf("%s: Load = %+v, found %v; want meta %+v", when, e.Meta, ok, want)
		}
		if in, ok := h.Store.(sessionstore.Inspector); ok {
			e, _, err := in.Inspect(bg, "m")
			if err != nil || e.Meta != want {
				t.Errorf("%s: Inspect = %+v, %v; want meta %+v", when, e.Meta, err, want)
			}
		}
	}
	check("after creation", want)

	// A write that names none of them keeps them all.
	h.patch(t, "m", sessionstore.PatchOptions{TTL: h.TTL}, `{"b":2}`)
	check("after a plain write", want)

	// Each is replaced on its own.
	h.patch(t, "m", sessionstore.PatchOptions{TTL: h.TTL, Persist: sessionstore.PersistOff, UserAgent: "Safari 19 on macOS"})
	want.Persist, want.UserAgent = sessionstore.PersistOff, "Safari 19 on macOS"
	check("after a write of persist and user agent", want)

	// An empty subject removes it, and the rest stays.
	h.patch(t, "m", sessionstore.PatchOptions{TTL: h.TTL, Subject: strPtr("")})
	want.Subject = ""
	check("after the subject was removed", want)
	h.wantSubject(t, "alice@example.com")

	// A write with no patches does not create a session.
	h.patch(t, "none", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Subject: strPtr("alice@example.com")})
	h.wantGone(t, "none")
	h.wantSubject(t, "alice@example.com")
}

func testSubjectList(t *testing.T, h Harness) {
	before := h.Now()
	h.login(t, "a1", "alice")
	h.Advance(h.TTL / 20)
	h.login(t, "a2", "alice")
	h.Advance(h.TTL / 20)
	h.login(t, "a3", "alice")
	h.login(t, "b1", "bob")
	h.create(t, "n1", `{"anonymous":true}`)
	after := h.Now()

	keys, total := h.listKeys(t, "alice", 10)
	if want := []string{"a3", "a2", "a1"}; !slices.Equal(keys, want) || total != 3 {
		t.Errorf("ListSubject(alice) = %q, total %d; want %q, the most recently seen first, total 3", keys, total, want)
	}
	h.wantSubject(t, "bob", "b1")
	h.wantSubject(t, "carol")
	list, _, err := h.index(t).ListSubject(bg, "", "alice", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		// Stores keep times to the millisecond.
		if s.LastSeen.Before(before.Add(-time.Millisecond)) || s.LastSeen.After(after.Add(time.Millisecond)) {
			t.Errorf("%s: LastSeen %v, want between %v and %v", s.Key, s.LastSeen, before, after)
		}
	}
	// A session's use moves it up once its lifetime is renewed.
	h.Advance(sessionstore.RenewInterval(h.TTL))
	if e, ok := h.load(t, "a1", h.TTL); !ok || !e.Renewed {
		t.Fatalf("Load(a1) after the renewal interval: %+v, found %v; want it renewed", e, ok)
	}
	if keys, _ := h.listKeys(t, "alice", 10); len(keys) != 3 || keys[0] != "a1" {
		t.Errorf("after a1 was renewed: ListSubject(alice) = %q, want a1 first", keys)
	}
}

func testSubjectListPage(t *testing.T, h Harness) {
	const n = 30
	for i := range n {
		h.login(t, fmt.Sprintf("p%02d", i), "many")
	}
	for _, limit := range []int{1, 10, n, n + 5} {
		keys, total := h.listKeys(t, "many", limit)
		if len(keys) != min(limit, n) || total != n {
			t.Errorf("ListSubject(many, %d): %d sessions, total %d; want %d, total %d", limit, len(keys), total, min(limit, n), n)
		}
	}
}

func testSubjectFollowsRename(t *testing.T, h Harness) {
	h.login(t, "old", "alice")
	h.patch(t, "old", sessionstore.PatchOptions{TTL: h.TTL, Persist: sessionstore.PersistOn, UserAgent: "ua", Addr: "2001:db8::/48"})
	if err := h.Store.Rename(bg, "old", "new", sessionstore.RenameOptions{TTL: h.TTL, Grace: h.TTL}); err != nil {
		t.Fatal(err)
	}
	e, ok := h.load(t, "new", h.TTL)
	want := sessionstore.Meta{Subject: "alice", Persist: sessionstore.PersistOn, UserAgent: "ua", Addr: "2001:db8::/48"}
	if !ok || e.Meta != want {
		t.Errorf("after Rename: %+v, found %v; want meta %+v", e.Meta, ok, want)
	}
	// The grace record under the old key is no session of alice's.
	h.wantSubject(t, "alice", "new")
}

func testSubjectChange(t *testing.T, h Harness) {
	h.login(t, "s", "alice")
	h.patch(t, "s", sessionstore.PatchOptions{TTL: h.TTL, Subject: strPtr("bob")}, `{"user":"bob"}`)
	h.wantSubject(t, "alice")
	h.wantSubject(t, "bob", "s")
	// A deleted key written anew is a new session, without the subject.
	if err := h.Store.Delete(bg, "s"); err != nil {
		t.Fatal(err)
	}
	h.create(t, "s", `{"a":1}`)
	if e, _ := h.load(t, "s", h.TTL); e.Meta.Subject != "" {
		t.Errorf("a new session under a deleted key has subject %q", e.Meta.Subject)
	}
	h.wantSubject(t, "bob")
}

func testSubjectGone(t *testing.T, h Harness) {
	h.login(t, "g1", "alice")
	h.login(t, "g2", "alice")
	if err := h.Store.Delete(bg, "g1"); err != nil {
		t.Fatal(err)
	}
	h.wantSubject(t, "alice", "g2")
	// A patch that empties the data deletes the session.
	h.patch(t, "g2", sessionstore.PatchOptions{TTL: h.TTL}, `{"user":null}`)
	h.wantSubject(t, "alice")
}

func testSubjectExpired(t *testing.T, h Harness) {
	h.login(t, "e1", "alice")
	h.patch(t, "e2", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Subject: strPtr("alice"), Expiry: 4 * h.TTL}, `{"a":1}`)
	h.Advance(h.TTL + h.TTL/2)
	if h.Sweep != nil {
		h.Sweep()
	}
	h.wantSubject(t, "alice", "e2")
	h.wantGone(t, "e1")
}

func testDeleteSubject(t *testing.T, h Harness) {
	idx := h.index(t)
	for _, k := range []string{"d1", "d2", "d3"} {
		h.login(t, k, "alice")
	}
	h.login(t, "b1", "bob")
	n, err := idx.DeleteSubject(bg, "", "alice", keepKey("d1"))
	if err != nil || n != 2 {
		t.Fatalf("DeleteSubject(alice, keep d1) = %d, %v; want 2", n, err)
	}
	h.wantData(t, "d1", `{"user":"alice"}`)
	h.wantGone(t, "d2")
	h.wantGone(t, "d3")
	h.wantData(t, "b1", `{"user":"bob"}`)
	h.wantSubject(t, "alice", "d1")
	h.wantLen(t, 2)

	n, err = idx.DeleteSubject(bg, "", "alice", nil)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSubject(alice) = %d, %v; want 1", n, err)
	}
	h.wantGone(t, "d1")
	h.wantSubject(t, "alice")
	if n, err := idx.DeleteSubject(bg, "", "nobody", nil); err != nil || n != 0 {
		t.Errorf("DeleteSubject(nobody) = %d, %v; want 0", n, err)
	}

	// A session moved by a regenerate is deleted under its new key, and
	// its grace record then leads nowhere.
	h.login(t, "r1", "carol")
	if err := h.Store.Rename(bg, "r1", "r2", sessionstore.RenameOptions{TTL: h.TTL, Grace: h.TTL}); err != nil {
		t.Fatal(err)
	}
	if n, err := idx.DeleteSubject(bg, "", "carol", nil); err != nil || n != 1 {
		t.Fatalf("DeleteSubject(carol) = %d, %v; want 1", n, err)
	}
	h.wantGone(t, "r2")
	if _, err := h.Store.Patch(bg, "r2", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: h.TTL}); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Patch of a revoked session: %v, want ErrNotFound", err)
	}
}

// testSubjectPrefix: apps sharing a store, each under its own prefix, see
// only their own sessions of a subject of the same name.
func testSubjectPrefix(t *testing.T, h Harness) {
	idx := h.index(t)
	h.login(t, "app1:a", "42")
	h.login(t, "app1:b", "42")
	h.login(t, "app2:a", "42")
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"app1:", []string{"app1:a", "app1:b"}},
		{"app2:", []string{"app2:a"}},
		{"app3:", nil},
		{"", []string{"app1:a", "app1:b", "app2:a"}},
	} {
		list, total, err := idx.ListSubject(bg, tt.prefix, "42", 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range list {
			got = append(got, s.Key)
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) || total != len(tt.want) {
			t.Errorf("ListSubject(%q, 42) = %q, total %d; want %q", tt.prefix, got, total, tt.want)
		}
	}
	if n, err := idx.DeleteSubject(bg, "app1:", "42", nil); err != nil || n != 2 {
		t.Fatalf("DeleteSubject(app1:, 42) = %d, %v; want 2", n, err)
	}
	h.wantGone(t, "app1:a")
	h.wantData(t, "app2:a", `{"user":"42"}`)
}
