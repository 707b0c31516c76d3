package redisstore

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// cacheStore is a connection's client-side cache: a rueidis.CacheStore of
// at most max bytes, the least recently used reply going first, which also
// ends this instance's marks of the keys Redis invalidates.
//
// It is built to cost the garbage collector little, because in a Caddy
// serving many sessions it holds a large part of the heap, and every GC
// cycle walks what it holds, pointer by pointer. A cached reply is a slot
// in one slice, found through a map of hashes (no pointers in either),
// whose one pointer is to a pointer-free buffer: the key, the command and
// the reply serialized with CacheMarshal (read back with
// CacheUnmarshalView, which copies nothing). A read in flight holds a
// channel only until its reply comes. (rueidis's SimpleCache adapter keeps
// a map, an entry and a channel per key and command for as long as Redis
// tracks the key, even after the cache under it dropped the reply, and the
// replies themselves are trees of small objects: on a gateway that had
// read 50000 sessions the GC's work on them made every request, cached or
// not, a third slower.)
type cacheStore struct {
	pc *pooledClient

	mu   sync.Mutex
	max  int
	size int
	seed maphash.Seed
	// index finds the first slot of a key's hash; slots of the same hash
	// (one key's several commands, or a collision) are chained.
	index map[uint64]int32
	// slots[0] is the sentinel of the LRU list, most recent first.
	slots   []cacheSlot
	free    []int32
	flights map[flightKey]*cacheFlight
	closed  bool
	// listed: in pc's stores, which it joins with its first reply (a
	// store whose connection never came up is never closed) and leaves
	// when closed.
	listed bool
}

// A cacheSlot holds one cached reply: buf is the key, the command and the
// reply in rueidis's CacheMarshal form (its expiry, 7 bytes, then the
// reply), the slot's only pointer, to pointer-free bytes.
type cacheSlot struct {
	hash              uint64
	prev, next, chain int32 // chain: the next slot of the same hash, 0 for none
	keyLen, cmdLen    int32
	// canon: the reply is a string already in mergepatch.Normalize's
	// form (a compact ASCII JSON object), so a read of it needs no
	// normalizing. Set when the reply is stored, for GET replies.
	canon bool
	buf   []byte
}

func (s *cacheSlot) is(key, cmd string) bool {
	return int(s.keyLen) == len(key) && int(s.cmdLen) == len(cmd) &&
		string(s.buf[:s.keyLen]) == key && string(s.buf[s.keyLen:s.keyLen+s.cmdLen]) == cmd
}

func (s *cacheSlot) msg() []byte { return s.buf[s.keyLen+s.cmdLen:] }

type flightKey struct{ key, cmd string }

// A cacheFlight is a read sent to Redis for the cache, which other
// readers of the same key and command wait for.
type cacheFlight struct {
	ch  chan struct{}
	val rueidis.RedisMessage
	err error
	xat int64 // the client-side expiry asked, unix ms
}

func (f *cacheFlight) Wait(ctx context.Context) (rueidis.RedisMessage, error) {
	select {
	case <-ctx.Done():
		return rueidis.RedisMessage{}, ctx.Err()
	case <-f.ch:
		return f.val, f.err
	}
}

// slotOverhead approximates what a cached reply costs beside its bytes:
// its slot, its index entry, its buffer's rounding.
const slotOverhead = 96

func newCacheStore(pc *pooledClient, max int) *cacheStore {
	c := &cacheStore{pc: pc, max: max, seed: maphash.MakeSeed(), flights: map[flightKey]*cacheFlight{}}
	c.flush()
	return c
}

// find returns the slot of key's reply to cmd, 0 if none.
func (c *cacheStore) find(h uint64, key, cmd string) int32 {
	for i := c.index[h]; i != 0; i = c.slots[i].chain {
		if c.slots[i].is(key, cmd) {
			return i
		}
	}
	return 0
}

