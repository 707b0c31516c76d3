package redisstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// str is a string reply, as Redis's (made through CacheUnmarshalView:
// rueidis has no other way to make one outside it): no expiry, a
// blob string.
func str(s string) rueidis.RedisMessage {
	buf := make([]byte, 7, 16+len(s))
	buf = append(buf, '$')
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
	buf = append(buf, s...)
	var m rueidis.RedisMessage
	if err := m.CacheUnmarshalView(buf); err != nil {
		panic(err)
	}
	return m
}

// cacheFill runs the Flight/Update of one cached read of key and cmd,
// replying val.
func cacheFill(t *testing.T, c *cacheStore, key, cmd, val string, now time.Time) {
	t.Helper()
	if v, e := c.Flight(key, cmd, time.Hour, now); v.IsCacheHit() || e != nil {
		t.Fatalf("%s %s: want a miss to send", key, cmd)
	}
	xat := c.Update(key, cmd, str(val))
	if want := now.Add(time.Hour).UnixMilli(); xat != want {
		t.Fatalf("%s %s: expiry %d, want %d (the asked one: the reply has none)", key, cmd, xat, want)
	}
}

func cached(c *cacheStore, key, cmd string, now time.Time) (string, bool) {
	v, _ := c.Flight(key, cmd, time.Hour, now)
	if !v.IsCacheHit() {
		// a miss registered a flight: end it, as a failed read would
		c.Cancel(key, cmd, context.Canceled)
		return "", false
	}
	s, _ := v.ToString()
	return s, true
}

func TestCacheStore(t *testing.T) {
	pc := &pooledClient{}
	c := newCacheStore(pc, 10*(slotOverhead+40))
	now := time.Now()
	cacheFill(t, c, "k1", "GET", "v1", now)
	cacheFill(t, c, "k1", "HMGET a", "m1", now)
	cacheFill(t, c, "k2", "GET", "v2", now)
	for _, tc := range []struct{ key, cmd, want string }{{"k1", "GET", "v1"}, {"k1", "HMGET a", "m1"}, {"k2", "GET", "v2"}} {
		if got, ok := cached(c, tc.key, tc.cmd, now); !ok || got != tc.want {
			t.Errorf("%s %s = %q, %v; want %q", tc.key, tc.cmd, got, ok, tc.want)
		}
	}
	if v, _ := c.Flight("k1", "GET", time.Hour, now); v.CachePXAT() != now.Add(time.Hour).UnixMilli() {
		t.Errorf("CachePXAT = %d, want the asked expiry", v.CachePXAT())
	}
	if _, ok := cached(c, "k1", "GET", now.Add(2*time.Hour)); ok {
		t.Error("an expired reply is served")
	}

	// An invalidation drops every reply of its key, and the key's mark.
	pc.marks.Store("k1", time.Now())
	c.Delete([]rueidis.RedisMessage{str("k1")})
	if _, ok := cached(c, "k1", "GET", now); ok {
		t.Error("k1 GET served after its invalidation")
	}
	if _, ok := cached(c, "k1", "HMGET a", now); ok {
		t.Error("k1 HMGET served after its invalidation")
	}
	if _, ok := pc.marks.Load("k1"); ok {
		t.Error("k1 still marked after its invalidation")
	}
	if got, ok := cached(c, "k2", "GET", now); !ok || got != "v2" {
		t.Errorf("k2 = %q, %v after k1's invalidation", got, ok)
	}

	// A reply invalidated while in flight is kept: it is newer.
	c.Flight("k3", "GET", time.Hour, now)
	c.Delete([]rueidis.RedisMessage{str("k3")})
	c.Update("k3", "GET", str("v3"))
	if got, ok := cached(c, "k3", "GET", now); !ok || got != "v3" {
		t.Errorf("k3 = %q, %v", got, ok)
	}

	// Waiters of a flight get its reply, or its error.
	c.Flight("k4", "GET", time.Hour, now)
	_, e := c.Flight("k4", "GET", time.Hour, now)
	if e == nil {
		t.Fatal("no flight to wait for")
	}
	c.Update("k4", "GET", str("v4"))
	if v, err := e.Wait(context.Background()); err != nil || !v.IsCacheHit() {
		t.Errorf("Wait = %v, %v", v, err)
	} else if s, _ := v.ToString(); s != "v4" {
		t.Errorf("Wait = %q", s)
	}

	// Bounded: the least recently used go first, the map and the slots
	// stay within what is held.
	for i := range 100 {
		cacheFill(t, c, fmt.Sprint("n", i), "GET", "0123456789", now)
		if _, ok := cached(c, "k2", "GET", now); !ok && i < 5 {
			t.Fatalf("k2, used at every step, evicted at step %d", i)
		}
	}
	if c.size > c.max {
		t.Errorf("size %d over max %d", c.size, c.max)
	}
	if _, ok := cached(c, "n0", "GET", now); ok {
		t.Error("n0, the oldest, still cached")
	}
	if got, ok := cached(c, "n99", "GET", now); !ok || got != "0123456789" {
		t.Errorf("n99 = %q, %v", got, ok)
	}
	if n := len(c.index); n > 10 {
		t.Errorf("%d hashes indexed for at most 10 replies", n)
	}
	if n := len(c.slots) - 1 - len(c.free); n > 10 || n != len(c.index) {
		t.Errorf("%d slots in use, %d hashes", n, len(c.index))
	}
	if len(c.flights) != 0 {
		t.Errorf("%d flights left", len(c.flights))
	}

	// Close empties it, fails the flights, and caches nothing more.
	c.Flight("k5", "GET", time.Hour, now)
	_, e = c.Flight("k5", "GET", time.Hour, now)
	c.Close(rueidis.ErrClosing)
	if _, err := e.Wait(context.Background()); err != rueidis.ErrClosing {
		t.Errorf("Wait after Close = %v", err)
	}
	if v, e := c.Flight("n99", "GET", time.Hour, now); v.IsCacheHit() || e != nil || len(c.flights) != 0 {
		t.Error("a closed cache serves or registers reads")
	}
}
