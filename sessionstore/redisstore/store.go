package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/redis/rueidis"

	"github.com/caddy-session/caddy-session/sessionstore"
	"github.com/caddy-session/caddy-session/sessionstore/mergepatch"
)

// The keys of one session. The data lives under the key itself, as
// sanic_session has it, and nothing else does. Beside it, and only when a
// feature needs them: a hash of metadata (created: unix ms; expiry: the
// session's own idle lifetime in ms, -1 for permanent; scope: the site the
// session belongs to), with the session's TTL; for a permanent session a
// marker whose TTL records when its cookie was last renewed; and, for the
// grace of a regenerate, a moved record under the old key, holding the new
// key, whose TTL is the grace. All carry the key as their hash tag, so on a
// Redis Cluster they live on its slot and one script may touch all.
func metaKey(key string) string   { return sideKey(key, "meta") }
func markerKey(key string) string { return sideKey(key, "renewed") }
func movedKey(key string) string  { return sideKey(key, "moved") }
func sideKey(key, what string) string {
	if hasHashTag(key) {
		return key + ":" + what // key has a hash tag already: keep it
	}
	return "{" + key + "}:" + what
}

func hasHashTag(key string) bool {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return true
		}
	}
	return false
}

// appendSideKey appends sideKey(key, what) to b.
func appendSideKey(b []byte, key, what string) []byte {
	if hasHashTag(key) {
		b = append(b, key...)
	} else {
		b = append(append(append(b, '{'), key...), '}')
	}
	return append(append(b, ':'), what...)
}

// viewString is b as a string, sharing its bytes: for a string used only
// while b is neither written nor gone.
func viewString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// loadScript reads a session and renews its lifetime when due, in one round
// trip. For a session with a TTL, the time since its last renewal is the TTL
// it was given less what is left of it; a permanent session has no TTL to
// tell that, so the marker's TTL does. A session's own expiry, in its
// metadata, replaces the handler's.
//
// KEYS: the session, its metadata, its marker, its moved record. ARGV:
// ttl in ms (0 for permanent), renewAfter in ms, the renew fraction, the
// permanent renewal interval in ms. Returns nil when absent, {0, newKey}
// when moved away within a grace, else {data, renewed, created, expiry,
// scope}.
var loadScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	local to = redis.call('GET', KEYS[4])
	if to then return {0, to} end
	return false
end
local ttl = tonumber(ARGV[1])
local after = tonumber(ARGV[2])
local meta = redis.call('HMGET', KEYS[2], 'created', 'expiry', 'scope')
local hasMeta = meta[1] or meta[2] or meta[3]
local own = tonumber(meta[2])
if own and own < 0 then
	ttl = 0
	after = tonumber(ARGV[4])
elseif own and own > 0 then
	ttl = own
	after = math.floor(own / tonumber(ARGV[3]))
end
local renewed = 0
if ttl > 0 then
	local left = redis.call('PTTL', KEYS[1])
	if left < 0 or ttl - left >= after then
		redis.call('PEXPIRE', KEYS[1], ttl)
		if hasMeta then redis.call('PEXPIRE', KEYS[2], ttl) end
		renewed = 1
	end
else
	if redis.call('PTTL', KEYS[1]) >= 0 then
		redis.call('PERSIST', KEYS[1])
		if hasMeta then redis.call('PERSIST', KEYS[2]) end
	end
	if redis.call('SET', KEYS[3], '1', 'PX', math.max(after, 1), 'NX') then renewed = 1 end
