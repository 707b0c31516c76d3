// Package storetest is the conformance suite of the sessionstore.Store
// contract: every store's tests run it, so that every store behaves the
// same way behind the handler. What is store-specific, such as how time
// passes for it, comes in through a Harness.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// Harness is one empty store under test, and how the suite drives it.
type Harness struct {
	// Store is the store under test. It must hold no sessions.
	Store sessionstore.Store

	// TTL is the lifetime the suite gives the sessions whose expiry it
	// watches. For a store on real time, the suite's checks that something
	// has not happened yet leave a tenth of TTL (the renewal interval) to
	// spare, so the time its own steps take must stay well under that:
	// for Redis on loopback, 2s is ample.
	TTL time.Duration

	// Advance makes at least d pass for the store: a clock moved by hand,
	// or a sleep for a store that keeps real time.
	Advance func(d time.Duration)

	// Now is the store's clock, which stamps creation times. Default:
	// time.Now.
	Now func() time.Time

	// Parallel lets the subtests run at the same time, which a store on
	// real time wants: each harness must then hold a store of its own.
	Parallel bool

	// Sweep, for a store that implements sessionstore.RemovalNotifier,
	// makes it remove its expired sessions now, as it does on its own
	// from time to time.
	Sweep func()
}

// Run runs the suite: every subtest gets a new store from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, tc := range append([]struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"LoadMissing", testLoadMissing},
		{"Create", testCreate},
		{"PatchMerge", testPatchMerge},
		{"PatchMissingWithoutCreate", testPatchMissingWithoutCreate},
		{"MaxSize", testMaxSize},
		{"CreatedOnce", testCreatedOnce},
		{"OwnExpiry", testOwnExpiry},
		{"OwnPermanent", testOwnPermanent},
		{"Delete", testDelete},
		{"Rename", testRename},
		{"RenameFreshLifetime", testRenameFreshLifetime},
		{"Expiry", testExpiry},
		{"SlidingRenewal", testSlidingRenewal},
		{"Permanent", testPermanent},
		{"ConcurrentPatches", testConcurrentPatches},
		{"RenameGrace", testRenameGrace},
		{"RenameGraceEnds", testRenameGraceEnds},
		{"Scope", testScope},
		{"Removals", testRemovals},
	}, subjectTests...) {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			if h.Now == nil {
				h.Now = time.Now
			}
			if h.Parallel {
				t.Parallel()
			}
			tc.run(t, h)
		})
	}
}

var bg = context.Background()

func (h Harness) patch(t *testing.T, key string, opts sessionstore.PatchOptions, patches ...string) string {
	t.Helper()
	data, err := h.Store.Patch(bg, key, patches, opts)
	if err != nil {
		t.Fatalf("Patch(%q, %q, %+v): %v", key, patches, opts, err)
	}
	return data
}

// create writes a session with the harness's TTL.
func (h Harness) create(t *testing.T, key string, patches ...string) string {
	t.Helper()
	return h.patch(t, key, sessionstore.PatchOptions{TTL: h.TTL, Create: true}, patches...)
}

// load loads key with ttl and fails the test on an error other than
// ErrNotFound, which it checks comes with a zero Entry.
func (h Harness) load(t *testing.T, key string, ttl time.Duration) (sessionstore.Entry, bool) {
	t.Helper()
	e, err := h.Store.Load(bg, key, ttl)
	switch {
	case errors.Is(err, sessionstore.ErrNotFound):
		if e != (sessionstore.Entry{}) {
			t.Errorf("Load(%q) = %+v with ErrNotFound, want a zero Entry", key, e)
		}
		return e, false
	case err != nil:
		t.Fatalf("Load(%q): %v", key, err)
	}
	return e, true
}

func (h Harness) wantData(t *testing.T, key, want string) {
	t.Helper()
	if e, ok := h.load(t, key, h.TTL); !ok || e.Data != want {
		t.Errorf("Load(%q) = %q, found %v; want %s", key, e.Data, ok, want)
	}
}

func (h Harness) wantGone(t *testing.T, key string) {
	t.Helper()
	if e, ok := h.load(t, key, h.TTL); ok {
		t.Errorf("Load(%q) = %q, want ErrNotFound", key, e.Data)
	}
}

