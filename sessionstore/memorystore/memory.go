package memorystore

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

const (
	// memShardCount spreads keys over independently locked maps, so
	// concurrent sessions rarely contend for one lock.
	memShardCount = 32

	// DefaultMaxSessions is the memory store's default capacity.
	DefaultMaxSessions = 1_000_000

	// defaultSweepInterval is how often expired entries are dropped.
	defaultSweepInterval = time.Minute

	// defaultPersistInterval is how often a store with a file saves.
	defaultPersistInterval = time.Minute

	// sweepBatch bounds how many entries one lock hold of the sweeper
	// removes, so a mass expiry never stalls requests of that shard.
	sweepBatch = 1024
)

// memStore is the in-process store: independently locked shards, each
// with an index of its entries, a heap of them ordered by expiry and a
// queue of those on probation, laid out without pointers (memshard.go).
// The heap gives the sweeper the expired entries without a scan; the
// probation queues give eviction the oldest sessions never seen again, and
// the heap, when there are none, the entry nearest its expiry.
type memStore struct {
	shards [memShardCount]memShard
	seed   maphash.Seed
	// hashMask is all ones; tests narrow it to make keys' hashes collide.
	hashMask uint64
	now      func() int64 // unix nanoseconds; replaced in tests

	// subjects finds sessions by their subject (subjects.go). Its lock
	// comes after the shard locks.
	subjects subjectIndex

	count       atomic.Int64
	maxSessions atomic.Int64
	// probSeq numbers the sessions entering probation, store-wide, so
	// that eviction can tell the oldest across shards.
	probSeq atomic.Uint32

	logger      atomic.Pointer[zap.Logger]
	evictionLog *evictionLog
	onRemove    atomic.Pointer[func(key, reason string)]

	// version counts changes, so a save can tell when nothing changed.
	version atomic.Uint64
	persist persister
	jnl     atomic.Pointer[journal] // nil without a persist file

	// users are the MemoryStore modules that share this store, with the
	// settings each asks for; see applySettings.
	usersMu sync.Mutex
	users   map[any]memSettings
	userSeq uint64

	stop        chan struct{}
	sweepDone   chan struct{}
	persistDone chan struct{}
}

// memSettings are what one MemoryStore module asks of the shared store.
type memSettings struct {
	maxSessions     int
	persist         string
	persistInterval time.Duration
	logger          *zap.Logger
	seq             uint64 // newer users have larger numbers
}

// addUser records a module's settings and applies the merged settings.
func (s *memStore) addUser(user any, st memSettings) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.users == nil {
		s.users = map[any]memSettings{}
	}
	s.userSeq++
	st.seq = s.userSeq
	s.users[user] = st
	s.applySettings()
}

// removeUser forgets a module's settings: after a failed or replaced
// config, the settings of the configs still running apply again.
func (s *memStore) removeUser(user any) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	delete(s.users, user)
	if len(s.users) > 0 {
		s.applySettings()
	}
}

// applySettings merges the users' settings: the newest user that sets
// max_sessions decides it (else the default), the newest that names a
// persist file decides the file and its interval, so one handler with a
// bare `store memory` cannot turn off another's persistence; the newest
// user's logger logs. Callers hold usersMu.
func (s *memStore) applySettings() {
	var maxFrom, persistFrom, newest memSettings
	for _, u := range s.users {
		if u.maxSessions > 0 && u.seq > maxFrom.seq {
			maxFrom = u
		}
		if u.persist != "" && u.seq > persistFrom.seq {
			persistFrom = u
		}
		if u.seq > newest.seq {
			newest = u
		}
	}
	s.setMaxSessions(maxFrom.maxSessions)
	if p := s.persist.path.Load(); p != nil && *p != "" && *p != persistFrom.persist {
		// The file is about to change or be dropped (a reload, or the
		// shutdown of the config that named it): bring it up to date
		// first, so that it holds what was in memory when it was let go.
		if err := s.save(); err != nil {
			s.logger.Load().Error("saving the memory session store before its file changes failed", zap.Error(err))
		}
	}
	s.setPersist(persistFrom.persist, persistFrom.persistInterval)
	if newest.logger != nil {
		s.setLogger(newest.logger)
	}
}

