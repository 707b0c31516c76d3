package memorystore

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// The memory store keeps its sessions where the garbage collector does not
// look. A shard's entries live in one slice of structs without pointers,
// their keys and data in one byte slice, their index in a map from a 64-bit
// hash to a slot number, and their expiry heap in a slice of slot numbers:
// all "noscan" memory, which the collector neither walks nor marks entry by
// entry. A store of a million sessions made of Go strings and pointers
// would be walked, pointer by pointer, in every GC cycle; measured, that
// was the largest cost the store added to a request (bench/README.md).
// Data is copied out under the lock, so nothing outside a shard ever
// refers to its bytes, and they can be overwritten and compacted.

const (
	// compactMinArena and compactMinSlots keep small shards from
	// compacting: below them, the garbage is not worth a pass.
	compactMinArena = 64 << 10
	compactMinSlots = 1024

	// maxArena is the most bytes of keys and data a shard can address:
	// its offsets are uint32s, so 4 GiB per shard, 128 GiB a store (on a
	// 32-bit platform, what an int can count).
	maxArena = min(math.MaxUint32, math.MaxInt)
)

// errShardFull is returned by a write that would take a shard's keys and
// data past maxArena.
var errShardFull = errors.New("memory session store full: a shard holds 4 GiB of keys and data")

// memShard is one independently locked part of a memory store. Its slots
// are reused through free, so a slot number is stable while its entry
// lives; compact renumbers them all, under the write lock.
type memShard struct {
	mu sync.RWMutex

	slots []memEntry
	free  []uint32 // slots not in use
	heap  []uint32 // slots in use, a binary min-heap by (expires, renewed)

	// index finds a slot by its key's hash; collided holds the rare key
	// whose hash another key in index already has.
	index    map[uint64]uint32
	collided map[string]uint32

	// arena holds keys and data, referred to by offset and length;
	// garbage counts its bytes no entry refers to any more.
	arena   []byte
	garbage int

	// probation holds, oldest first from probHead on, the sessions not
	// seen again since the request that created them: the ones eviction
	// takes first (see evictOne). Items go stale when their session is
	// seen, removed or renamed; they are skipped lazily (trimProbation)
	// and dropped in bulk (pruneProbation), so the slice stays within a
	// few times the entries held.
	probation []probItem
	probHead  int

	limits shardLimits
}

// probItem is a session in a shard's probation queue: its slot, and the
// sequence number it was queued with, which tells it from a later entry
// in the same slot.
type probItem struct {
	slot, seq uint32
}

// probSlack is how many stale probation items a shard keeps before it
// prunes them, on top of twice its entries.
const probSlack = 64

// shardLimits are the constants above; tests make them small.
type shardLimits struct {
	compactMinArena, compactMinSlots, maxArena int
}

// memEntry is a session as a shard holds it. It has no pointers.
type memEntry struct {
	hash      uint64 // of the key, as the index has it
	expires   int64  // unix nanoseconds; math.MaxInt64 when permanent
	renewed   int64  // unix nanoseconds of the last renewal
	created   int64  // unix nanoseconds; 0 when not recorded
	ownExpiry int64  // the entry's own expiry (sessionstore.Meta.Expiry), 0 when none
	keyOff    uint32 // the key, then its meta tail (metatail.go), in the arena
	keyLen    uint32
	dataOff   uint32 // the data; for a grace record, the key it moved to
	dataLen   uint32
	pos       uint32 // position in the shard's heap
	// seen is 1 once a Load found the session after the request that
	// created it: it left probation. Load sets it under the shard's read
	// lock, so while readers may hold that lock it is read and written
	// with sync/atomic only; under the write lock plain access is safe.
	// It is a plain uint32, not an atomic type, so that entries can be
	// copied (insert, compact, Rename) under the write lock.
	seen uint32
	// probSeq is the sequence number of the entry's probation item; 0
	// when it has none (a seen session, one loaded as seen, a grace
	// record).
	probSeq uint32
	tailLen uint16               // the meta tail (scope, subject, ...) follows the key
	persist sessionstore.Persist // sessionstore.Meta.Persist
	moved   bool                 // a grace record left by a Rename: no session
}

// isSeen reads seen; safe under the read lock.
func (e *memEntry) isSeen() bool { return atomic.LoadUint32(&e.seen) != 0 }

