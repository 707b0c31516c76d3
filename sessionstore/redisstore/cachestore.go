package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// cacheStore is a connection's client-side cache: a rueidis.CacheStore of
// at most max bytes, the least recently used key going first, which also
// ends this instance's marks of the keys Redis invalidates.
//
// It is built to cost the garbage collector little, because in a Caddy
// serving many sessions it holds a large part of the heap, and every GC
// cycle walks what it holds: each cached reply is one pointer-free buffer
// (the reply serialized with CacheMarshal, read back with
// CacheUnmarshalView, which copies nothing), each cached key one small
// struct; a request in flight holds a channel only until its reply comes.
// (rueidis's SimpleCache adapter keeps a map, an entry and a channel per
// key and command for as long as the key is cached in Redis's view, even
// after the cache itself dropped it: on a gateway that had read 100000
// sessions, that alone was tens of MB of small objects, and the GC work on
// them made every request, cached or not, a third slower.)
type cacheStore struct {
	pc *pooledClient

	mu      sync.Mutex
	max     int
	size    int
	keys    map[string]*cachedKey
	lru     cachedKey // sentinel of the circular list, most recent first
	flights map[flightKey]*cacheFlight
	closed  bool
}

// A cachedKey holds the cached replies of one Redis key (one, in
// practice: a session's GET, its metadata's HMGET, a marker's GET).
type cachedKey struct {
	key        string
	prev, next *cachedKey
	replies    []cachedReply
	size       int
}

type cachedReply struct {
	cmd string
	msg []byte // rueidis's CacheMarshal form: the expiry (7 bytes), then the reply
}

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

// cachedKeyOverhead approximates what a cached key and a reply cost beside
// their bytes: the struct, the map's slot, the slice.
const cachedKeyOverhead = 160

func newCacheStore(pc *pooledClient, max int) *cacheStore {
	c := &cacheStore{pc: pc, max: max, keys: map[string]*cachedKey{}, flights: map[flightKey]*cacheFlight{}}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// Flight implements rueidis.CacheStore: a cached reply; or the read in
// flight to wait for; or neither, and the caller sends the read.
func (c *cacheStore) Flight(key, cmd string, ttl time.Duration, now time.Time) (rueidis.RedisMessage, rueidis.CacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.keys[key]; k != nil {
		for i := range k.replies {
			if k.replies[i].cmd != cmd {
				continue
			}
			var m rueidis.RedisMessage
			if m.CacheUnmarshalView(k.replies[i].msg) == nil && m.CachePXAT() > now.UnixMilli() {
				c.toFront(k)
				return m, nil
			}
			break
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
	buf := val.CacheMarshal(nil)
	putExpireAt(buf, xat)
	var m rueidis.RedisMessage
	if err := m.CacheUnmarshalView(buf); err != nil {
		f.val, f.err = val, nil // not kept: the waiters get it as it came
		close(f.ch)
		return xat
	}
	c.store(key, cmd, buf)
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
				if e := c.keys[k]; e != nil {
					c.remove(e)
				}
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
	c.pc.unmarkAll()
}

// store keeps msg as key's reply to cmd, and makes room for it.
func (c *cacheStore) store(key, cmd string, msg []byte) {
	k := c.keys[key]
	if k == nil {
		k = &cachedKey{key: key, size: len(key) + cachedKeyOverhead}
		c.keys[key] = k
		c.size += k.size
		c.pushFront(k)
	} else {
		c.toFront(k)
	}
	size := len(cmd) + len(msg)
	replaced := false
	for i := range k.replies {
		if k.replies[i].cmd == cmd {
			size -= len(k.replies[i].cmd) + len(k.replies[i].msg)
			k.replies[i].msg = msg
			replaced = true
			break
		}
	}
	if !replaced {
		k.replies = append(k.replies, cachedReply{cmd: cmd, msg: msg})
	}
	k.size += size
	c.size += size
	for c.size > c.max && c.lru.prev != &c.lru {
		c.remove(c.lru.prev)
	}
}

func (c *cacheStore) remove(k *cachedKey) {
	k.prev.next, k.next.prev = k.next, k.prev
	k.prev, k.next = nil, nil
	delete(c.keys, k.key)
	c.size -= k.size
}

func (c *cacheStore) flush() {
	c.keys = map[string]*cachedKey{}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.size = 0
}

func (c *cacheStore) pushFront(k *cachedKey) {
	k.prev, k.next = &c.lru, c.lru.next
	c.lru.next.prev = k
	c.lru.next = k
}

func (c *cacheStore) toFront(k *cachedKey) {
	if c.lru.next == k {
		return
	}
	k.prev.next, k.next.prev = k.next, k.prev
	c.pushFront(k)
}