// newPersistentMemStore makes a store and starts its sweeper, which runs
// every sweepInterval until Destruct. With a file, the store loads it now,
// saves to it every persistInterval when it changed, and on Destruct. An
// empty path is no file.
func newPersistentMemStore(maxSessions int, sweepInterval time.Duration, logger *zap.Logger, path string, persistInterval time.Duration) *memStore {
	s := &memStore{
		seed:        maphash.MakeSeed(),
		hashMask:    math.MaxUint64,
		now:         func() int64 { return time.Now().UnixNano() },
		stop:        make(chan struct{}),
		sweepDone:   make(chan struct{}),
		persistDone: make(chan struct{}),
		subjects:    newSubjectIndex(),
	}
	s.evictionLog = &evictionLog{every: evictionLogEvery, log: s.logEvictions}
	for i := range s.shards {
		s.shards[i] = newMemShard()
	}
	s.setMaxSessions(maxSessions)
	s.setLogger(logger)
	s.storePersist(path, persistInterval)
	if path != "" {
		s.loadPersisted(path) // and opens its journal
	}
	go s.sweepLoop(sweepInterval)
	go s.persistLoop()
	return s
}

func (s *memStore) setMaxSessions(n int) {
	if n <= 0 {
		n = DefaultMaxSessions
	}
	s.maxSessions.Store(int64(n))
}

func (s *memStore) setLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	s.logger.Store(l)
}

// hash returns the hash of key that picks its shard and indexes it there.
func (s *memStore) hash(key string) uint64 {
	return maphash.String(s.seed, key) & s.hashMask
}

// hashBytes is hash of a key, or subject, in bytes.
func (s *memStore) hashBytes(b []byte) uint64 {
	return maphash.Bytes(s.seed, b) & s.hashMask
}

func (s *memStore) shardOf(h uint64) *memShard { return &s.shards[h%memShardCount] }

// Load implements sessionstore.Store.
func (s *memStore) Load(_ context.Context, key string, ttl time.Duration) (sessionstore.Entry, error) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()

	sh.mu.RLock()
	i, ok := sh.find(h, key)
	if !ok || sh.slots[i].expired(now) {
		sh.mu.RUnlock()
		return sessionstore.Entry{}, sessionstore.ErrNotFound
	}
	e := &sh.slots[i]
	if e.moved {
		err := &sessionstore.MovedError{To: sh.data(i)}
		sh.mu.RUnlock()
		return sessionstore.Entry{}, err
	}
	// Found again: the session leaves probation. Set atomically under the
	// read lock, once; the queue's item goes stale and is skipped later.
	// Journaled under the read lock: any change to the key waits for the
	// write lock, so the records of a key stay in order.
	if e.markSeen() {
		s.journalKey(opSeen, key)
	}
	_, interval := e.lifetime(ttl)
	due := now-e.renewed >= int64(interval)
	entry := sh.entry(i)
	sh.mu.RUnlock()
	if !due {
		return entry, nil
	}

	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok = sh.find(h, key)
	if !ok || sh.slots[i].expired(now) {
		return sessionstore.Entry{}, sessionstore.ErrNotFound
	}
	e = &sh.slots[i]
	if e.moved { // moved away between the two locks
		return sessionstore.Entry{}, &sessionstore.MovedError{To: sh.data(i)}
	}
	entry = sh.entry(i)
	t, interval := e.lifetime(ttl)
	// Another request may have renewed it between the two locks.
	if now-e.renewed < int64(interval) {
		return entry, nil
	}
	e.renew(now, t)
	sh.fix(e.pos)
	s.journalRenew(key, e)
	s.version.Add(1)
	entry.Renewed = true
	return entry, nil
}

// Inspect implements sessionstore.Inspector.
func (s *memStore) Inspect(_ context.Context, key string) (sessionstore.Entry, time.Duration, error) {
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i, ok := sh.find(h, key)
	if !ok || sh.slots[i].expired(now) || sh.slots[i].moved {
		return sessionstore.Entry{}, 0, sessionstore.ErrNotFound
	}
	e := &sh.slots[i]
	entry := sh.entry(i)
	if e.expires == math.MaxInt64 {
		return entry, 0, nil
	}
	return entry, time.Duration(e.expires - now), nil
}

