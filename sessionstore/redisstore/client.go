package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// A pooledClient is the rueidis client of one set of connection settings,
// shared by every config that has them, with what goes with it: the
// client-side cache, the failure detector and the metrics' counters.
//
// The failure detector: a store call that fails for want of Redis (not a
// Redis error reply, nor a canceled request) counts a failure, a success
// resets the count; after failThreshold failures in a row the client is
// down, and every store call fails at once with errRedisDown, without
// touching the network, while a background probe pings Redis every
// probeInterval (each ping bounded by the dial timeout). The first ping
// that succeeds brings the client up again. Before its first connection
// the client is down too, and the probe makes that connection.
type pooledClient struct {
	opts   rueidis.ClientOption
	logger *zap.Logger
	addrs  []string // redacted, for logs

	client atomic.Pointer[rueidis.Client] // nil until the first connection
	cached atomic.Bool                    // reads go through the client-side cache
	up     atomic.Bool
	fails  atomic.Int32
	probe  sync.Mutex // held by the one probe running
	stop   chan struct{}
	closed sync.Once

	hits, misses atomic.Uint64

	queues patchQueues // concurrent patches of one key, applied in order

	// marks holds the keys this instance has written and Redis has not yet
	// invalidated in its cache (the invalidation of a key a client writes
	// itself comes just after the write's reply): a Load of a marked key
	// reads past the cache. A mark ends with the invalidation, or after
	// markLife.
	marks sync.Map // key -> time.Time

	// stores are the client-side caches of the connections that have
	// cached something and are not closed, for Load to read without
	// building commands (copied on write).
	storesMu sync.Mutex
	stores   atomic.Pointer[[]*cacheStore]
}

func (pc *pooledClient) addStore(c *cacheStore) {
	pc.storesMu.Lock()
	defer pc.storesMu.Unlock()
	var list []*cacheStore
	if p := pc.stores.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, c)
	pc.stores.Store(&list)
}

func (pc *pooledClient) removeStore(c *cacheStore) {
	pc.storesMu.Lock()
	defer pc.storesMu.Unlock()
	p := pc.stores.Load()
	if p == nil {
		return
	}
	list := make([]*cacheStore, 0, len(*p))
	for _, s := range *p {
		if s != c {
			list = append(list, s)
		}
	}
	pc.stores.Store(&list)
}

// cachedSession finds a session's cached replies in the connections'
// caches: each is valid for as long as its connection's cache holds it,
// since Redis invalidates a key in every connection that read it. meta
// gets the metadata's fields.
func (pc *pooledClient) cachedSession(key, mkey string, nowMs int64, meta *[nMeta]string) (get rueidis.RedisMessage, canon, ok bool) {
	p := pc.stores.Load()
	if p == nil {
		return
	}
	for _, c := range *p {
		if get, canon, ok = c.cachedSession(key, mkey, nowMs, meta); ok {
			return
		}
	}
	return
}

const (
	failThreshold = 2
	probeInterval = 100 * time.Millisecond
	markLife      = time.Second
)

// errRedisDown is what store calls return while the client is down.
var errRedisDown = errors.New("redis is unreachable (failing fast until a probe reaches it)")

func newPooledClient(opts rueidis.ClientOption, logger *zap.Logger, addrs []string) *pooledClient {
	pc := &pooledClient{opts: opts, logger: logger, addrs: addrs, stop: make(chan struct{})}
	size := opts.CacheSizeEachConn
	pc.opts.NewCacheStoreFn = func(rueidis.CacheStoreOption) rueidis.CacheStore {
		return newCacheStore(pc, size)
	}
	// One attempt now, so that a Redis that is up serves the first
	// requests; a refused connection fails at once, an unreachable host
	// takes the dial timeout. After that, the probe keeps trying.
	if err := pc.connect(); err != nil {
		logger.Warn("Redis cannot be reached yet; requests are served as on_error says until it can",
			zap.Strings("address", addrs), zap.Error(err))
		go pc.probeUntilUp()
	}
	return pc
}

// connect makes the rueidis client. A Redis that cannot track keys for a
// client-side cache (older than 6, or CLIENT TRACKING refused) gets a
// client without one, and one log line says so.
func (pc *pooledClient) connect() error {
	c, err := rueidis.NewClient(pc.opts)
	cached := true
	if err != nil && noTracking(err) {
		opts := pc.opts
		opts.DisableCache = true
		if c, err = rueidis.NewClient(opts); err == nil {
			cached = false
			pc.logger.Warn("this Redis cannot track keys for a client-side cache (it needs Redis 6 or later with CLIENT TRACKING): session reads are not cached",
				zap.Strings("address", pc.addrs))
		}
	}
	if err != nil {
		return err
	}
	pc.cached.Store(cached)
	pc.client.Store(&c)
	pc.fails.Store(0)
	pc.up.Store(true)
	return nil
}