// markSeen sets seen, and reports whether this call set it: exactly one
// of concurrent callers does. The load first keeps the common case (a
// session seen long ago) a plain read without a write to a shared line.
func (e *memEntry) markSeen() bool {
	return atomic.LoadUint32(&e.seen) == 0 && atomic.CompareAndSwapUint32(&e.seen, 0, 1)
}

func newMemShard() memShard {
	return memShard{
		index:  make(map[uint64]uint32),
		limits: shardLimits{compactMinArena, compactMinSlots, maxArena},
	}
}

// entry returns a copy of slot i's data and what the shard keeps beside
// it. The data and the meta tail are copied out together, in one
// allocation, and the tail's strings are slices of that copy: this runs on
// every read of a known session.
func (sh *memShard) entry(i uint32) sessionstore.Entry {
	e := &sh.slots[i]
	m := e.meta()
	data := sh.arena[e.dataOff : e.dataOff+e.dataLen]
	if e.tailLen == 0 {
		return sessionstore.Entry{Data: string(data), Meta: m}
	}
	var b strings.Builder
	b.Grow(len(data) + int(e.tailLen))
	b.Write(data)
	b.Write(sh.tail(i))
	both := b.String()
	setMetaTail(&m, decodeTail(both[len(data):]))
	return sessionstore.Entry{Data: both[:len(data)], Meta: m}
}

// fullMeta returns a copy of slot i's Meta, without its data: one
// allocation for the tail's strings, when it has any.
func (sh *memShard) fullMeta(i uint32) sessionstore.Meta {
	e := &sh.slots[i]
	m := e.meta()
	if e.tailLen != 0 {
		setMetaTail(&m, decodeTail(string(sh.tail(i))))
	}
	return m
}

// meta returns the Meta the entry itself holds: all but the tail's.
func (e *memEntry) meta() sessionstore.Meta {
	m := sessionstore.Meta{Expiry: time.Duration(e.ownExpiry), Persist: e.persist}
	if e.created != 0 {
		m.Created = time.Unix(0, e.created)
	}
	return m
}

// lifetime returns the entry's ttl (its own expiry, or else the
// handler's ttl) and its renewal interval.
func (e *memEntry) lifetime(ttl time.Duration) (time.Duration, time.Duration) {
	t := sessionstore.EffectiveTTL(time.Duration(e.ownExpiry), ttl)
	return t, sessionstore.RenewInterval(t)
}

func (e *memEntry) expired(now int64) bool { return e.expires <= now }

// written records a Patch's write at now: the creation time, own expiry
// and persist choice it asks for, and a fresh lifetime.
func (e *memEntry) written(now int64, opts sessionstore.PatchOptions) {
	if opts.SetCreated && e.created == 0 {
		e.created = now
	}
	if opts.Expiry != 0 {
		e.ownExpiry = int64(opts.Expiry)
	}
	if opts.Persist != sessionstore.PersistDefault {
		e.persist = opts.Persist
	}
	ttl, _ := e.lifetime(opts.TTL)
	e.renew(now, ttl)
}

// renew gives the entry a fresh lifetime of ttl from now. A ttl reaching
// past the largest time held saturates instead of wrapping into the past.
func (e *memEntry) renew(now int64, ttl time.Duration) {
	e.renewed = now
	if ttl <= 0 || int64(ttl) > math.MaxInt64-now {
		e.expires = math.MaxInt64
		return
	}
	e.expires = now + int64(ttl)
}

// find returns the slot of key, whose hash is h.
func (sh *memShard) find(h uint64, key string) (uint32, bool) {
	if i, ok := sh.index[h]; ok && string(sh.key(i)) == key {
		return i, true
	}
	if len(sh.collided) > 0 {
		i, ok := sh.collided[key]
		return i, ok
	}
	return 0, false
}

func (sh *memShard) key(i uint32) []byte {
	e := &sh.slots[i]
	return sh.arena[e.keyOff : e.keyOff+e.keyLen]
}

// tail returns the slot's encoded meta tail, which follows its key in the
// arena.
func (sh *memShard) tail(i uint32) []byte {
	e := &sh.slots[i]
	end := e.keyOff + e.keyLen
	return sh.arena[end : end+uint32(e.tailLen)]
}