// notifyRemoved reports removals the store made on its own.
func (s *memStore) notifyRemoved(keys []string, reason string) {
	fn := s.onRemove.Load()
	if fn == nil {
		return
	}
	for _, k := range keys {
		(*fn)(k, reason)
	}
}

// Patch implements sessionstore.Store.
func (s *memStore) Patch(_ context.Context, key string, patches []string, opts sessionstore.PatchOptions) (string, error) {
	if err := checkPatchMeta(opts); err != nil {
		return "", err
	}
	h := s.hash(key)
	sh := s.shardOf(h)
	now := s.now()

	sh.mu.Lock()
	i, ok := sh.find(h, key)
	if ok && sh.slots[i].expired(now) {
		s.drop(sh, i)
		ok = false
	}
	if ok && sh.slots[i].moved {
		err := &sessionstore.MovedError{To: sh.data(i)}
		sh.mu.Unlock()
		return "", err
	}
	if !ok && !opts.Create {
		sh.mu.Unlock()
		return "", sessionstore.ErrNotFound
	}
	var oldTail []byte
	if ok {
		oldTail = sh.tail(i)
	}
	// The new tail is a copy, which a compaction (in ensureArenaFits)
	// leaves alone; it is used only when it changed.
	tail, retail := newTail(oldTail, opts)
	current := ""
	if ok {
		current = sh.data(i)
	}
	// The merge runs under the lock: that is what makes concurrent
	// patches of one session compose instead of overwriting each other.
	data, err := mergepatch.Apply(current, patches)
	if err == nil && sessionstore.OverSize(data, current, opts.MaxSize) {
		err = fmt.Errorf("%w: %d bytes, the limit is %d", sessionstore.ErrTooLarge, len(data), opts.MaxSize)
	}
	if err == nil && data != mergepatch.EmptyData {
		need := len(data) // new data longer than the old goes to the arena's end
		switch {
		case !ok:
			need += len(key)
		case len(data) <= int(sh.slots[i].dataLen):
			need = 0 // overwritten in place
		}
		if retail && ok {
			need += len(key) + len(tail) // the key moves with its new tail
		}
		if !ok {
			need += len(tail)
		}
		if err = sh.ensureArenaFits(need); err == nil && ok {
			i, _ = sh.find(h, key) // ensureArenaFits may have compacted the shard
		}
	}
	if err != nil {
		sh.mu.Unlock()
		return "", err
	}
	var inserted probItem
	switch {
	case data == mergepatch.EmptyData && ok:
		s.drop(sh, i)
	case data == mergepatch.EmptyData:
	case ok:
		sh.setData(i, data)
		if retail {
			s.setTail(sh, i, tail)
		}
		e := &sh.slots[i]
		e.written(now, opts)
		sh.fix(e.pos)
		s.journalPut(sh, i)
		sh.maybeCompact()
	default:
		e := memEntry{probSeq: s.nextProbSeq()} // new: on probation
		e.written(now, opts)
		slot := sh.insert(h, key, tail, data, e)
		s.indexAdd(sh, slot)
		s.journalPut(sh, slot)
		s.count.Add(1)
		inserted = probItem{slot: slot, seq: e.probSeq}
	}
	sh.mu.Unlock()
	s.version.Add(1)

	if inserted.seq != 0 {
		s.enforceCap(inserted)
	}
	return data, nil
}

// checkPatchMeta fails when a Patch's Meta fields are out of bounds.
func checkPatchMeta(opts sessionstore.PatchOptions) error {
	m := metaTail{scope: opts.Scope, userAgent: opts.UserAgent, addr: opts.Addr}
	if opts.Subject != nil {
		m.subject = *opts.Subject
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("memory session store: %w", err)
	}
	if opts.Persist > sessionstore.PersistOff {
		return fmt.Errorf("memory session store: unknown persist value %d", opts.Persist)
	}
	return nil
}