// Flight implements rueidis.CacheStore: a cached reply; or the read in
// flight to wait for; or neither, and the caller sends the read.
func (c *cacheStore) Flight(key, cmd string, ttl time.Duration, now time.Time) (rueidis.RedisMessage, rueidis.CacheEntry) {
	h := maphash.String(c.seed, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.find(h, key, cmd); i != 0 {
		var m rueidis.RedisMessage
		if m.CacheUnmarshalView(c.slots[i].msg()) == nil && m.CachePXAT() > now.UnixMilli() {
			c.toFront(i)
			return m, nil
		}
	}
	if c.closed {
		return rueidis.RedisMessage{}, nil
	}
	fk := flightKey{key, cmd}
	if f := c.flights[fk]; f != nil {
		return rueidis.RedisMessage{}, f
	}
	c.flights[fk] = &cacheFlight{ch: make(chan struct{}), xat: now.Add(ttl).UnixMilli()}
	return rueidis.RedisMessage{}, nil
}

// Update implements rueidis.CacheStore: the reply to a read sent for the
// cache. It returns the reply's client-side expiry: the key's own (its
// PTTL, read with it), or the one asked if sooner or if the key has none.
func (c *cacheStore) Update(key, cmd string, val rueidis.RedisMessage) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	fk := flightKey{key, cmd}
	f := c.flights[fk]
	if f == nil {
		return 0
	}
	delete(c.flights, fk)
	xat := val.CachePXAT()
	if xat <= 0 || f.xat < xat {
		xat = f.xat
	}
	buf := make([]byte, 0, len(key)+len(cmd)+val.CacheSize())
	buf = append(append(buf, key...), cmd...)
	buf = val.CacheMarshal(buf)
	msg := buf[len(key)+len(cmd):]
	putExpireAt(msg, xat)
	var m rueidis.RedisMessage
	if err := m.CacheUnmarshalView(msg); err != nil {
		f.val = val // not kept: the waiters get it as it came
		close(f.ch)
		return xat
	}
	c.store(maphash.String(c.seed, key), key, cmd, buf, cmd == getCmd && isCanonString(&m))
	if !c.listed {
		c.listed = true
		c.pc.addStore(c)
	}
	f.val = m
	close(f.ch)
	return xat
}

// putExpireAt writes xat (unix ms) into the expiry that leads a
// CacheMarshal buffer: 7 bytes, least significant first, as
// CacheUnmarshalView reads them (and as rueidis's own adapter sets them on
// the message).
func putExpireAt(buf []byte, xat int64) {
	for i := range 7 {
		buf[i] = byte(xat >> (8 * i))
	}
}

// Cancel implements rueidis.CacheStore: a read sent for the cache failed.
func (c *cacheStore) Cancel(key, cmd string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fk := flightKey{key, cmd}
	if f := c.flights[fk]; f != nil {
		delete(c.flights, fk)
		f.err = err
		close(f.ch)
	}
}

// Delete implements rueidis.CacheStore: Redis invalidated keys (all keys,
// when nil). Reads in flight are kept: their replies are newer than the
// invalidation.
func (c *cacheStore) Delete(keys []rueidis.RedisMessage) {
	c.mu.Lock()
	if keys == nil {
		c.flush()
	} else {
		for i := range keys {
			if k, err := keys[i].ToString(); err == nil {
				c.deleteKey(maphash.String(c.seed, k), k)
			}
		}
	}
	c.mu.Unlock()
	if keys == nil {
		c.pc.unmarkAll()
		return
	}
	for i := range keys {
		if k, err := keys[i].ToString(); err == nil {
			c.pc.marks.Delete(k)
		}
	}
}

// Close implements rueidis.CacheStore: the connection is gone. The cache
// is emptied, the reads in flight get err, and nothing is cached anymore.
func (c *cacheStore) Close(err error) {
	c.mu.Lock()
	c.closed = true
	c.flush()
	flights := c.flights
	c.flights = map[flightKey]*cacheFlight{}
	for _, f := range flights {
		f.err = err
		close(f.ch)
	}
	c.mu.Unlock()
	c.pc.removeStore(c)
	c.pc.unmarkAll()
}

// The cache's commands of a session read, as rueidis names them in the
// store (cmds.CacheKey: the command without its key, each part but a
// lone command's led by its length): GET key, and HMGET of the metadata's
// metaFields.
// Should rueidis name them otherwise, cachedSession finds nothing and
// every read takes DoMultiCache's way (TestCachedSessionFastPath fails).
const (
	getCmd   = "GET"
	hmgetCmd = "\x05HMGET\x07created\x06expiry\x05scope\x07subject\x07persist\x02ua\x04addr"
)