// wantLen checks the count of a store that implements Counter.
func (h Harness) wantLen(t *testing.T, want int) {
	t.Helper()
	if c, ok := h.Store.(sessionstore.Counter); ok {
		if got := c.Len(); got != want {
			t.Errorf("Len() = %d, want %d", got, want)
		}
	}
}

func testLoadMissing(t *testing.T, h Harness) {
	for _, ttl := range []time.Duration{0, h.TTL} {
		if e, err := h.Store.Load(bg, "missing", ttl); !errors.Is(err, sessionstore.ErrNotFound) || e != (sessionstore.Entry{}) {
			t.Errorf("Load(missing, ttl %v) = %+v, %v; want a zero Entry and ErrNotFound", ttl, e, err)
		}
	}
	h.wantLen(t, 0)
}

func testCreate(t *testing.T, h Harness) {
	data := h.create(t, "k", `{"user": "zoë", "n": 12345678901234567890, "list": [1, {"b": 2, "a": 1}]}`)
	const want = `{"list":[1,{"a":1,"b":2}],"n":12345678901234567890,"user":"zo\u00eb"}`
	if data != want {
		t.Errorf("Patch = %s, want the canonical %s", data, want)
	}
	e, ok := h.load(t, "k", h.TTL)
	if !ok || e.Data != want {
		t.Fatalf("Load = %+v, found %v; want %s", e, ok, want)
	}
	if e.Renewed {
		t.Error("a Load right after the write renewed: a write is a renewal")
	}
	if e.Meta != (sessionstore.Meta{}) {
		t.Errorf("Meta = %+v, want none: none was asked for", e.Meta)
	}
	h.wantLen(t, 1)
}