// newTail returns the meta tail a Patch with opts gives an entry whose
// tail is old (nil for a new entry), and whether it differs from old: a
// scope is recorded on an entry that has none; a subject, when asked,
// replaces the entry's (an empty one removes it); a user agent and an
// address, when given, replace the entry's. A write that changes none of
// them, as most do, allocates nothing.
func newTail(old []byte, opts sessionstore.PatchOptions) ([]byte, bool) {
	scope, subject, userAgent, addr := tailFields(old)
	setScope := opts.Scope != "" && len(scope) == 0
	setSubject := opts.Subject != nil && *opts.Subject != string(subject)
	setUserAgent := opts.UserAgent != "" && opts.UserAgent != string(userAgent)
	setAddr := opts.Addr != "" && opts.Addr != string(addr)
	if !setScope && !setSubject && !setUserAgent && !setAddr {
		return old, false
	}
	m := metaTail{scope: string(scope), subject: string(subject), userAgent: string(userAgent), addr: string(addr)}
	if setScope {
		m.scope = opts.Scope
	}
	if setSubject {
		m.subject = *opts.Subject
	}
	if setUserAgent {
		m.userAgent = opts.UserAgent
	}
	if setAddr {
		m.addr = opts.Addr
	}
	return m.encode(), true
}

// setTail gives slot i of sh a new meta tail, and keeps the subject
// index: a session whose subject changes leaves the old subject's
// sessions and joins the new one's.
func (s *memStore) setTail(sh *memShard, i uint32, tail []byte) {
	oldSubject := sh.subject(i)
	newSubject := tailSubject(tail)
	if bytes.Equal(oldSubject, newSubject) {
		sh.setTail(i, tail)
		return
	}
	s.indexRemove(sh, i)
	sh.setTail(i, tail)
	s.indexAdd(sh, i)
}

// Delete implements sessionstore.Store.
func (s *memStore) Delete(_ context.Context, key string) error {
	return s.deleteFollowing(key, 0)
}

// deleteFollowing deletes key, and the session its grace record names,
// depth grace records deep.
func (s *memStore) deleteFollowing(key string, depth int) error {
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	to := ""
	if i, ok := sh.find(h, key); ok {
		if sh.slots[i].moved && !sh.slots[i].expired(s.now()) {
			to = sh.data(i)
		}
		s.drop(sh, i)
		s.version.Add(1)
	}
	sh.mu.Unlock()
	if to != "" && depth < maxGraceHops {
		// A grace record's session goes too: a logout that loaded the
		// session just before a regenerate moved it must not be lost.
		return s.deleteFollowing(to, depth+1)
	}
	return nil
}

// maxGraceHops bounds how many grace records a Delete follows: they chain
// only through regenerates within a grace.
const maxGraceHops = 4

// drop removes slot i of sh, keeping the count of sessions, which grace
// records are not, and journals the removal of a session (a delete, an
// expiry or an eviction alike).
func (s *memStore) drop(sh *memShard, i uint32) {
	if !sh.slots[i].moved {
		s.indexRemove(sh, i)
		s.count.Add(-1)
		if s.jnl.Load() != nil {
			s.journalKey(opDel, string(sh.key(i)))
		}
	}
	sh.remove(i)
}