// isCanonString reports whether m is a string that mergepatch.Normalize
// returns as it is.
func isCanonString(m *rueidis.RedisMessage) bool {
	s, err := m.ToString()
	return err == nil && mergepatch.IsCompactASCIIObject(s)
}

// cachedSession reads a session's cached replies, the GET of key and the
// HMGET of its metadata under mkey, under one lock, as Flight would for
// each (the same expiry check and LRU update): ok only if both are
// cached and unexpired. The metadata's fields are read straight from the
// cached bytes into meta (metaFields' order), which allocates nothing.
// canon reports the GET reply needs no normalizing. The message and the
// strings view the slots' buffers, which are never written once stored.
func (c *cacheStore) cachedSession(key, mkey string, nowMs int64, meta *[nMeta]string) (get rueidis.RedisMessage, canon, ok bool) {
	hk, hm := maphash.String(c.seed, key), maphash.String(c.seed, mkey)
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.find(hk, key, getCmd)
	if i == 0 || get.CacheUnmarshalView(c.slots[i].msg()) != nil || get.CachePXAT() <= nowMs {
		return get, false, false
	}
	j := c.find(hm, mkey, hmgetCmd)
	if j == 0 {
		return get, false, false
	}
	if pxat, ok := viewArrayStrings(c.slots[j].msg(), meta[:]); !ok || pxat <= nowMs {
		return get, false, false
	}
	canon = c.slots[i].canon
	c.toFront(j)
	c.toFront(i)
	return get, canon, true
}

// deleteKey removes every reply cached for key.
func (c *cacheStore) deleteKey(h uint64, key string) {
	for i := c.index[h]; i != 0; {
		next := c.slots[i].chain
		if s := &c.slots[i]; int(s.keyLen) == len(key) && string(s.buf[:s.keyLen]) == key {
			c.remove(i)
		}
		i = next
	}
}

// store keeps buf (key, cmd, reply) as key's reply to cmd, and makes room
// for it.
func (c *cacheStore) store(h uint64, key, cmd string, buf []byte, canon bool) {
	if i := c.find(h, key, cmd); i != 0 {
		c.remove(i)
	}
	size := len(buf) + slotOverhead
	if size > c.max {
		return
	}
	for c.size+size > c.max && c.slots[0].prev != 0 {
		c.remove(c.slots[0].prev)
	}
	var i int32
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		c.slots = append(c.slots, cacheSlot{})
		i = int32(len(c.slots) - 1)
	}
	c.slots[i] = cacheSlot{hash: h, chain: c.index[h], keyLen: int32(len(key)), cmdLen: int32(len(cmd)), canon: canon, buf: buf}
	c.index[h] = i
	c.size += size
	c.pushFront(i)
}

// remove frees slot i.
func (c *cacheStore) remove(i int32) {
	s := &c.slots[i]
	c.slots[s.prev].next, c.slots[s.next].prev = s.next, s.prev
	if first := c.index[s.hash]; first == i {
		if s.chain == 0 {
			delete(c.index, s.hash)
		} else {
			c.index[s.hash] = s.chain
		}
	} else {
		for j := first; j != 0; j = c.slots[j].chain {
			if c.slots[j].chain == i {
				c.slots[j].chain = s.chain
				break
			}
		}
	}
	c.size -= len(s.buf) + slotOverhead
	*s = cacheSlot{}
	c.free = append(c.free, i)
}

func (c *cacheStore) flush() {
	c.index = map[uint64]int32{}
	c.slots = make([]cacheSlot, 1, 64)
	c.free = nil
	c.size = 0
}

func (c *cacheStore) pushFront(i int32) {
	first := c.slots[0].next
	c.slots[i].prev, c.slots[i].next = 0, first
	c.slots[first].prev = i
	c.slots[0].next = i
}

func (c *cacheStore) toFront(i int32) {
	if c.slots[0].next == i {
		return
	}
	s := &c.slots[i]
	c.slots[s.prev].next, c.slots[s.next].prev = s.next, s.prev
	c.pushFront(i)
}