func testPatchMerge(t *testing.T, h Harness) {
	tests := []struct {
		name     string
		initial  []string // patches that create the entry first; nil for none
		patches  []string
		want     string // returned data
		wantKept bool   // whether the key is stored afterwards
	}{
		{"create several patches in order", nil, []string{`{"a":1}`, `{"b":2}`, `{"a":null}`}, `{"b":2}`, true},
		{"add a key", []string{`{"a":1}`}, []string{`{"b":2}`}, `{"a":1,"b":2}`, true},
		{"replace a value", []string{`{"a":1,"b":2}`}, []string{`{"a":"x"}`}, `{"a":"x","b":2}`, true},
		{"nested merge", []string{`{"a":1,"n":{"x":1,"y":{"z":1}}}`}, []string{`{"n":{"y":{"w":2}}}`}, `{"a":1,"n":{"x":1,"y":{"w":2,"z":1}}}`, true},
		{"null deletes", []string{`{"a":1,"b":2}`}, []string{`{"a":null}`}, `{"b":2}`, true},
		{"nested null deletes", []string{`{"n":{"x":1,"y":2}}`}, []string{`{"n":{"x":null}}`}, `{"n":{"y":2}}`, true},
		{"an array is replaced whole", []string{`{"l":[1,2,3]}`}, []string{`{"l":[4]}`}, `{"l":[4]}`, true},
		{"an object replaces a value", []string{`{"a":1}`}, []string{`{"a":{"b":null,"c":1}}`}, `{"a":{"c":1}}`, true},
		{"later patches win", []string{`{"a":1}`}, []string{`{"a":2}`, `{"a":3,"b":1}`, `{"b":null}`}, `{"a":3}`, true},
		{"create empty stores nothing", nil, []string{`{}`}, `{}`, false},
		{"create only nulls stores nothing", nil, []string{`{"a":null}`}, `{}`, false},
		{"emptying deletes", []string{`{"a":1,"b":2}`}, []string{`{"a":null,"b":null}`}, `{}`, false},
		{"emptying over two patches deletes", []string{`{"a":1}`}, []string{`{"b":2}`, `{"a":null,"b":null}`}, `{}`, false},
		{"empty patch on existing keeps", []string{`{"a":1}`}, []string{`{}`}, `{"a":1}`, true},
		{"no patches on existing keeps", []string{`{"a":1}`}, nil, `{"a":1}`, true},
		{"no patches on missing stores nothing", nil, nil, `{}`, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("merge:%d", i)
			if tt.initial != nil {
				h.create(t, key, tt.initial...)
			}
			got := h.create(t, key, tt.patches...)
			if got != tt.want {
				t.Errorf("Patch = %s, want %s", got, tt.want)
			}
			if tt.wantKept {
				h.wantData(t, key, tt.want)
				h.wantLen(t, 1)
			} else {
				h.wantGone(t, key)
				h.wantLen(t, 0)
			}
			if err := h.Store.Delete(bg, key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func testPatchMissingWithoutCreate(t *testing.T, h Harness) {
	noCreate := sessionstore.PatchOptions{TTL: h.TTL, SetCreated: true, Expiry: sessionstore.Permanent}
	if data, err := h.Store.Patch(bg, "k", []string{`{"a":1}`}, noCreate); !errors.Is(err, sessionstore.ErrNotFound) || data != "" {
		t.Fatalf("Patch(missing, Create false) = %q, %v; want ErrNotFound", data, err)
	}
	h.wantGone(t, "k")
	h.wantLen(t, 0)

	// On an existing key it patches.
	h.create(t, "k", `{"a":1}`)
	if data, err := h.Store.Patch(bg, "k", []string{`{"b":2}`}, sessionstore.PatchOptions{TTL: h.TTL}); err != nil || data != `{"a":1,"b":2}` {
		t.Fatalf("Patch(existing, Create false) = %q, %v", data, err)
	}
	h.wantData(t, "k", `{"a":1,"b":2}`)

	// After Delete it is missing again, and what the refused patch asked
	// for is not kept either.
	if err := h.Store.Delete(bg, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Patch(bg, "k", []string{`{"a":1}`}, noCreate); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Patch(deleted, Create false) = %v, want ErrNotFound", err)
	}
	h.create(t, "k", `{"c":3}`)
	if e, _ := h.load(t, "k", h.TTL); e.Data != `{"c":3}` || e.Meta != (sessionstore.Meta{}) {
		t.Errorf("after a refused patch and a create: %+v, want only the new data", e)
	}
}

func testMaxSize(t *testing.T, h Harness) {
	tests := []struct {
		name    string
		initial string // data created first, without a limit; "" for none
		patch   string
		max     int
		want    string // stored afterwards; "" for nothing
		tooBig  bool
	}{
		{"within", `{"a":1}`, `{"b":2}`, 20, `{"a":1,"b":2}`, false},
		{"exactly at the limit", `{"a":1}`, `{"b":2}`, len(`{"a":1,"b":2}`), `{"a":1,"b":2}`, false},
		{"one byte over", `{"a":1}`, `{"b":2}`, len(`{"a":1,"b":2}`) - 1, `{"a":1}`, true},
		{"growing past it", `{"a":1}`, `{"b":"0123456789"}`, 20, `{"a":1}`, true},
		{"creating past it", "", `{"b":"0123456789"}`, 10, "", true},
		{"no limit", `{"a":1}`, `{"b":"` + strings.Repeat("x", 1000) + `"}`, 0, `{"a":1,"b":"` + strings.Repeat("x", 1000) + `"}`, false},
		// Data over a lowered limit may still shrink, not grow.
		{"shrinking over a lowered limit", `{"a":"0123456789","b":"0123456789"}`, `{"a":null}`, 10, `{"b":"0123456789"}`, false},
		{"same size over a lowered limit", `{"a":"0123456789"}`, `{"a":"9876543210"}`, 10, `{"a":"9876543210"}`, false},
		{"growing over a lowered limit", `{"a":"0123456789"}`, `{"b":1}`, 10, `{"a":"0123456789"}`, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("size:%d", i)
			if tt.initial != "" {
				h.create(t, key, tt.initial)
			}
			data, err := h.Store.Patch(bg, key, []string{tt.patch}, sessionstore.PatchOptions{TTL: h.TTL, Create: true, MaxSize: tt.max})
			switch {
			case tt.tooBig && (!errors.Is(err, sessionstore.ErrTooLarge) || data != ""):
				t.Errorf("Patch = %q, %v; want ErrTooLarge", data, err)
			case !tt.tooBig && (err != nil || data != tt.want):
				t.Errorf("Patch = %q, %v; want %s", data, err, tt.want)
			}
			if tt.want == "" {
				h.wantGone(t, key)
			} else {
				h.wantData(t, key, tt.want)
			}
			if err := h.Store.Delete(bg, key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// wantCreated checks a creation time against the window it was recorded
// in. Stores may keep it to the millisecond.
func wantCreated(t *testing.T, got, before, after time.Time) {
	t.Helper()
	if got.Before(before.Truncate(time.Millisecond)) || got.After(after) {
		t.Errorf("Created = %v, want between %v and %v", got, before, after)
	}
}

func testCreatedOnce(t *testing.T, h Harness) {
	before := h.Now()
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL, Create: true, SetCreated: true}, `{"a":1}`)
	after := h.Now()
	e, _ := h.load(t, "k", h.TTL)
	wantCreated(t, e.Meta.Created, before, after)
	if e.Meta.Expiry != 0 {
		t.Errorf("Expiry = %v, want none: none was asked for", e.Meta.Expiry)
	}
	created := e.Meta.Created

	// Later writes, with SetCreated or without, keep the first time.
	h.Advance(h.TTL / 20)
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL, SetCreated: true}, `{"b":2}`)
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL}, `{"c":3}`)
	e, _ = h.load(t, "k", h.TTL)
	if !e.Meta.Created.Equal(created) || e.Data != `{"a":1,"b":2,"c":3}` {
		t.Errorf("after more patches: %+v; want Created %v kept", e, created)
	}

	// A session created without it has none, until a write asks.
	h.create(t, "plain", `{"a":1}`)
	if e, _ := h.load(t, "plain", h.TTL); !e.Meta.Created.IsZero() {
		t.Errorf("Created = %v, want none", e.Meta.Created)
	}
	before = h.Now()
	h.patch(t, "plain", sessionstore.PatchOptions{TTL: h.TTL, SetCreated: true}, `{"b":2}`)
	e, _ = h.load(t, "plain", h.TTL)
	wantCreated(t, e.Meta.Created, before, h.Now())
}

func testOwnExpiry(t *testing.T, h Harness) {
	ownExpiry := 3 * h.TTL
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Expiry: ownExpiry}, `{"a":1}`)

	// Its renewal interval is a tenth of its own expiry, not of the ttl.
	h.Advance(h.TTL / 5)
	e, ok := h.load(t, "k", h.TTL)
	if !ok || e.Meta.Expiry != ownExpiry || e.Renewed {
		t.Fatalf("Load a fifth of the ttl after the write = %+v, found %v; want Expiry %v and no renewal (due at %v)", e, ok, ownExpiry, ownExpiry/10)
	}
	h.Advance(h.TTL / 5)
	if e, _ = h.load(t, "k", h.TTL); !e.Renewed {
		t.Errorf("Load past a tenth of its own expiry did not renew")
	}

	// A later write without Expiry keeps it, and the lifetime it gives is
	// the session's own: the session outlives the ttl.
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL}, `{"b":2}`)
	h.Advance(h.TTL + h.TTL/4)
	if e, ok = h.load(t, "k", h.TTL); !ok || e.Data != `{"a":1,"b":2}` || e.Meta.Expiry != ownExpiry {
		t.Fatalf("a ttl and a quarter after a patch: %+v, found %v; want it kept by its own expiry", e, ok)
	}
	// That load renewed it, for its own expiry too.
	if !e.Renewed {
		t.Errorf("Load due for renewal did not renew")
	}
	h.Advance(h.TTL + h.TTL/4)
	if _, ok = h.load(t, "k", h.TTL); !ok {
		t.Errorf("a ttl and a quarter after a renewing Load the session is gone: renewed for the ttl, not its own expiry")
	}

	// A shorter own expiry ends the session before the ttl would.
	h.patch(t, "short", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Expiry: h.TTL / 2}, `{"a":1}`)
	h.Advance(h.TTL / 2)
	h.wantGone(t, "short")
}