end
return {v, renewed, meta[1] or '', meta[2] or '', meta[3] or ''}
`)

// renameScript moves a session and its metadata to a new key with a fresh
// TTL (the session's own expiry, if it has one), atomically, and with a
// grace leaves the moved record under the old key. KEYS: old, new, old
// metadata, new metadata, old marker, old moved record, new marker, new
// moved record. ARGV: ttl in ms, 0 for none; grace in ms, 0 for none.
// Returns 0 when the old key is absent (a moved record is no session).
var renameScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if not v then
	local to = redis.call('GET', KEYS[6])
	if to then return to end
	return 0
end
local ttl = tonumber(ARGV[1])
local own = tonumber(redis.call('HGET', KEYS[3], 'expiry'))
if own and own < 0 then ttl = 0 elseif own and own > 0 then ttl = own end
if ttl > 0 then
	redis.call('SET', KEYS[2], v, 'PX', ttl)
else
	redis.call('SET', KEYS[2], v)
end
redis.call('DEL', KEYS[1], KEYS[5], KEYS[4], KEYS[7], KEYS[8])
local meta = redis.call('HGETALL', KEYS[3])
if #meta > 0 then
	redis.call('HSET', KEYS[4], unpack(meta))
	redis.call('DEL', KEYS[3])
	if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
end
local grace = tonumber(ARGV[2])
if grace > 0 then
	redis.call('SET', KEYS[6], KEYS[2], 'PX', grace)
else
	redis.call('DEL', KEYS[6])
end
return 1
`)

// patchScript writes a patch's result if the session still holds what the
// merge started from, in one round trip with no WATCH. KEYS: the session,
// its metadata, its moved record. ARGV: 1 if the session was there (0 if
// absent), the value it held, 1 to write (0 only to check), the new value
// (” to delete the session), ttl in ms (0 for none), created to record
// when there is none (unix ms, 0 for none), own expiry to set (” for
// none), scope to record when there is none (” for none). Returns {1}
// when written, {0, current} when the session holds something else (then
// the caller merges again), {2, newKey} when it moved away.
var patchScript = rueidis.NewLuaScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
	local to = redis.call('GET', KEYS[3])
	if to then return {2, to} end
end
if ARGV[1] == '1' then
	if cur ~= ARGV[2] then return {0, cur} end
elseif cur then
	return {0, cur}
end
if ARGV[3] ~= '1' then return {1} end
if ARGV[4] == '' then
	redis.call('DEL', KEYS[1], KEYS[2])
	return {1}