// subject returns the slot's subject, a slice of the arena; empty when it
// has none (a grace record has none).
func (sh *memShard) subject(i uint32) []byte {
	if sh.slots[i].tailLen == 0 {
		return nil
	}
	return tailSubject(sh.tail(i))
}

// keyAndTail returns the slot's key and meta tail, as one run of the arena.
func (sh *memShard) keyAndTail(i uint32) []byte {
	e := &sh.slots[i]
	return sh.arena[e.keyOff : e.keyOff+e.keyLen+uint32(e.tailLen)]
}

// setTail replaces the slot's meta tail: its key and the new tail go to
// the arena's end, which ensureArenaFits has made sure they fit in (the
// tail's length is in the entry, and a key cannot grow in place).
func (sh *memShard) setTail(i uint32, tail []byte) {
	e := &sh.slots[i]
	off := uint32(len(sh.arena))
	sh.arena = append(sh.arena, sh.arena[e.keyOff:e.keyOff+e.keyLen]...)
	sh.arena = append(sh.arena, tail...)
	sh.garbage += int(e.keyLen) + int(e.tailLen)
	e.keyOff, e.tailLen = off, uint16(len(tail))
}

// data returns a copy of the slot's data.
func (sh *memShard) data(i uint32) string {
	e := &sh.slots[i]
	return string(sh.arena[e.dataOff : e.dataOff+e.dataLen])
}

// ensureArenaFits makes sure n more bytes fit in the arena, compacting it
// when that is what makes them fit. Writers call it before they change
// anything, so a write that does not fit changes nothing.
func (sh *memShard) ensureArenaFits(n int) error {
	// Written as differences, so that no sum can pass what an int holds.
	if n <= sh.limits.maxArena-len(sh.arena) {
		return nil
	}
	if n > sh.limits.maxArena-(len(sh.arena)-sh.garbage) {
		return errShardFull
	}
	sh.compact()
	return nil
}

// appendBytes copies s to the end of the arena, which ensureArenaFits has
// made sure it fits in, and returns its offset.
func (sh *memShard) appendBytes(s string) uint32 {
	off := uint32(len(sh.arena))
	sh.arena = append(sh.arena, s...)
	return off
}

// insert adds an entry for key (hash h), with its encoded meta tail, data
// and e's times and flags, to the index and the heap. The caller has made
// sure the key, tail and data fit in the arena (ensureArenaFits) and knows
// that key is not held. It returns the entry's slot. The store's subject
// index is the caller's to update.
func (sh *memShard) insert(h uint64, key string, tail []byte, data string, e memEntry) uint32 {
	e.hash = h
	e.keyOff, e.keyLen = sh.appendBytes(key), uint32(len(key))
	sh.arena = append(sh.arena, tail...)
	e.tailLen = uint16(len(tail))
	e.dataOff, e.dataLen = sh.appendBytes(data), uint32(len(data))
	var i uint32
	if n := len(sh.free); n > 0 {
		i = sh.free[n-1]
		sh.free = sh.free[:n-1]
		sh.slots[i] = e
	} else {
		i = uint32(len(sh.slots))
		sh.slots = append(sh.slots, e)
	}
	if _, taken := sh.index[h]; taken {
		if sh.collided == nil {
			sh.collided = make(map[string]uint32)
		}
		sh.collided[key] = i
	} else {
		sh.index[h] = i
	}
	sh.push(i)
	if e.probSeq != 0 && !e.moved && e.seen == 0 {
		sh.enqueue(i, e.probSeq)
	}
	return i
}

// setData replaces the slot's data, in place when the new data is no
// longer; otherwise at the arena's end, which ensureArenaFits has made
// sure it fits in.
func (sh *memShard) setData(i uint32, data string) {
	e := &sh.slots[i]
	if len(data) <= int(e.dataLen) {
		copy(sh.arena[e.dataOff:], data)
		sh.garbage += int(e.dataLen) - len(data)
	} else {
		sh.garbage += int(e.dataLen)
		e.dataOff = sh.appendBytes(data)
	}
	e.dataLen = uint32(len(data))
}

