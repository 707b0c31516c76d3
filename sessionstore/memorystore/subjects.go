package memorystore

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// The subject index finds a subject's sessions without a scan of the
// store. It maps the hash of a subject to the hashes of the keys of its
// sessions: numbers only, so it costs a few bytes a session and holds no
// string the collector must walk. The shards stay the truth: a hash is
// resolved to its entries in the shard the key hash picks (the shard's
// index, and its collided keys), and only an entry that is live, a
// session (not a grace record), of exactly the subject and under the
// prefix is listed. Hashes that collide, of subjects or of keys, cost
// another lookup, never a wrong answer; the key hashes are a multiset, so
// two keys of one hash and one subject keep each other's place.
//
// The index is kept exact, not lazily: every change of a session's subject
// or existence updates it, under the session's shard lock, so it never
// grows past the sessions held. A session enters it where one is inserted
// (Patch's creation, put for a file or a journal) or given a subject
// (memStore.setTail); it leaves it in drop, which Delete, expiry sweeps,
// eviction, an emptying Patch and put all go through; Rename moves it.
// Only sessions that expired and are not swept yet are stale in it; a
// lister that finds one drops it.
//
// Lock order: a shard lock (two shards' in index order, for a Rename)
// before subjectIndex.mu. The index lock is held for a map update or a
// copy of one subject's hashes only, never while a shard lock is taken;
// listers copy the hashes, let the index lock go, then lock each shard on
// its own. subjectIndex.mu and the journal's lock are never held together.

// subjectIndex maps subject hashes to key hashes. Most subjects have one
// session, or have it for long (a user signed in on one device): they are
// in one, a map of numbers only, which the collector does not walk; a
// subject of more sessions is in many.
type subjectIndex struct {
	mu   sync.Mutex
	one  map[uint64]uint64  // subject hash → its session's key hash
	many map[uint64]*keySet // subject hash → its sessions' key hashes, 2 or more
}

// keySet is a multiset of key hashes: a slice while it is small, which is
// the common case (a user's few devices), a map of counts once it is
// large, so that a subject of many sessions does not make each removal a
// scan of them all.
type keySet struct {
	few  []uint64
	many map[uint64]uint32
	n    int // elements, repeats counted
}

const (
	// keySetMax is the most hashes a keySet keeps in its slice.
	keySetMax = 32
	// keySetMin is how few a map holds before it turns back into a
	// slice, so that memory follows the sessions down.
	keySetMin = 8
)

func newSubjectIndex() subjectIndex {
	return subjectIndex{one: make(map[uint64]uint64), many: make(map[uint64]*keySet)}
}

func (ks *keySet) add(h uint64) {
	ks.n++
	if ks.many != nil {
		ks.many[h]++
		return
	}
	if len(ks.few) < keySetMax {
		ks.few = append(ks.few, h)
		return
	}
	ks.many = make(map[uint64]uint32, 2*keySetMax)
	for _, x := range ks.few {
		ks.many[x]++
	}
	ks.many[h]++
	ks.few = nil
}

// remove removes one h, and reports whether there was one.
func (ks *keySet) remove(h uint64) bool {
	if ks.many != nil {
		c, ok := ks.many[h]
		if !ok {
			return false
		}
		if c > 1 {
			ks.many[h] = c - 1
		} else {
			delete(ks.many, h)
		}
		ks.n--
		if ks.n <= keySetMin {
			ks.few = make([]uint64, 0, ks.n)
			for x, c := range ks.many {
				for range c {
					ks.few = append(ks.few, x)
				}
			}
			ks.many = nil
		}
		return true
	}
	j := slices.Index(ks.few, h)
	if j < 0 {
		return false
	}
	last := len(ks.few) - 1
	ks.few[j] = ks.few[last]
	ks.few = ks.few[:last]
	ks.n--
	return true
}

// appendUnique appends the distinct hashes of the set to dst.
func (ks *keySet) appendUnique(dst []uint64) []uint64 {
	if ks.many != nil {
		for h := range ks.many {
			dst = append(dst, h)
		}
		return dst
	}
	start := len(dst)
	dst = append(dst, ks.few...)
	slices.Sort(dst[start:])
	return append(dst[:start], slices.Compact(dst[start:])...)
}

// add records that the session under key hash h has the subject of hash
// subject.
func (x *subjectIndex) add(subject, h uint64) {
	x.mu.Lock()
	x.addLocked(subject, h)
	x.mu.Unlock()
}

func (x *subjectIndex) addLocked(subject, h uint64) {
	if ks := x.many[subject]; ks != nil {
		ks.add(h)
		return
	}
	if first, ok := x.one[subject]; ok {
		delete(x.one, subject)
		x.many[subject] = &keySet{few: []uint64{first, h}, n: 2}
		return
	}
	x.one[subject] = h
}

// remove forgets one session under key hash h of the subject of hash
// subject.
func (x *subjectIndex) remove(subject, h uint64) {
	x.mu.Lock()
	x.removeLocked(subject, h)
	x.mu.Unlock()
}