end
if not cur then redis.call('DEL', KEYS[2]) end
if ARGV[6] ~= '0' then redis.call('HSETNX', KEYS[2], 'created', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'expiry', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSETNX', KEYS[2], 'scope', ARGV[8]) end
local ttl = tonumber(ARGV[5])
local own = tonumber(redis.call('HGET', KEYS[2], 'expiry'))
if own and own < 0 then ttl = 0 elseif own and own > 0 then ttl = own end
if ttl > 0 then
	redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
else
	redis.call('SET', KEYS[1], ARGV[4])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
	if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
end
return {1}
`)

// maxPatchAttempts bounds the merges of a patch that writers through other
// instances keep interrupting (writers through this one are coalesced).
const maxPatchAttempts = 100

// cacheTTL is the client-side lifetime asked of cached replies: in effect
// none, so that a cached copy lives as long as the key's own TTL (rueidis
// caps it with the key's PTTL) and Redis's invalidations keep it true. A
// cached copy that has more than noServerTTL left came from a key without
// a TTL.
const (
	cacheTTL    = 100 * 365 * 24 * time.Hour
	noServerTTL = 50 * 365 * 24 * time.Hour
)

// Load implements sessionstore.Store. A session in the client-side cache,
// not due for renewal, is served from it without a round trip; otherwise
// one script reads it (and renews it when due, or reports a move).
func (s *RedisStore) Load(ctx context.Context, key string, ttl time.Duration) (sessionstore.Entry, error) {
	c, err := s.pc.get()
	if err != nil {
		return sessionstore.Entry{}, fmt.Errorf("redis: loading session: %w", err)
	}
	if s.pc.cached.Load() && !s.pc.marked(key) {
		e, ok, err := s.loadCached(ctx, c, key, ttl)
		if err != nil {
			return sessionstore.Entry{}, fmt.Errorf("redis: loading session: %w", s.pc.observe(err))
		}
		if ok {
			return e, nil
		}
	} else {
		s.pc.misses.Add(1)
	}
	e, err := s.loadScripted(ctx, c, key, ttl)
	s.pc.observe(err)
	return e, err
}

// loadCached reads key and its metadata through the client-side cache. ok
// is false when the script must answer instead: the key is absent (it may
// have moved), or its lifetime is due for renewal.
func (s *RedisStore) loadCached(ctx context.Context, c rueidis.Client, key string, ttl time.Duration) (sessionstore.Entry, bool, error) {
	now := time.Now()
	// The replies as the connections' caches hold them, without building
	// the commands or the metadata's key; else through rueidis, which
	// reads them from Redis and caches them when they are not there.
	var mkBuf [96]byte
	get, meta, canon, ok := s.pc.cachedSession(key, viewString(appendSideKey(mkBuf[:0], key, "meta")), now.UnixMilli())
	var getErr, metaErr error
	if ok {
		s.pc.hits.Add(1)
	} else {
		res := c.DoMultiCache(ctx,
			rueidis.CT(c.B().Get().Key(key).Cache(), cacheTTL),
			rueidis.CT(c.B().Hmget().Key(metaKey(key)).Field("created", "expiry", "scope").Cache(), cacheTTL))
		if res[0].IsCacheHit() {
			s.pc.hits.Add(1)
		} else {
			s.pc.misses.Add(1)
		}
		get, _ = res[0].ToMessage()
		meta, _ = res[1].ToMessage()
		getErr, metaErr = res[0].NonRedisError(), res[1].NonRedisError()
	}
	if getErr != nil {
		return sessionstore.Entry{}, false, getErr
	}
	raw, err := get.ToString()
	if rueidis.IsRedisNil(err) {
		return sessionstore.Entry{}, false, nil
	}
	if err != nil {
		return sessionstore.Entry{}, false, err
	}
	if metaErr != nil {
		return sessionstore.Entry{}, false, metaErr
	}
	fields, err := meta.ToArray()
	if err != nil {
		return sessionstore.Entry{}, false, err
	}
	var f [3]string
	for i := range min(len(fields), 3) {
		f[i], _ = fields[i].ToString()
	}
	m := parseMeta(f[0], f[1], f[2])
	eff := sessionstore.EffectiveTTL(m.Expiry, ttl)
	left := time.Duration(get.CachePXAT()-now.UnixMilli()) * time.Millisecond
	if eff > 0 {
		if left > noServerTTL || eff-left >= max(sessionstore.RenewInterval(eff), time.Millisecond) {
			return sessionstore.Entry{}, false, nil
		}
	} else {
		if left <= noServerTTL {
			return sessionstore.Entry{}, false, nil // a TTL to remove
		}
		err := c.DoCache(ctx, c.B().Get().Key(markerKey(key)).Cache(), cacheTTL).Error()
		if rueidis.IsRedisNil(err) {
			return sessionstore.Entry{}, false, nil // the cookie's renewal is due
		}
		if err != nil {
			return sessionstore.Entry{}, false, err
		}
	}
	data := raw
	if !canon { // checked when the reply was cached
		if data, err = mergepatch.Normalize(raw); err != nil {
			return sessionstore.Entry{}, false, &storeError{fmt.Errorf("stored session data: %w", err)}
		}
	}
	return sessionstore.Entry{Data: data, Meta: m}, true, nil
}

// loadScripted reads key in one script, renewing it when due.
func (s *RedisStore) loadScripted(ctx context.Context, c rueidis.Client, key string, ttl time.Duration) (sessionstore.Entry, error) {
	res, err := loadScript.Exec(ctx, c, []string{key, metaKey(key), markerKey(key), movedKey(key)}, []string{
		strconv.FormatInt(ttl.Milliseconds(), 10),
		strconv.FormatInt(max(sessionstore.RenewInterval(ttl).Milliseconds(), 1), 10),
		strconv.Itoa(sessionstore.RenewFraction),
		strconv.FormatInt(sessionstore.RenewInterval(0).Milliseconds(), 10),
	}).ToArray()
	if rueidis.IsRedisNil(err) {
		return sessionstore.Entry{}, sessionstore.ErrNotFound
	}
	if err != nil {
		return sessionstore.Entry{}, fmt.Errorf("redis: loading session: %w", err)
	}
	if len(res) == 2 {
		if to, err := res[1].ToString(); err == nil {
			return sessionstore.Entry{}, &sessionstore.MovedError{To: to}
		}
	}
	if len(res) != 5 {
		return sessionstore.Entry{}, fmt.Errorf("redis: loading session: unexpected reply of %d values", len(res))
	}
	raw, _ := res[0].ToString()
	renewed, _ := res[1].ToInt64()
	created, _ := res[2].ToString()
	ownExpiry, _ := res[3].ToString()
	scope, _ := res[4].ToString()
	data, err := mergepatch.Normalize(raw)
	if err != nil {
		return sessionstore.Entry{}, &storeError{fmt.Errorf("redis: stored session data: %w", err)}
	}
	return sessionstore.Entry{Data: data, Meta: parseMeta(created, ownExpiry, scope), Renewed: renewed == 1}, nil
}

// parseMeta reads the metadata hash's fields; what is missing or unreadable
// stays zero.
func parseMeta(created, ownExpiry, scope string) sessionstore.Meta {
	m := sessionstore.Meta{Scope: scope}
	// An absent field is skipped, not parsed: ParseInt's error allocates.
	if created != "" {
		if ms, err := strconv.ParseInt(created, 10, 64); err == nil && ms > 0 {
			m.Created = time.UnixMilli(ms)
		}
	}
	if ownExpiry != "" {
		if ms, err := strconv.ParseInt(ownExpiry, 10, 64); err == nil {
			if ms < 0 {
				m.Expiry = sessionstore.Permanent
			} else {
				m.Expiry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return m
}

// checkScope refuses a scope longer than sessionstore.MaxScopeLength.
func checkScope(scope string) error {
	if len(scope) > sessionstore.MaxScopeLength {
		return fmt.Errorf("redis: saving session: scope of %d bytes, the limit is %d", len(scope), sessionstore.MaxScopeLength)
	}
	return nil
}

// A patchReq is one Patch call waiting in its key's queue.
type patchReq struct {
	patches []string
	opts    sessionstore.PatchOptions
	data    string
	err     error
	done    chan struct{}
	lead    bool // woken to run the next batch, not with a result
}

// patchQueues coalesce the concurrent Patch calls of one key within this
// instance: the first caller runs a batch of every call queued by then,
// applied in order, in one script call; when it is done it wakes the first
// caller queued since, which runs the next batch. So concurrent writers of
// one session take turns by batches instead of colliding.
type patchQueues struct {
	mu sync.Mutex
	m  map[string][]*patchReq // nil slice: a batch runs, none queued
}

// enqueue queues r and reports whether r's caller runs the next batch.
func (q *patchQueues) enqueue(key string, r *patchReq) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m == nil {
		q.m = map[string][]*patchReq{}
	}
	reqs, running := q.m[key]
	q.m[key] = append(reqs, r)
	return !running
}

// take returns the batch to run: every call queued.
func (q *patchQueues) take(key string) []*patchReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.m[key]
	q.m[key] = batch[len(batch):len(batch)]
	return batch
}

// finish ends a batch: the next caller queued is woken to run the next,
// or the key leaves the queues.
func (q *patchQueues) finish(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	reqs := q.m[key]
	if len(reqs) == 0 {
		delete(q.m, key)
		return
	}
	reqs[0].lead = true
	close(reqs[0].done)
}

// Patch implements sessionstore.Store. The merge is done in Go (which
// keeps numbers exactly as written and the stored text canonical) against
// the value this instance last read (from the client-side cache), and
// written by a script that compares the stored value with it: one round
// trip, no WATCH. On a real conflict (another instance wrote meanwhile)
// the script returns the current value and the merge is done again.
func (s *RedisStore) Patch(ctx context.Context, key string, patches []string, opts sessionstore.PatchOptions) (string, error) {
	if err := checkScope(opts.Scope); err != nil {
		return "", err
	}
	if _, err := s.pc.get(); err != nil {
		return "", fmt.Errorf("redis: saving session: %w", err)
	}
	r := &patchReq{patches: patches, opts: opts, done: make(chan struct{})}
	if !s.pc.queues.enqueue(key, r) {
		<-r.done
		if !r.lead {
			return r.data, r.err
		}
	}
	batch := s.pc.queues.take(key)
	s.runBatch(ctx, key, batch)
	for _, b := range batch {
		if b != r {
			close(b.done)
		}
	}
	s.pc.queues.finish(key)
	return r.data, r.err
}

// runBatch applies the patches of batch, in order, in one write.
func (s *RedisStore) runBatch(ctx context.Context, key string, batch []*patchReq) {
	fail := func(err error) {
		for _, r := range batch {
			r.data, r.err = "", err
		}
	}
	c, err := s.pc.get()
	if err != nil {
		fail(fmt.Errorf("redis: saving session: %w", err))
		return
	}
	cur, exists, err := s.expected(ctx, c, key)
	if err != nil {
		fail(fmt.Errorf("redis: saving session: %w", s.pc.observe(err)))
		return
	}
	keys := []string{key, metaKey(key), movedKey(key)}
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		args := s.mergeBatch(batch, cur, exists)
		s.pc.mark(key)
		res, err := patchScript.Exec(ctx, c, keys, args).ToArray()
		if s.pc.observe(err) != nil {
			fail(fmt.Errorf("redis: saving session: %w", err))
			return
		}
		code, _ := res[0].ToInt64()
		switch code {
		case 1:
			return
		case 2:
			to, _ := res[1].ToString()
			fail(&sessionstore.MovedError{To: to})
			return
		}
		cur, err = res[1].ToString()
		exists = err == nil
	}
	fail(fmt.Errorf("redis: saving session: still contended after %d attempts", maxPatchAttempts))
}

// expected is the value to merge against: the one in the client-side
// cache (what this instance last read), else Redis's.
func (s *RedisStore) expected(ctx context.Context, c rueidis.Client, key string) (string, bool, error) {
	v, err := c.DoCache(ctx, c.B().Get().Key(key).Cache(), cacheTTL).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	return v, err == nil, err
}

// mergeBatch applies each call's patches in turn to cur, sets each call's
// result, and returns the script's arguments for the write.
func (s *RedisStore) mergeBatch(batch []*patchReq, cur string, exists bool) []string {
	state, present := cur, exists
	var wrote bool
	var ttl time.Duration
	var created int64
	expiry, scope := "", ""
	for _, r := range batch {
		r.data, r.err = "", nil
		if !present && !r.opts.Create {
			r.err = sessionstore.ErrNotFound
			continue
		}
		base := ""
		if present {
			base = state
		}
		data, err := mergepatch.Apply(base, r.patches)
		if err != nil {
			r.err = err
			continue
		}
		if sessionstore.OverSize(data, base, r.opts.MaxSize) {
			r.err = fmt.Errorf("%w: %d bytes, the limit is %d", sessionstore.ErrTooLarge, len(data), r.opts.MaxSize)
			continue
		}
		r.data, wrote, ttl = data, true, max(r.opts.TTL, 0)
		if data == mergepatch.EmptyData {
			state, present = "", false
			created, expiry, scope = 0, "", ""
			continue
		}
		state, present = data, true
		if r.opts.SetCreated && created == 0 {
			created = time.Now().UnixMilli()
		}
		if r.opts.Expiry != 0 {
			expiry = strconv.FormatInt(expiryField(r.opts.Expiry), 10)
		}
		if r.opts.Scope != "" && scope == "" {
			scope = r.opts.Scope
		}
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	if !present {
		state = ""
	}
	return []string{flag(exists), cur, flag(wrote), state, strconv.FormatInt(ttl.Milliseconds(), 10),
		strconv.FormatInt(created, 10), expiry, scope}
}

func expiryField(d time.Duration) int64 {
	if d == sessionstore.Permanent {
		return -1
	}
	return d.Milliseconds()
}

// Inspect implements sessionstore.Inspector: the session, its TTL and its
// metadata in one round trip, the lifetime untouched, past the cache. A
// moved record is no session: ErrNotFound.
func (s *RedisStore) Inspect(ctx context.Context, key string) (sessionstore.Entry, time.Duration, error) {
	c, err := s.pc.get()
	if err != nil {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	e, ttl, err := inspect(ctx, c, key)
	s.pc.observe(err)
	return e, ttl, err
}

// doer is what inspect needs of a client, dedicated or not.
type doer interface {
	DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult
	B() rueidis.Builder
}

func inspect(ctx context.Context, c doer, key string) (sessionstore.Entry, time.Duration, error) {
	res := c.DoMulti(ctx,
		c.B().Get().Key(key).Build(),
		c.B().Pttl().Key(key).Build(),
		c.B().Hmget().Key(metaKey(key)).Field("created", "expiry", "scope").Build())
	raw, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return sessionstore.Entry{}, 0, sessionstore.ErrNotFound
	}
	if err != nil {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	pttl, err := res[1].AsInt64()
	if err != nil {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	fields, err := res[2].ToArray()
	if err != nil {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	var f [3]string
	for i := range min(len(fields), 3) {
		f[i], _ = fields[i].ToString()
	}
	data, err := mergepatch.Normalize(raw)
	if err != nil {
		return sessionstore.Entry{}, 0, &storeError{fmt.Errorf("redis: stored session data: %w", err)}
	}
	ttl := time.Duration(max(pttl, 0)) * time.Millisecond // no TTL: permanent
	return sessionstore.Entry{Data: data, Meta: parseMeta(f[0], f[1], f[2])}, ttl, nil
}

// SharedKey implements sessionstore.Shared: stores with the same
// connection settings share a client, and one Redis.
func (s *RedisStore) SharedKey() string { return s.poolKey }

// Delete implements sessionstore.Store: the session, what is kept beside
// it, and a moved record under the key.
func (s *RedisStore) Delete(ctx context.Context, key string) error {
	c, err := s.pc.get()
	if err != nil {
		return fmt.Errorf("redis: deleting session: %w", err)
	}
	// A grace record's session goes too: a logout that loaded the session
	// just before a regenerate moved it must not be lost. Records chain
	// only through regenerates within a grace: a few at most.
	for range maxGraceHops {
		s.pc.mark(key)
		res := deleteScript.Exec(ctx, c, []string{key, metaKey(key), markerKey(key), movedKey(key)}, nil)
		if err := s.pc.observe(res.Error()); err != nil && !rueidis.IsRedisNil(err) {
			return fmt.Errorf("redis: deleting session: %w", err)
		}
		to, err := res.ToString()
		if err != nil {
			return nil // no grace record: done
		}
		key = to
	}
	return nil
}

// maxGraceHops bounds how many grace records a Delete follows.
const maxGraceHops = 4

// deleteScript deletes a session and what is kept beside it, and returns
// the key its grace record named, if it had one (nil otherwise). KEYS:
// the session, its metadata, its marker, its moved record.
var deleteScript = rueidis.NewLuaScript(`
local to = redis.call('GET', KEYS[4])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return to
`)

// Rename implements sessionstore.Store. On one server or a Sentinel primary
// it is one script, so no reader sees both keys or neither. Keys in a Redis
// Cluster live on different slots, which no single command spans: there the
// new key is written first and the old deleted after (and the moved record
// set, on the old key's slot), so a reader may briefly see both, never
// neither.
func (s *RedisStore) Rename(ctx context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	c, err := s.pc.get()
	if err != nil {
		return fmt.Errorf("redis: regenerating session: %w", err)
	}
	ttl, grace := max(opts.TTL, 0), max(opts.Grace, 0)
	s.pc.mark(oldKey, newKey)
	if !s.cluster {
		res := renameScript.Exec(ctx, c,
			[]string{oldKey, newKey, metaKey(oldKey), metaKey(newKey), markerKey(oldKey), movedKey(oldKey), markerKey(newKey), movedKey(newKey)},
			[]string{strconv.FormatInt(ttl.Milliseconds(), 10), strconv.FormatInt(grace.Milliseconds(), 10)})
		if err := s.pc.observe(res.Error()); err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		if to, err := res.ToString(); err == nil {
			return &sessionstore.MovedError{To: to} // a grace record: moved already
		}
		moved, err := res.AsInt64()
		if err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		if moved == 0 {
			return sessionstore.ErrNotFound
		}
		return nil
	}
	err = s.renameAcrossSlots(ctx, c, oldKey, newKey, ttl, grace)
	if errors.Is(err, sessionstore.ErrNotFound) {
		// A grace record says where a session went; it is no session.
		if to, gerr := c.Do(ctx, c.B().Get().Key(movedKey(oldKey)).Build()).ToString(); gerr == nil {
			return &sessionstore.MovedError{To: to}
		}
		return err
	}
	if err := s.pc.observe(err); err != nil {
		return fmt.Errorf("redis: regenerating session: %w", err)
	}
	return nil
}

// renameAcrossSlots copies the session to the new key, then deletes the
// old one (and leaves the moved record) in a transaction that fails if the
// old one changed meanwhile (a concurrent patch or clear), and starts over
// if it did.
func (s *RedisStore) renameAcrossSlots(ctx context.Context, c rueidis.Client, oldKey, newKey string, ttl, grace time.Duration) error {
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		var retry bool
		err := c.Dedicated(func(d rueidis.DedicatedClient) error {
			if err := d.Do(ctx, d.B().Watch().Key(oldKey, metaKey(oldKey)).Build()).Error(); err != nil {
				return err
			}
			entry, _, err := inspect(ctx, d, oldKey)
			if err != nil {
				_ = d.Do(ctx, d.B().Unwatch().Build()).Error()
				return err
			}
			if err := s.writeCopy(ctx, c, newKey, entry, ttl); err != nil {
				_ = d.Do(ctx, d.B().Unwatch().Build()).Error()
				return err
			}
			moved := d.B().Del().Key(movedKey(oldKey)).Build()
			if grace > 0 {
				moved = d.B().Set().Key(movedKey(oldKey)).Value(newKey).PxMilliseconds(grace.Milliseconds()).Build()
			}
			res := d.DoMulti(ctx,
				d.B().Multi().Build(),
				d.B().Del().Key(oldKey, metaKey(oldKey), markerKey(oldKey)).Build(),
				moved,
				d.B().Exec().Build())
			exec := res[len(res)-1]
			if err := exec.Error(); rueidis.IsRedisNil(err) {
				retry = true // the old key changed
				return nil
			} else if err != nil {
				return err
			}
			return nil
		})
		switch {
		case errors.Is(err, sessionstore.ErrNotFound):
			_ = c.Do(ctx, c.B().Del().Key(newKey, metaKey(newKey)).Build()).Error() // a copy from an earlier attempt
			return err
		case err != nil:
			return err
		case !retry:
			return nil
		}
	}
	return &storeError{fmt.Errorf("still contended after %d attempts", maxPatchAttempts)}
}

// writeCopy writes a session and its metadata under key, for a rename
// across Cluster slots.
func (s *RedisStore) writeCopy(ctx context.Context, c rueidis.Client, key string, entry sessionstore.Entry, ttl time.Duration) error {
	ttl = max(sessionstore.EffectiveTTL(entry.Meta.Expiry, ttl), 0)
	var fields []string
	if !entry.Meta.Created.IsZero() {
		fields = append(fields, "created", strconv.FormatInt(entry.Meta.Created.UnixMilli(), 10))
	}
	if entry.Meta.Expiry != 0 {
		fields = append(fields, "expiry", strconv.FormatInt(expiryField(entry.Meta.Expiry), 10))
	}
	if entry.Meta.Scope != "" {
		fields = append(fields, "scope", entry.Meta.Scope)
	}
	set := c.B().Set().Key(key).Value(entry.Data).Build()
	if ttl > 0 {
		set = c.B().Set().Key(key).Value(entry.Data).PxMilliseconds(ttl.Milliseconds()).Build()
	}
	cmds := rueidis.Commands{
		c.B().Multi().Build(),
		set,
		c.B().Del().Key(metaKey(key), markerKey(key), movedKey(key)).Build(),
	}
	if len(fields) > 0 {
		h := c.B().Hset().Key(metaKey(key)).FieldValue()
		for i := 0; i < len(fields); i += 2 {
			h = h.FieldValue(fields[i], fields[i+1])
		}
		cmds = append(cmds, h.Build())
		if ttl > 0 {
			cmds = append(cmds, c.B().Pexpire().Key(metaKey(key)).Milliseconds(ttl.Milliseconds()).Build())
		}
	}
	cmds = append(cmds, c.B().Exec().Build())
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

var _ = strings.Contains
