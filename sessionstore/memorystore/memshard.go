package memorystore

import (
	"errors"
	"math"
	"sync"
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

	limits shardLimits
}

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
	keyOff    uint32 // the key, then the scope, in the arena
	keyLen    uint32
	dataOff   uint32 // the data; for a grace record, the key it moved to
	dataLen   uint32
	pos       uint32 // position in the shard's heap
	scopeLen  uint16 // the scope (sessionstore.Meta.Scope) follows the key
	moved     bool   // a grace record left by a Rename: no session
}

func newMemShard() memShard {
	return memShard{
		index:  make(map[uint64]uint32),
		limits: shardLimits{compactMinArena, compactMinSlots, maxArena},
	}
}

// meta returns what the shard keeps beside slot i's data.
func (sh *memShard) meta(i uint32) sessionstore.Meta {
	e := &sh.slots[i]
	m := sessionstore.Meta{Expiry: time.Duration(e.ownExpiry)}
	if e.created != 0 {
		m.Created = time.Unix(0, e.created)
	}
	if e.scopeLen > 0 {
		m.Scope = string(sh.scope(i))
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

// written records a Patch's write at now: the creation time and own
// expiry it asks for, and a fresh lifetime.
func (e *memEntry) written(now int64, opts sessionstore.PatchOptions) {
	if opts.SetCreated && e.created == 0 {
		e.created = now
	}
	if opts.Expiry != 0 {
		e.ownExpiry = int64(opts.Expiry)
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

// scope returns the slot's scope, which follows its key in the arena.
func (sh *memShard) scope(i uint32) []byte {
	e := &sh.slots[i]
	end := e.keyOff + e.keyLen
	return sh.arena[end : end+uint32(e.scopeLen)]
}

// keyAndScope returns the slot's key and scope, as one run of the arena.
func (sh *memShard) keyAndScope(i uint32) []byte {
	e := &sh.slots[i]
	return sh.arena[e.keyOff : e.keyOff+e.keyLen+uint32(e.scopeLen)]
}

// setScope gives a slot that has no scope one: its key and the scope go
// to the arena's end, which ensureArenaFits has made sure they fit in.
func (sh *memShard) setScope(i uint32, scope string) {
	e := &sh.slots[i]
	off := uint32(len(sh.arena))
	sh.arena = append(sh.arena, sh.arena[e.keyOff:e.keyOff+e.keyLen]...)
	sh.arena = append(sh.arena, scope...)
	sh.garbage += int(e.keyLen)
	e.keyOff, e.scopeLen = off, uint16(len(scope))
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

// insert adds an entry for key (hash h), with its scope, data and e's
// times and flags, to the index and the heap. The caller has made sure the
// key, scope and data fit in the arena (ensureArenaFits) and knows that
// key is not held.
func (sh *memShard) insert(h uint64, key, scope, data string, e memEntry) {
	e.hash = h
	e.keyOff, e.keyLen = sh.appendBytes(key), uint32(len(key))
	sh.appendBytes(scope)
	e.scopeLen = uint16(len(scope))
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
// left unused outweighs what is used (see maybeCompact).
func (sh *memShard) remove(i uint32) {
	e := &sh.slots[i]
	if j, ok := sh.index[e.hash]; ok && j == i {
		delete(sh.index, e.hash)
	} else {
		delete(sh.collided, string(sh.key(i)))
	}
	sh.heapRemove(e.pos)
	sh.garbage += int(e.keyLen) + int(e.scopeLen) + int(e.dataLen)
	*e = memEntry{}
	sh.free = append(sh.free, i)
	sh.maybeCompact()
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
		live += int(sh.slots[i].keyLen) + int(sh.slots[i].scopeLen) + int(sh.slots[i].dataLen)
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
		arena = append(arena, sh.keyAndScope(i)...)
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
	sh.slots, sh.heap, sh.index, sh.collided = slots, heap, index, collided
	sh.arena, sh.garbage, sh.free = arena, 0, nil
}

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