// remove drops the slot's entry, and compacts the shard when what is
// left unused outweighs what is used (see maybeCompact). The store's
// subject index is the caller's to update.
func (sh *memShard) remove(i uint32) {
	e := &sh.slots[i]
	if j, ok := sh.index[e.hash]; ok && j == i {
		delete(sh.index, e.hash)
	} else {
		delete(sh.collided, string(sh.key(i)))
	}
	sh.heapRemove(e.pos)
	sh.garbage += int(e.keyLen) + int(e.tailLen) + int(e.dataLen)
	*e = memEntry{}
	sh.free = append(sh.free, i)
	sh.maybeCompact()
	sh.maybePruneProbation()
}

// maybeCompact compacts the shard when more than half of its arena or of
// its slots is unused, so that memory follows the sessions down after a
// mass expiry or a burst of writes. The pass costs as much as the removals
// or writes that made it due, so over time it adds a constant per change.
func (sh *memShard) maybeCompact() {
	if (len(sh.arena) >= sh.limits.compactMinArena && sh.garbage > len(sh.arena)/2) ||
		(len(sh.slots) >= sh.limits.compactMinSlots && len(sh.free) > len(sh.slots)/2) {
		sh.compact()
	}
}

// compact rewrites the shard densely: each entry's slot becomes its heap
// position (which keeps the heap in order), its key and data are copied to
// a fresh arena without garbage, and the index and slices are made anew
// for the entries held (with a quarter more room), so that the old ones,
// grown for more sessions than are left, are freed.
func (sh *memShard) compact() {
	n := len(sh.heap)
	live := 0
	for _, i := range sh.heap {
		live += int(sh.slots[i].keyLen) + int(sh.slots[i].tailLen) + int(sh.slots[i].dataLen)
	}
	arena := make([]byte, 0, live+live/4)
	slots := make([]memEntry, n, n+n/4)
	heap := make([]uint32, n, n+n/4)
	index := make(map[uint64]uint32, n)
	var collided map[string]uint32
	for pos, i := range sh.heap {
		e := sh.slots[i]
		k := sh.key(i)
		e.keyOff = uint32(len(arena))
		arena = append(arena, sh.keyAndTail(i)...)
		e.dataOff = uint32(len(arena))
		arena = append(arena, sh.arena[sh.slots[i].dataOff:sh.slots[i].dataOff+e.dataLen]...)
		e.pos = uint32(pos)
		slots[pos] = e
		heap[pos] = uint32(pos)
		if _, taken := index[e.hash]; taken {
			if collided == nil {
				collided = make(map[string]uint32)
			}
			collided[string(k)] = uint32(pos)
		} else {
			index[e.hash] = uint32(pos)
		}
	}
	// The probation queue follows the entries to their new slots (each
	// old slot's new number is its heap position), in its order, without
	// its stale items.
	var probation []probItem
	for _, it := range sh.probation[sh.probHead:] {
		if sh.probValid(it) {
			probation = append(probation, probItem{slot: sh.slots[it.slot].pos, seq: it.seq})
		}
	}
	sh.slots, sh.heap, sh.index, sh.collided = slots, heap, index, collided
	sh.arena, sh.garbage, sh.free = arena, 0, nil
	sh.probation, sh.probHead = probation, 0
}

// Probation. A new session enters its shard's probation queue, and leaves
// it when a Load finds it again (its seen flag), or when it is removed.
// Eviction takes the oldest session still in probation, across shards by
// the store-wide sequence numbers, before any seen session: a flood of
// sessions that never come back can evict only each other, however many.

// enqueue adds slot i, whose entry has sequence number seq, at the
// queue's end.
func (sh *memShard) enqueue(i, seq uint32) {
	sh.maybePruneProbation()
	sh.probation = append(sh.probation, probItem{slot: i, seq: seq})
}

// maybePruneProbation prunes the queue when it holds more than twice as
// many items as the shard holds entries (and a little): then at least
// half of its items are stale, each of them made so by a removal or a
// session seen, so the pass costs a constant per change over time.
func (sh *memShard) maybePruneProbation() {
	if len(sh.probation)-sh.probHead > 2*len(sh.heap)+probSlack {
		sh.pruneProbation()
	}
}