func testOwnPermanent(t *testing.T, h Harness) {
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Expiry: sessionstore.Permanent}, `{"a":1}`)
	h.patch(t, "k", sessionstore.PatchOptions{TTL: h.TTL}, `{"b":2}`) // keeps it permanent
	h.Advance(h.TTL + h.TTL/4)
	e, ok := h.load(t, "k", h.TTL)
	if !ok || e.Data != `{"a":1,"b":2}` || e.Meta.Expiry != sessionstore.Permanent {
		t.Errorf("a permanent session past the ttl: %+v, found %v", e, ok)
	}
}

func testDelete(t *testing.T, h Harness) {
	if err := h.Store.Delete(bg, "missing"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	h.patch(t, "a", sessionstore.PatchOptions{TTL: h.TTL, Create: true, SetCreated: true, Expiry: 2 * h.TTL}, `{"x":1}`)
	h.create(t, "b", `{"x":2}`)
	if err := h.Store.Delete(bg, "a"); err != nil {
		t.Fatal(err)
	}
	h.wantGone(t, "a")
	h.wantData(t, "b", `{"x":2}`)
	h.wantLen(t, 1)
	if err := h.Store.Delete(bg, "a"); err != nil {
		t.Errorf("Delete twice = %v", err)
	}
	h.wantLen(t, 1)
	// Its metadata went with it: a new session under the key has none.
	h.create(t, "a", `{"y":1}`)
	if e, _ := h.load(t, "a", h.TTL); e.Data != `{"y":1}` || e.Meta != (sessionstore.Meta{}) {
		t.Errorf("a new session under a deleted key: %+v, want no metadata", e)
	}
}

func testRename(t *testing.T, h Harness) {
	tests := []struct {
		name      string
		createOld bool
		occupyNew bool // the new key holds another session before
		wantErr   error
	}{
		{"moves", true, false, nil},
		{"over an existing key", true, true, nil},
		{"missing old", false, false, sessionstore.ErrNotFound},
		{"missing old, new exists", false, true, sessionstore.ErrNotFound},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldKey, newKey := fmt.Sprintf("old:%d", i), fmt.Sprintf("new:%d", i)
			defer func() {
				for _, k := range []string{oldKey, newKey} {
					if err := h.Store.Delete(bg, k); err != nil {
						t.Error(err)
					}
				}
			}()
			var before, after time.Time
			if tt.createOld {
				before = h.Now()
				h.patch(t, oldKey, sessionstore.PatchOptions{TTL: h.TTL, Create: true, SetCreated: true, Expiry: 2 * h.TTL}, `{"v":"old"}`)
				after = h.Now()
			}
			if tt.occupyNew {
				h.create(t, newKey, `{"v":"new"}`)
			}
			err := h.Store.Rename(bg, oldKey, newKey, sessionstore.RenameOptions{TTL: h.TTL})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Rename = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if tt.occupyNew {
					h.wantData(t, newKey, `{"v":"new"}`)
					h.wantLen(t, 1)
				} else {
					h.wantGone(t, newKey)
					h.wantLen(t, 0)
				}
				return
			}
			h.wantGone(t, oldKey)
			e, ok := h.load(t, newKey, h.TTL)
			if !ok || e.Data != `{"v":"old"}` || e.Meta.Expiry != 2*h.TTL {
				t.Fatalf("after Rename the new key has %+v, found %v; want the old data and metadata", e, ok)
			}
			wantCreated(t, e.Meta.Created, before, after)
			h.wantLen(t, 1)
		})
	}
}