// Rename implements sessionstore.Store.
func (s *memStore) Rename(_ context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	fromHash, toHash := s.hash(oldKey), s.hash(newKey)
	fi, ti := int(fromHash%memShardCount), int(toHash%memShardCount)
	from, to := &s.shards[fi], &s.shards[ti]
	unlock := s.lockPair(fi, ti)
	defer unlock()

	now := s.now()
	i, ok := from.find(fromHash, oldKey)
	if !ok {
		return sessionstore.ErrNotFound
	}
	if from.slots[i].moved && !from.slots[i].expired(now) {
		return &sessionstore.MovedError{To: from.data(i)}
	}
	if from.slots[i].expired(now) {
		s.drop(from, i)
		return sessionstore.ErrNotFound
	}
	// The arena first, so that a rename that does not fit loses nothing.
	moving := len(newKey) + int(from.slots[i].tailLen) + int(from.slots[i].dataLen)
	// A rename to the same key renews it; a grace record there would be a
	// second entry under the key, pointing at itself.
	grace := opts.Grace > 0 && oldKey != newKey
	record := 0 // the grace record: the old key, and the new one as its data
	if grace {
		record = len(oldKey) + len(newKey)
	}
	if from == to {
		if err := to.ensureArenaFits(moving + record); err != nil {
			return err
		}
	} else {
		if err := to.ensureArenaFits(moving); err != nil {
			return err
		}
		if err := from.ensureArenaFits(record); err != nil {
			return err
		}
	}
	i, _ = from.find(fromHash, oldKey) // ensureArenaFits may have compacted the shard
	// All of its Meta moves with it: the tail, and the rest in e.
	e, tail, data := from.slots[i], bytes.Clone(from.tail(i)), from.data(i)
	from.remove(i) // the session itself moves: the count stays
	if j, ok := to.find(toHash, newKey); ok {
		s.drop(to, j)
	}
	ttl, _ := e.lifetime(opts.TTL)
	e.renew(now, ttl)
	// A session still on probation stays on it, queued anew in its new
	// shard: sequence numbers must grow along each shard's queue.
	e.probSeq = 0
	if e.seen == 0 {
		e.probSeq = s.nextProbSeq()
	}
	// The new key's record before the old key's deletion: a crash between
	// them leaves both, never neither.
	j := to.insert(toHash, newKey, tail, data, e)
	// The subject index follows the session to its new key, at once:
	// a lister finds it under the old key or the new.
	if subject := tailSubject(tail); len(subject) > 0 {
		s.subjects.move(s.hashBytes(subject), fromHash, toHash)
	}
	s.journalPut(to, j)
	if oldKey != newKey {
		s.journalKey(opDel, oldKey)
	}
	if grace {
		record := memEntry{moved: true, renewed: now}
		record.renew(now, opts.Grace)
		from.insert(fromHash, oldKey, nil, newKey, record)
	}
	s.version.Add(1)
	return nil
}

// nextProbSeq returns the next probation sequence number; never 0, which
// is none.
func (s *memStore) nextProbSeq() uint32 {
	for {
		if n := s.probSeq.Add(1); n != 0 {
			return n
		}
	}
}

// put stores data under key with its meta tail and e's times and persist
// choice, replacing what key held.
func (s *memStore) put(key string, tail metaTail, data string, e memEntry) error {
	h := s.hash(key)
	sh := s.shardOf(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// The arena first, so that an entry that does not fit leaves the old one.
	enc := tail.encode()
	if err := sh.ensureArenaFits(len(key) + len(enc) + len(data)); err != nil {
		return err
	}
	if i, ok := sh.find(h, key); ok {
		s.drop(sh, i)
	}
	s.indexAdd(sh, sh.insert(h, key, enc, data, e))
	s.count.Add(1)
	s.version.Add(1)
	return nil
}

// lockPair write-locks two shards in index order, so two renames going
// opposite ways cannot deadlock, and returns the unlock.
func (s *memStore) lockPair(i, j int) func() {
	if i == j {
		s.shards[i].mu.Lock()
		return s.shards[i].mu.Unlock
	}
	if j < i {
		i, j = j, i
	}
	first, second := &s.shards[i], &s.shards[j]
	first.mu.Lock()
	second.mu.Lock()
	return func() {
		second.mu.Unlock()
		first.mu.Unlock()
	}
}

// Len returns the number of entries held, expired ones not yet swept
// included.
func (s *memStore) Len() int { return int(s.count.Load()) }

// enforceCap evicts the entries nearest their expiry while the store holds
// more than its maximum, so that a flood of new sessions cannot exhaust
// memory. It runs outside any shard lock.
//
// The session just created (skip) is not evicted in its place, unless
// nothing else can be: it has not had the chance to be seen again.
func (s *memStore) enforceCap(skip probItem) {
	evicted, seen := int64(0), int64(0)
	for s.count.Load() > s.maxSessions.Load() {
		ok, wasSession, wasSeen := s.evictOne(skip)
		if !ok {
			break
		}
		if !wasSession {
			continue // a grace record nearest its expiry: no session
		}
		evicted++
		if wasSeen {
			seen++
		}
	}
	if evicted > 0 {
		s.evictionLog.note(evicted, seen)
	}
}

// evictOne removes one entry, and reports whether it did, whether the
// entry was a session (not a grace record) and whether it was a seen one. It takes, across all shards:
//
//  1. an expired entry, which is gone anyway;
//  2. else the oldest session on probation: one not found by a Load since
//     the request that created it, such as a cookieless visitor's;
//  3. else the entry nearest its expiry (least recently renewed among
//     ties), which is the longest idle.
//
// So a flood of new sessions that never come back evicts only its own
// sessions; a returning user's is evicted only when the store holds
// nothing but seen sessions.
func (s *memStore) evictOne(skip probItem) (ok, wasSession, wasSeen bool) {
	for attempt := 0; attempt < 3; attempt++ {
		var topShard, probShard *memShard
		var topKey string
		var prob probItem
		best := int64(math.MaxInt64)
		bestRenewed := int64(math.MaxInt64)
		now := s.now()
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.RLock()
			if top, ok := sh.top(); ok {
				e := &sh.slots[top]
				if topShard == nil || e.expires < best || (e.expires == best && e.renewed < bestRenewed) {
					topShard, topKey, best, bestRenewed = sh, string(sh.key(top)), e.expires, e.renewed
				}
			}
			it, ok, stale := sh.probFront(skip)
			sh.mu.RUnlock()
			if stale {
				sh.mu.Lock()
				sh.trimProbation()
				it, ok, _ = sh.probFront(skip)
				sh.mu.Unlock()
			}
			if ok && (probShard == nil || seqBefore(it.seq, prob.seq)) {
				probShard, prob = sh, it
			}
		}
		if topShard == nil {
			return false, false, false
		}
		if probShard != nil && best > now {
			probShard.mu.Lock()
			// Evict only what was chosen: the shard may have changed since.
			if it, ok, _ := probShard.probFront(skip); ok && it == prob {
				key := string(probShard.key(it.slot))
				s.drop(probShard, it.slot)
				s.version.Add(1)
				probShard.mu.Unlock()
				s.notifyRemoved([]string{key}, sessionstore.RemovedEvicted)
				return true, true, false
			}
			probShard.mu.Unlock()
			continue
		}
		topShard.mu.Lock()
		if top, ok := topShard.top(); ok && string(topShard.key(top)) == topKey {
			e := &topShard.slots[top]
			wasSession, seen := !e.moved, e.seen != 0 && !e.expired(now)
			s.drop(topShard, top)
			s.version.Add(1)
			topShard.mu.Unlock()
			if wasSession {
				s.notifyRemoved([]string{topKey}, sessionstore.RemovedEvicted)
			}
			return true, wasSession, seen
		}
		topShard.mu.Unlock()
	}
	return false, false, false
}