// probValid reports whether the item stands for a session still in
// probation: the same entry in its slot (its sequence number), neither
// seen nor a grace record. Safe under the read lock.
func (sh *memShard) probValid(it probItem) bool {
	if int(it.slot) >= len(sh.slots) {
		return false
	}
	e := &sh.slots[it.slot]
	return e.probSeq == it.seq && it.seq != 0 && !e.moved && !e.isSeen()
}

// probFront returns the oldest valid item of the queue other than skip
// (the session being created, which has not had the chance to be seen).
// Under the read lock it does not drop stale items: stale reports that
// trimProbation, under the write lock, should. Past skip it looks a few
// items on, for concurrent creations in the same shard.
func (sh *memShard) probFront(skip probItem) (it probItem, ok, stale bool) {
	for j := sh.probHead; j < len(sh.probation) && j < sh.probHead+8; j++ {
		it = sh.probation[j]
		switch {
		case !sh.probValid(it):
			if j == sh.probHead {
				return probItem{}, false, true
			}
		case it == skip && skip.seq != 0:
		default:
			return it, true, false
		}
	}
	return probItem{}, false, false
}

// trimProbation drops the stale items at the queue's front. Each item is
// dropped once, so this costs a constant per session over time.
func (sh *memShard) trimProbation() {
	for sh.probHead < len(sh.probation) && !sh.probValid(sh.probation[sh.probHead]) {
		sh.probation[sh.probHead] = probItem{}
		sh.probHead++
	}
	if sh.probHead == len(sh.probation) {
		sh.probation, sh.probHead = sh.probation[:0], 0
	}
}

// pruneProbation drops every stale item, keeping the order of the rest.
func (sh *memShard) pruneProbation() {
	kept := sh.probation[:0]
	for _, it := range sh.probation[sh.probHead:] {
		if sh.probValid(it) {
			kept = append(kept, it)
		}
	}
	clear(sh.probation[len(kept):])
	if cap(kept) > 4*len(kept)+probSlack { // let memory follow the sessions down
		kept = append([]probItem(nil), kept...)
	}
	sh.probation, sh.probHead = kept, 0
}

// seqBefore orders probation sequence numbers, which wrap around: a was
// queued before b when it is less than 2^31 numbers behind. A store that
// evicts holds far fewer sessions in probation than that.
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// The expiry heap orders slots by expiry, then by last renewal, so that
// among permanent entries the least recently used is first. Each entry
// knows its position, so fix and remove are O(log n).

func (sh *memShard) less(a, b uint32) bool {
	x, y := &sh.slots[sh.heap[a]], &sh.slots[sh.heap[b]]
	if x.expires != y.expires {
		return x.expires < y.expires
	}
	return x.renewed < y.renewed
}

func (sh *memShard) swap(a, b uint32) {
	sh.heap[a], sh.heap[b] = sh.heap[b], sh.heap[a]
	sh.slots[sh.heap[a]].pos = a
	sh.slots[sh.heap[b]].pos = b
}

// top returns the slot nearest its expiry.
func (sh *memShard) top() (uint32, bool) {
	if len(sh.heap) == 0 {
		return 0, false
	}
	return sh.heap[0], true
}

func (sh *memShard) push(i uint32) {
	pos := uint32(len(sh.heap))
	sh.slots[i].pos = pos
	sh.heap = append(sh.heap, i)
	sh.up(pos)
}

func (sh *memShard) heapRemove(pos uint32) {
	last := uint32(len(sh.heap) - 1)
	if pos != last {
		sh.swap(pos, last)
	}
	sh.heap = sh.heap[:last]
	if pos != last {
		sh.fix(pos)
	}
}

// fix restores the heap order after the entry at pos changed its expiry.
func (sh *memShard) fix(pos uint32) {
	if !sh.down(pos) {
		sh.up(pos)
	}
}

func (sh *memShard) up(pos uint32) {
	for pos > 0 {
		parent := (pos - 1) / 2
		if !sh.less(pos, parent) {
			return
		}
		sh.swap(pos, parent)
		pos = parent
	}
}

func (sh *memShard) down(pos uint32) bool {
	start := pos
	n := uint32(len(sh.heap))
	for {
		left := 2*pos + 1
		if left >= n {
			break
		}
		child := left
		if right := left + 1; right < n && sh.less(right, left) {
			child = right
		}
		if !sh.less(child, pos) {
			break
		}
		sh.swap(pos, child)
		pos = child
	}
	return pos > start
}