func testRenameFreshLifetime(t *testing.T, h Harness) {
	h.create(t, "a1", `{"a":1}`)
	h.create(t, "a2", `{"a":2}`)
	h.Advance(h.TTL / 2)
	for _, k := range []string{"1", "2"} {
		if err := h.Store.Rename(bg, "a"+k, "b"+k, sessionstore.RenameOptions{TTL: h.TTL}); err != nil {
			t.Fatal(err)
		}
	}
	// Past the lifetime the sessions had, within the one Rename gave.
	h.Advance(h.TTL * 3 / 4)
	h.wantData(t, "b1", `{"a":1}`)
	// Past the one Rename gave (b1 has been renewed since).
	h.Advance(h.TTL / 4)
	h.wantGone(t, "b2")
}

func testExpiry(t *testing.T, h Harness) {
	h.create(t, "k", `{"a":1}`)
	h.create(t, "half", `{"a":1}`)
	h.Advance(h.TTL / 2)
	h.wantData(t, "half", `{"a":1}`)
	h.Advance(h.TTL / 2)
	h.wantGone(t, "k")
	if data, err := h.Store.Patch(bg, "k", []string{`{"b":2}`}, sessionstore.PatchOptions{TTL: h.TTL}); !errors.Is(err, sessionstore.ErrNotFound) || data != "" {
		t.Errorf("Patch(expired, Create false) = %q, %v; want ErrNotFound", data, err)
	}
	if err := h.Store.Rename(bg, "k", "k2", sessionstore.RenameOptions{TTL: h.TTL}); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Rename(expired) = %v, want ErrNotFound", err)
	}
	h.wantGone(t, "k2")
	// Create starts from nothing, not from the expired data.
	if data := h.create(t, "k", `{"b":2}`); data != `{"b":2}` {
		t.Errorf("Patch(expired, Create) = %s, want {\"b\":2}", data)
	}
}

