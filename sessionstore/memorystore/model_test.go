package memorystore

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// model is a reference implementation of the sessionstore.Store contract,
// and of the memory store's eviction order, for TestMemRandomAgainstModel.
type model struct {
	entries map[string]*modelEntry
	seq     int // numbers the sessions entering probation
}

type modelEntry struct {
	data             string
	expires, renewed int64
	seen             bool // found by a Load since it was created
	seq              int  // when it entered probation
	subject          string
}

// evictable returns the keys the store may evict when key, just created,
// passed the cap: an expired entry if there is one (any tied for nearest
// expiry: the store breaks ties by shard and heap order); else the oldest
// session on probation but key; else any tied for nearest expiry.
func (m *model) evictable(now int64, key string) map[string]bool {
	nearest := func() map[string]bool {
		var best *modelEntry
		set := map[string]bool{}
		for k, e := range m.entries {
			switch {
			case best == nil || e.expires < best.expires || (e.expires == best.expires && e.renewed < best.renewed):
				best, set = e, map[string]bool{k: true}
			case e.expires == best.expires && e.renewed == best.renewed:
				set[k] = true
			}
		}
		return set
	}
	set := nearest()
	for k := range set {
		if m.entries[k].expires <= now {
			return set
		}
		break
	}
	oldest, oldestSeq := "", 0
	for k, e := range m.entries {
		if !e.seen && k != key && (oldest == "" || e.seq < oldestSeq) {
			oldest, oldestSeq = k, e.seq
		}
	}
	if oldest != "" {
		return map[string]bool{oldest: true}
	}
	return set
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
	e.seen = true
	// The model's entries have no own expiry: the ttl is their lifetime.
	if now-e.renewed >= int64(sessionstore.RenewInterval(ttl)) {
		m.renew(e, now, ttl)
		return e.data, true, nil
	}
	return e.data, false, nil
}

func (m *model) patch(now int64, key, p string, ttl time.Duration, create bool, subject *string) (string, error) {
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
		m.seq++
		e = &modelEntry{seq: m.seq}
		m.entries[key] = e
	}
	e.data = data
	if subject != nil {
		e.subject = *subject
	}
	m.renew(e, now, ttl)
	return data, nil
}

// dropExpiredOf drops the expired sessions of subject, as a lister of the
// subject's sessions does.
func (m *model) dropExpiredOf(now int64, subject string) {
	for k, e := range m.entries {
		if e.subject == subject && e.expires <= now {
			delete(m.entries, k)
		}
	}
}

// listSubject returns the keys of subject's live sessions, the most
// recently renewed first (then by key), as ListSubject lists them.
func (m *model) listSubject(now int64, subject string) []string {
	if subject == "" {
		return nil // no session has the empty subject
	}
	m.dropExpiredOf(now, subject)
	var keys []string
	for k, e := range m.entries {
		if e.subject == subject {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(m.entries[b].renewed, m.entries[a].renewed), cmp.Compare(a, b))
	})
	return keys
}

// deleteSubject deletes subject's live sessions but those keep keeps.
func (m *model) deleteSubject(now int64, subject string, keep map[string]bool) int {
	n := 0
	for _, k := range m.listSubject(now, subject) {
		if !keep[k] {
			delete(m.entries, k)
			n++
		}
	}
	return n
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
	if !e.seen { // queued anew
		m.seq++
		e.seq = m.seq
	}
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
		for _, maxSessions := range []int{0, 12} {
			for seed := int64(1); seed <= 5; seed++ {
				t.Run(fmt.Sprintf("%s/cap%d/%d", layout.name, maxSessions, seed), func(t *testing.T) {
					s, c := newTestStore(t, maxSessions)
					if layout.collide {
						s.hashMask = 0x3f // two hash values a shard
					}
					if layout.compactly {
						setShardLimits(s, shardLimits{compactMinArena: 32, compactMinSlots: 2, maxArena: maxArena})
					}
					testMemRandomAgainstModel(t, s, c, seed, maxSessions)
				})
			}
		}
	}
}