// logEvictions writes a line of the eviction log (see evictionLog): n
// sessions evicted, seen of them seen again after their creation (users
// who came back: their number says the store is too small for its real
// users, not only flooded).
func (s *memStore) logEvictions(first bool, n, seen int64) {
	msg := "memory session store full: evicted sessions since the last line"
	if first {
		msg = "memory session store full: evicting sessions, those never seen again first; a summary follows every second while it lasts"
	}
	s.logger.Load().Warn(msg,
		zap.Int64("evicted", n),
		zap.Int64("evicted_seen", seen),
		zap.Int64("max_sessions", s.maxSessions.Load()))
}

func (s *memStore) sweepLoop(interval time.Duration) {
	defer close(s.sweepDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep drops every expired entry and returns how many it dropped.
func (s *memStore) sweep() int {
	dropped := 0
	for i := range s.shards {
		sh := &s.shards[i]
		for more := true; more; {
			now := s.now()
			var keys []string // the sessions removed, to report
			more = false
			sh.mu.Lock()
			for n := 0; n < sweepBatch; n++ {
				top, ok := sh.top()
				if !ok || !sh.slots[top].expired(now) {
					break
				}
				if !sh.slots[top].moved { // a grace record's end is no session's
					keys = append(keys, string(sh.key(top)))
				}
				s.drop(sh, top)
				dropped++
				more = n == sweepBatch-1
			}
			sh.mu.Unlock()
			s.notifyRemoved(keys, sessionstore.RemovedExpired)
		}
	}
	return dropped
}

// Destruct stops the sweeper. It implements caddy.Destructor, called when
// the last config using the store is unloaded.
func (s *memStore) Destruct() error {
	close(s.stop)
	<-s.sweepDone
	<-s.persistDone
	s.evictionLog.stop()
	err := s.save()
	s.closeJournal() // after the save, which rotated it
	if err != nil {
		s.logger.Load().Error("saving the memory session store at shutdown failed", zap.Error(err))
		return err
	}
	return nil
}