func noTracking(err error) bool {
	if errors.Is(err, rueidis.ErrNoCache) {
		return true
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := strings.ToLower(re.Error())
		return strings.Contains(msg, "tracking") || strings.Contains(msg, "unknown command") && strings.Contains(msg, "hello")
	}
	return false
}

// get returns the client, or errRedisDown at once while it is down.
func (pc *pooledClient) get() (rueidis.Client, error) {
	if !pc.up.Load() {
		return nil, errRedisDown
	}
	return *pc.client.Load(), nil
}

// observe counts err for the failure detector and returns it.
func (pc *pooledClient) observe(err error) error {
	if !isConnFailure(err) {
		if pc.fails.Load() != 0 {
			pc.fails.Store(0)
		}
		return err
	}
	if pc.fails.Add(1) >= failThreshold && pc.up.CompareAndSwap(true, false) {
		pc.logger.Error("Redis is unreachable: session store calls fail at once until it answers again",
			zap.Strings("address", pc.addrs), zap.Error(err))
		go pc.probeUntilUp()
	}
	return err
}

// isConnFailure tells a failure to reach Redis from a reply (an error
// reply, a missing key) and from the request's own end.
func isConnFailure(err error) bool {
	if err == nil || rueidis.IsRedisNil(err) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sessionstore.ErrNotFound) || errors.Is(err, sessionstore.ErrMoved) || errors.Is(err, sessionstore.ErrTooLarge) {
		return false
	}
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	var st *storeError
	return !errors.As(err, &st)
}

// storeError is an error of the store's own (bad data, a conflict bound),
// not of the connection.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func (pc *pooledClient) probeUntilUp() {
	if !pc.probe.TryLock() {
		return
	}
	defer func() {
		pc.probe.Unlock()
		// Failures between "up" and the unlock above found the probe
		// still running and started none: start one now (unless the
		// client is closing).
		select {
		case <-pc.stop:
		default:
			if !pc.up.Load() {
				go pc.probeUntilUp()
			}
		}
	}()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-pc.stop:
			return
		case <-t.C:
		}
		if cp := pc.client.Load(); cp == nil {
			if pc.connect() == nil {
				pc.logger.Info("Redis is reachable", zap.Strings("address", pc.addrs))
				return
			}
			continue
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), max(pc.opts.Dialer.Timeout, 100*time.Millisecond))
			err := (*cp).Do(ctx, (*cp).B().Ping().Build()).Error()
			cancel()
			// Any reply is Redis answering: an error reply (a user whose
			// ACL forbids PING, a server still LOADING) is not an outage,
			// and must not keep the store failing fast for good.
			if !isConnFailure(err) {
				pc.fails.Store(0)
				pc.up.Store(true)
				pc.logger.Info("Redis is reachable again", zap.Strings("address", pc.addrs))
				return
			}
		}
	}
}

// mark records that this instance is about to write key.
func (pc *pooledClient) mark(keys ...string) {
	if !pc.cached.Load() {
		return
	}
	now := time.Now()
	for _, k := range keys {
		pc.marks.Store(k, now)
	}
}

// marked reports whether key's cached copy may predate this instance's
// own write.
func (pc *pooledClient) marked(key string) bool {
	v, ok := pc.marks.Load(key)
	if !ok {
		return false
	}
	if time.Since(v.(time.Time)) < markLife {
		return true
	}
	pc.marks.CompareAndDelete(key, v)
	return false
}

func (pc *pooledClient) unmarkAll() {
	pc.marks.Range(func(k, _ any) bool {
		pc.marks.Delete(k)
		return true
	})
}

// Destruct closes the client, for the usage pool.
func (pc *pooledClient) Destruct() error {
	pc.closed.Do(func() {
		close(pc.stop)
		if cp := pc.client.Load(); cp != nil {
			(*cp).Close()
		}
	})
	return nil
}

// register adds the client's metrics to a config's registry: the cache's
// hits and misses (of session loads) and whether Redis is reachable,
// labeled with the client's settings' hash (configs with the same settings
// share the client and its figures).
func (pc *pooledClient) register(r prometheus.Registerer, label string) error {
	if r == nil {
		return nil
	}
	labels := prometheus.Labels{"client": label}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "caddy_session_redis_cache_hits_total", ConstLabels: labels,
			Help: "Session loads served from the Redis store's client-side cache."}, func() float64 { return float64(pc.hits.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "caddy_session_redis_cache_misses_total", ConstLabels: labels,
			Help: "Session loads that went to Redis."}, func() float64 { return float64(pc.misses.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "caddy_session_redis_up", ConstLabels: labels,
			Help: "1 while Redis is reachable, 0 while the store fails fast."}, func() float64 {
			if pc.up.Load() {
				return 1
			}
			return 0
		}),
	} {
		if err := r.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) {
				continue
			}
			return fmt.Errorf("registering redis metrics: %w", err)
		}
	}
	return nil
}