// testMemRandomAgainstModel runs the operations; with maxSessions, the
// model checks each eviction against the ones it allows.
func testMemRandomAgainstModel(t *testing.T, s *memStore, c *fakeClock, seed int64, maxSessions int) {
	evictions := 0
	defer func() {
		if maxSessions > 0 && evictions == 0 && !t.Failed() {
			t.Error("the run never evicted: it does not exercise the eviction order")
		}
	}()
	{
		{
			m := &model{entries: map[string]*modelEntry{}}
			r := rand.New(rand.NewSource(seed))
			ttls := []time.Duration{0, time.Second, 5 * time.Second, time.Minute}
			patches := []string{`{"a":1}`, `{"b":{"c":2}}`, `{"a":null}`, `{"b":{"c":null}}`, `{"b":null}`, `{}`, `{"a":"é"}`,
				`{"s":"a longer value, for data that outgrows its place"}`, `{"s":null}`}
			key := func() string { return fmt.Sprintf("k%d", r.Intn(40)) }
			subjects := []string{"", "alice", "bob", "carol"}
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
					var subject *string
					if r.Intn(2) == 0 {
						subject = &subjects[r.Intn(len(subjects))]
					}
					desc = fmt.Sprintf("Patch(%s, %s, %v, %v, subject %v)", k, p, ttl, create, subject)
					if subject != nil {
						desc = fmt.Sprintf("Patch(%s, %s, %v, %v, subject %q)", k, p, ttl, create, *subject)
					}
					d1, e1 := s.Patch(bg, k, []string{p}, sessionstore.PatchOptions{TTL: ttl, Create: create, Subject: subject})
					_, existed := m.entries[k]
					d2, e2 := m.patch(now, k, p, ttl, create, subject)
					if d1 != d2 || !errors.Is(e1, e2) {
						t.Fatalf("op %d %s = %q, %v; model %q, %v", i, desc, d1, e1, d2, e2)
					}
					if _, held := m.entries[k]; maxSessions > 0 && held && !existed && len(m.entries) > maxSessions {
						allowed := m.evictable(now, k)
						var gone []string
						for mk := range m.entries {
							if _, ok := entryOf(s, mk); !ok {
								gone = append(gone, mk)
							}
						}
						if len(gone) != 1 || !allowed[gone[0]] {
							t.Fatalf("op %d %s evicted %q; the model allows one of %v", i, desc, gone, allowed)
						}
						delete(m.entries, gone[0])
						evictions++
					}
				case op < 75:
					k := key()
					desc = fmt.Sprintf("Delete(%s)", k)
					if err := s.Delete(bg, k); err != nil {
						t.Fatalf("op %d %s: %v", i, desc, err)
					}
					delete(m.entries, k)
				case op < 80:
					subject := subjects[r.Intn(len(subjects))]
					limit := []int{0, 1, 3, sessionstore.MaxSubjectSessions}[r.Intn(4)]
					desc = fmt.Sprintf("ListSubject(%q, %d)", subject, limit)
					list, total, err := s.ListSubject(bg, "", subject, limit)
					want := m.listSubject(now, subject)
					var got []string
					for _, ss := range list {
						got = append(got, ss.Key)
						if me := m.entries[ss.Key]; me == nil || ss.LastSeen.UnixNano() != me.renewed || ss.Meta.Subject != subject {
							t.Fatalf("op %d %s listed %s last seen %v, subject %q; model %+v", i, desc, ss.Key, ss.LastSeen, ss.Meta.Subject, me)
						}
					}
					if err != nil || total != len(want) || !slices.Equal(got, want[:min(limit, len(want))]) {
						t.Fatalf("op %d %s = %q, total %d, %v; model %q", i, desc, got, total, err, want)
					}
				case op < 83:
					subject := subjects[r.Intn(len(subjects))]
					keep := map[string]bool{}
					for range r.Intn(3) {
						keep[key()] = true
					}
					desc = fmt.Sprintf("DeleteSubject(%q, keep %v)", subject, keep)
					n1, err := s.DeleteSubject(bg, "", subject, func(ss sessionstore.SubjectSession) bool { return keep[ss.Key] })
					if n2 := m.deleteSubject(now, subject, keep); err != nil || n1 != n2 {
						t.Fatalf("op %d %s = %d, %v; model %d", i, desc, n1, err, n2)
					}
				case op < 90:
					from, to, ttl := key(), key(), ttls[r.Intn(len(ttls))]
					desc = fmt.Sprintf("Rename(%s, %s, %v)", from, to, ttl)
					e1 := s.Rename(bg, from, to, sessionstore.RenameOptions{TTL: ttl})
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
					if !ok || e.data != me.data || e.expires != me.expires || e.renewed != me.renewed || string(tailSubject(e.tail)) != me.subject {
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