func (x *subjectIndex) removeLocked(subject, h uint64) {
	if ks := x.many[subject]; ks != nil {
		if ks.remove(h) && ks.n == 1 {
			delete(x.many, subject)
			x.one[subject] = ks.few[0] // a set of one is a slice
		}
		return
	}
	if only, ok := x.one[subject]; ok && only == h {
		delete(x.one, subject)
	}
}

// move moves a session of the subject of hash subject from key hash from
// to key hash to, at once: a lister sees it under one or the other.
func (x *subjectIndex) move(subject, from, to uint64) {
	x.mu.Lock()
	x.removeLocked(subject, from)
	x.addLocked(subject, to)
	x.mu.Unlock()
}

// keys returns the distinct key hashes recorded for the subject of hash
// subject.
func (x *subjectIndex) keys(subject uint64) []uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ks := x.many[subject]; ks != nil {
		return ks.appendUnique(make([]uint64, 0, ks.n))
	}
	if only, ok := x.one[subject]; ok {
		return []uint64{only}
	}
	return nil
}

// The store's side: its changes of sessions keep the index, under the
// shard lock of the session's key.

// indexAdd records slot i of sh in the index, when it has a subject.
func (s *memStore) indexAdd(sh *memShard, i uint32) {
	if subject := sh.subject(i); len(subject) > 0 {
		s.subjects.add(s.hashBytes(subject), sh.slots[i].hash)
	}
}

// indexRemove forgets slot i of sh in the index, when it has a subject.
func (s *memStore) indexRemove(sh *memShard, i uint32) {
	if subject := sh.subject(i); len(subject) > 0 {
		s.subjects.remove(s.hashBytes(subject), sh.slots[i].hash)
	}
}

// A regenerate racing a lister ("sign out everywhere") moves a session to
// a key the lister's copy of the hashes does not hold. The lister follows
// the grace record the move left, as Delete does; a move without a grace
// leaves none, so the lister then looks again at the subject's hashes,
// where the index has put the new key, up to subjectPasses times. Each
// pass looks only at hashes it had not seen.
const subjectPasses = 8

// subjectGraceHops bounds how many grace records a lister follows, more
// than Delete does (maxGraceHops): a chain of them is as long as the
// regenerates of one session within a grace, and a lister that follows
// fewer than were made while it looked has to look again.
const subjectGraceHops = 64

// subjectCandidate is a session found for a subject.
type subjectCandidate struct {
	sessionstore.SubjectSession
	renewed int64
}

// findSubject returns the live sessions of subject under keys beginning
// with prefix. Sessions of the subject that expired, and are not swept
// yet, it drops.
func (s *memStore) findSubject(ctx context.Context, prefix, subject string) ([]subjectCandidate, error) {
	if subject == "" {
		return nil, nil
	}
	subjectHash := s.hash(subject)
	var found []subjectCandidate
	seen := map[uint64]bool{}
	for pass := 0; pass < subjectPasses; pass++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("memory session store: listing a subject's sessions: %w", err)
		}
		changed := false
		fresh := 0
		for _, h := range s.subjects.keys(subjectHash) {
			if seen[h] {
				continue
			}
			seen[h] = true
			fresh++
			var ok bool
			found, ok = s.resolveSubject(found, h, prefix, subject)
			changed = changed || !ok
		}
		if fresh == 0 || !changed {
			break
		}
	}
	// Two passes may each have found a key whose session moved between
	// them, and so did its hash; a key is listed once.
	slices.SortFunc(found, func(a, b subjectCandidate) int {
		return cmp.Or(cmp.Compare(b.renewed, a.renewed), cmp.Compare(a.Key, b.Key))
	})
	found = slices.CompactFunc(found, func(a, b subjectCandidate) bool { return a.Key == b.Key })
	return found, nil
}

// resolveSubject appends to found the live sessions under key hash h of
// subject and under prefix. It reports false when h led to no session of
// the subject at all (it was deleted, renamed or expired since the index
// was read, or has another subject of the same hash, or another prefix):
// then the subject's hashes may have changed meanwhile.
func (s *memStore) resolveSubject(found []subjectCandidate, h uint64, prefix, subject string) ([]subjectCandidate, bool) {
	sh := s.shardOf(h)
	now := s.now()
	hit, expired := false, false
	var movedTo []string
	sh.mu.RLock()
	visit := func(i uint32) {
		e := &sh.slots[i]
		if e.hash != h {
			return
		}
		if e.moved && !e.expired(now) {
			movedTo = append(movedTo, sh.data(i))
			return
		}
		if e.moved || string(sh.subject(i)) != subject {
			return
		}
		hit = true
		if e.expired(now) {
			expired = true
			return
		}
		key := sh.key(i)
		if !bytes.HasPrefix(key, []byte(prefix)) {
			return
		}
		found = append(found, subjectCandidate{
			SubjectSession: sessionstore.SubjectSession{Key: string(key), Meta: sh.fullMeta(i), LastSeen: time.Unix(0, e.renewed)},
			renewed:        e.renewed,
		})
	}
	if i, ok := sh.index[h]; ok {
		visit(i)
	}
	for _, i := range sh.collided { // keys whose hash another key has: rare
		visit(i)
	}
	sh.mu.RUnlock()
	if expired {
		s.dropExpiredOf(h, subject)
	}
	for _, to := range movedTo {
		var ok bool
		found, ok = s.resolveMoved(found, to, prefix, subject)
		hit = hit || ok
	}
	return found, hit
}