func testSlidingRenewal(t *testing.T, h Harness) {
	ttl := h.TTL
	type step struct {
		advance time.Duration
		patch   bool // a Patch, not a Load
		found   bool
		renewed bool
	}
	steps := []step{
		{0, false, true, false},             // a write is a renewal
		{ttl / 5, false, true, true},        // past a tenth: renews
		{0, false, true, false},             // just renewed: a pure read
		{ttl * 9 / 10, false, true, true},   // past the first lifetime, within the renewed one
		{ttl / 5, true, true, false},        // a patch gives a fresh lifetime
		{0, false, true, false},             // and counts as a renewal
		{ttl * 9 / 10, false, true, true},   // within the patch's lifetime
		{ttl + ttl/20, false, false, false}, // a whole ttl since the last renewal
	}
	h.create(t, "k", `{"a":1}`)
	for i, st := range steps {
		h.Advance(st.advance)
		if st.patch {
			if data := h.patch(t, "k", sessionstore.PatchOptions{TTL: ttl}, fmt.Sprintf(`{"step":%d}`, i)); !strings.Contains(data, `"a":1`) {
				t.Fatalf("step %d: Patch = %s", i, data)
			}
			continue
		}
		e, ok := h.load(t, "k", ttl)
		if ok != st.found || e.Renewed != st.renewed {
			t.Fatalf("step %d: Load found %v, renewed %v; want %v, %v", i, ok, e.Renewed, st.found, st.renewed)
		}
	}
}

func testPermanent(t *testing.T, h Harness) {
	h.patch(t, "p", sessionstore.PatchOptions{TTL: 0, Create: true}, `{"a":1}`)
	// A ttl that expires, then ttl 0: a write makes it permanent.
	h.create(t, "q", `{"a":1}`)
	h.patch(t, "q", sessionstore.PatchOptions{TTL: 0}, `{"a":2}`)
	// And back: a write with a ttl makes it expire.
	h.patch(t, "r", sessionstore.PatchOptions{TTL: 0, Create: true}, `{"a":1}`)
	h.create(t, "r", `{"a":2}`)

	h.Advance(h.TTL + h.TTL/4)
	for key, want := range map[string]string{"p": `{"a":1}`, "q": `{"a":2}`} {
		if e, ok := h.load(t, key, 0); !ok || e.Data != want || e.Meta.Expiry != 0 {
			t.Errorf("permanent %q past the ttl: %+v, found %v; want %s", key, e, ok, want)
		}
	}
	if _, ok := h.load(t, "r", 0); ok {
		t.Error("a session written with a ttl after ttl 0 did not expire")
	}
}