// resolveMoved appends to found the session a grace record names, key,
// when it is a live session of subject under prefix, and reports whether
// it is of subject. It follows grace records subjectGraceHops deep.
func (s *memStore) resolveMoved(found []subjectCandidate, key, prefix, subject string) ([]subjectCandidate, bool) {
	for range subjectGraceHops {
		h := s.hash(key)
		sh := s.shardOf(h)
		now := s.now()
		sh.mu.RLock()
		i, ok := sh.find(h, key)
		switch {
		case !ok || sh.slots[i].expired(now):
			sh.mu.RUnlock()
			return found, false
		case sh.slots[i].moved:
			key = sh.data(i)
			sh.mu.RUnlock()
			continue
		case string(sh.subject(i)) != subject:
			sh.mu.RUnlock()
			return found, false
		}
		if strings.HasPrefix(key, prefix) {
			found = append(found, subjectCandidate{
				SubjectSession: sessionstore.SubjectSession{Key: key, Meta: sh.fullMeta(i), LastSeen: time.Unix(0, sh.slots[i].renewed)},
				renewed:        sh.slots[i].renewed,
			})
		}
		sh.mu.RUnlock()
		return found, true
	}
	return found, false
}

// dropExpiredOf drops the expired sessions of subject under key hash h,
// which a lister found, rather than wait for the sweeper.
func (s *memStore) dropExpiredOf(h uint64, subject string) {
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	expiredOf := func(i uint32) bool {
		e := &sh.slots[i]
		return e.hash == h && !e.moved && e.expired(now) && string(sh.subject(i)) == subject
	}
	// A drop may compact the shard and renumber its slots: each is found
	// anew, and dropped outside the walk of the collided keys.
	for {
		i, ok := sh.index[h]
		if !ok || !expiredOf(i) {
			ok = false
			for _, j := range sh.collided {
				if expiredOf(j) {
					i, ok = j, true
					break
				}
			}
		}
		if !ok {
			return
		}
		s.drop(sh, i)
		s.version.Add(1)
	}
}

// ListSubject implements sessionstore.SubjectIndex. A limit of 0 or less
// lists none, and only counts them.
func (s *memStore) ListSubject(ctx context.Context, prefix, subject string, limit int) ([]sessionstore.SubjectSession, int, error) {
	found, err := s.findSubject(ctx, prefix, subject)
	if err != nil {
		return nil, 0, err
	}
	limit = min(max(limit, 0), sessionstore.MaxSubjectSessions, len(found))
	list := make([]sessionstore.SubjectSession, limit)
	for i := range list {
		list[i] = found[i].SubjectSession
	}
	return list, len(found), nil
}

// DeleteSubject implements sessionstore.SubjectIndex. keep runs outside
// the store's locks, so it may use the store.
func (s *memStore) DeleteSubject(ctx context.Context, prefix, subject string, keep func(sessionstore.SubjectSession) bool) (int, error) {
	deleted := 0
	kept := map[string]bool{}
	// Each round deletes what the last one found; it looks again when a
	// session it found had changed before it could delete it (a
	// regenerate moved it: the next round finds it under its new key).
	for round := 0; round < subjectPasses; round++ {
		found, err := s.findSubject(ctx, prefix, subject)
		if err != nil {
			return deleted, err
		}
		again := false
		for _, c := range found {
			if kept[c.Key] {
				continue
			}
			if keep != nil && keep(c.SubjectSession) {
				kept[c.Key] = true
				continue
			}
			if s.deleteOfSubject(c.Key, prefix, subject) {
				deleted++
			} else {
				again = true
			}
		}
		if !again {
			break
		}
	}
	return deleted, nil
}

// deleteOfSubject deletes the session under key, as Delete does, if it
// still is a live session of subject, and reports whether it did. When a
// regenerate has moved it since it was found, it follows the grace record
// to the session's new key (but not to a key without prefix).
func (s *memStore) deleteOfSubject(key, prefix, subject string) bool {
	for range subjectGraceHops {
		h := s.hash(key)
		sh := s.shardOf(h)
		sh.mu.Lock()
		i, ok := sh.find(h, key)
		switch {
		case !ok || sh.slots[i].expired(s.now()) || !strings.HasPrefix(key, prefix):
			sh.mu.Unlock()
			return false
		case sh.slots[i].moved:
			key = sh.data(i)
			sh.mu.Unlock()
			continue
		case string(sh.subject(i)) != subject:
			sh.mu.Unlock()
			return false
		}
		s.drop(sh, i)
		s.version.Add(1)
		sh.mu.Unlock()
		return true
	}
	return false
}