func testConcurrentPatches(t *testing.T, h Harness) {
	const workers, perWorker = 32, 4
	h.create(t, "k", `{"start":true}`)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < perWorker; i++ {
				p := fmt.Sprintf(`{"w%d_%d":%d}`, w, i, i)
				if _, err := h.Store.Patch(bg, "k", []string{p}, sessionstore.PatchOptions{TTL: h.TTL}); err != nil {
					t.Errorf("Patch: %v", err)
					return
				}
				if _, err := h.Store.Load(bg, "k", h.TTL); err != nil {
					t.Errorf("Load: %v", err)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	e, _ := h.load(t, "k", h.TTL)
	var got map[string]any
	if err := json.Unmarshal([]byte(e.Data), &got); err != nil {
		t.Fatalf("stored data %q: %v", e.Data, err)
	}
	if len(got) != workers*perWorker+1 {
		t.Errorf("stored %d keys, want %d: patches were lost", len(got), workers*perWorker+1)
	}
	for w := 0; w < workers; w++ {
		for i := 0; i < perWorker; i++ {
			if v, ok := got[fmt.Sprintf("w%d_%d", w, i)]; !ok || v != float64(i) {
				t.Errorf("key w%d_%d = %v, %v", w, i, v, ok)
			}
		}
	}
	h.wantLen(t, 1)
}

func testRemovals(t *testing.T, h Harness) {
	n, ok := h.Store.(sessionstore.RemovalNotifier)
	if !ok {
		t.Skip("the store does not report removals")
	}
	if h.Sweep == nil {
		t.Fatal("the store reports removals: the harness needs Sweep")
	}
	var mu sync.Mutex
	removed := map[string][]string{}
	n.NotifyRemovals(func(key, reason string) {
		// Called outside the store's locks: the store may be used here.
		_, _ = h.Store.Load(bg, key, h.TTL)
		mu.Lock()
		defer mu.Unlock()
		removed[key] = append(removed[key], reason)
	})
	h.create(t, "short", `{"a":1}`)
	h.patch(t, "permanent", sessionstore.PatchOptions{TTL: 0, Create: true}, `{"a":1}`)
	h.patch(t, "long", sessionstore.PatchOptions{TTL: 10 * h.TTL, Create: true}, `{"a":1}`)
	h.create(t, "deleted", `{"a":1}`)
	if err := h.Store.Delete(bg, "deleted"); err != nil {
		t.Fatal(err)
	}
	h.patch(t, "regenerated", sessionstore.PatchOptions{TTL: 10 * h.TTL, Create: true}, `{"a":1}`)
	if err := h.Store.Rename(bg, "regenerated", "regenerated2", sessionstore.RenameOptions{TTL: 10 * h.TTL, Grace: h.TTL / 2}); err != nil {
		t.Fatal(err)
	}
	h.Advance(h.TTL)

	done := make(chan struct{})
	go func() { defer close(done); h.Sweep() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sweep did not return: is the function called under a lock?")
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string][]string{"short": {sessionstore.RemovedExpired}}
	if fmt.Sprint(removed) != fmt.Sprint(want) {
		t.Errorf("removals reported: %v, want %v (a Delete is not the store's own, nor a grace record's end)", removed, want)
	}
}

// movedTo returns the key a MovedError names, failing the test on any other
// result.
func movedTo(t *testing.T, what string, err error) string {
	t.Helper()
	var moved *sessionstore.MovedError
	if !errors.As(err, &moved) || !errors.Is(err, sessionstore.ErrMoved) {
		t.Fatalf("%s = %v, want a *MovedError", what, err)
	}
	return moved.To
}

// testRenameGrace: within the grace, the old key answers Load and Patch
// with the new key and holds nothing; Delete removes the record; the
// record is not a session (Inspect, Len, Rename).
func testRenameGrace(t *testing.T, h Harness) {
	h.patch(t, "old", sessionstore.PatchOptions{TTL: h.TTL, Create: true, SetCreated: true}, `{"user":"kim"}`)
	if err := h.Store.Rename(bg, "old", "new", sessionstore.RenameOptions{TTL: h.TTL, Grace: h.TTL}); err != nil {
		t.Fatal(err)
	}
	h.wantData(t, "new", `{"user":"kim"}`)
	h.wantLen(t, 1)

	e, err := h.Store.Load(bg, "old", h.TTL)
	if to := movedTo(t, "Load(old)", err); to != "new" || e != (sessionstore.Entry{}) {
		t.Errorf("Load(old) = %+v, moved to %q; want a zero Entry, moved to new", e, to)
	}
	data, err := h.Store.Patch(bg, "old", []string{`{"cart":1}`}, sessionstore.PatchOptions{TTL: h.TTL, Create: true})
	if to := movedTo(t, "Patch(old)", err); to != "new" || data != "" {
		t.Errorf("Patch(old) = %q, moved to %q; want nothing written, moved to new", data, to)
	}
	// The writer follows the move with the new key, as the handler does.
	h.patch(t, "new", sessionstore.PatchOptions{TTL: h.TTL}, `{"cart":1}`)
	h.wantData(t, "new", `{"cart":1,"user":"kim"}`)

	if in, ok := h.Store.(sessionstore.Inspector); ok {
		if _, _, err := in.Inspect(bg, "old"); !errors.Is(err, sessionstore.ErrNotFound) {
			t.Errorf("Inspect(old) = %v, want ErrNotFound: a grace record is no session", err)
		}
	}
	// A second regenerate racing the first learns where the session went,
	// and moves nothing.
	if to := movedTo(t, "Rename(old)", h.Store.Rename(bg, "old", "other", sessionstore.RenameOptions{TTL: h.TTL})); to != "new" {
		t.Errorf("Rename(old) moved to %q, want new", to)
	}
	h.wantGone(t, "other")
	h.wantLen(t, 1)

	// Without a grace, nothing stays behind.
	if err := h.Store.Rename(bg, "new", "newer", sessionstore.RenameOptions{TTL: h.TTL}); err != nil {
		t.Fatal(err)
	}
	h.wantGone(t, "new")
	h.wantData(t, "newer", `{"cart":1,"user":"kim"}`)

	// A Delete of a grace record (a logout that loaded the session just
	// before a regenerate moved it) deletes the session it moved to.
	h.create(t, "a", `{"x":1}`)
	if err := h.Store.Rename(bg, "a", "b", sessionstore.RenameOptions{TTL: h.TTL, Grace: h.TTL}); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Delete(bg, "a"); err != nil {
		t.Fatal(err)
	}
	h.wantGone(t, "a")
	h.wantGone(t, "b")
	h.wantData(t, "newer", `{"cart":1,"user":"kim"}`)
	h.wantLen(t, 1)
}

// testRenameGraceEnds: the grace record goes when its grace is over, and a
// new session may be made under the old key after that.
func testRenameGraceEnds(t *testing.T, h Harness) {
	h.create(t, "old", `{"a":1}`)
	if err := h.Store.Rename(bg, "old", "new", sessionstore.RenameOptions{TTL: 4 * h.TTL, Grace: h.TTL / 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Load(bg, "old", h.TTL); !errors.Is(err, sessionstore.ErrMoved) {
		t.Fatalf("Load(old) within the grace = %v, want ErrMoved", err)
	}
	h.Advance(h.TTL/2 + h.TTL/10)
	h.wantGone(t, "old")
	if _, err := h.Store.Patch(bg, "old", []string{`{"a":1}`}, sessionstore.PatchOptions{TTL: h.TTL}); !errors.Is(err, sessionstore.ErrNotFound) {
		t.Errorf("Patch(old) after the grace = %v, want ErrNotFound", err)
	}
	h.wantData(t, "new", `{"a":1}`)
	if h.Sweep != nil {
		h.Sweep()
	}
	h.wantLen(t, 1)
}

// testScope: a scope is recorded when the entry has none, kept by later
// writes and by Rename, and dropped with the session.
func testScope(t *testing.T, h Harness) {
	scope := "example.com:443"
	h.patch(t, "s", sessionstore.PatchOptions{TTL: h.TTL, Create: true, Scope: scope}, `{"a":1}`)
	if e, _ := h.load(t, "s", h.TTL); e.Meta.Scope != scope {
		t.Fatalf("scope %q, want %q", e.Meta.Scope, scope)
	}
	// A later write under another scope does not move it.
	h.patch(t, "s", sessionstore.PatchOptions{TTL: h.TTL, Scope: "other:443"}, `{"b":2}`)
	if e, _ := h.load(t, "s", h.TTL); e.Meta.Scope != scope || e.Data != `{"a":1,"b":2}` {
		t.Errorf("after a write with another scope: %+v", e)
	}
	if err := h.Store.Rename(bg, "s", "s2", sessionstore.RenameOptions{TTL: h.TTL}); err != nil {
		t.Fatal(err)
	}
	if e, _ := h.load(t, "s2", h.TTL); e.Meta.Scope != scope {
		t.Errorf("after Rename: scope %q, want %q", e.Meta.Scope, scope)
	}
	// A session stored without one takes the first it is written with.
	h.create(t, "legacy", `{"a":1}`)
	if e, _ := h.load(t, "legacy", h.TTL); e.Meta.Scope != "" {
		t.Errorf("a session written without a scope has %q", e.Meta.Scope)
	}
	h.patch(t, "legacy", sessionstore.PatchOptions{TTL: h.TTL, Scope: scope}, `{"b":1}`)
	if e, _ := h.load(t, "legacy", h.TTL); e.Meta.Scope != scope {
		t.Errorf("a session without a scope, written with one: scope %q", e.Meta.Scope)
	}
	// A new session under a deleted key starts without the old scope.
	if err := h.Store.Delete(bg, "s2"); err != nil {
		t.Fatal(err)
	}
	h.create(t, "s2", `{"c":1}`)
	if e, _ := h.load(t, "s2", h.TTL); e.Meta.Scope != "" {
		t.Errorf("a new session under a deleted key kept scope %q", e.Meta.Scope)
	}
}
