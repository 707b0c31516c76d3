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
// feature needs them: a hash of metadata, with the session's TTL; for a
// permanent session a marker whose TTL records when its cookie was last
// renewed; and, for the grace of a regenerate, a moved record under the old
// key, holding the new key, whose TTL is the grace. All carry the key as
// their hash tag, so on a Redis Cluster they live on its slot and one
// script may touch all.
//
// The metadata hash's fields: created (unix ms), expiry (the session's own
// idle lifetime in ms, -1 for permanent), scope (the site the session
// belongs to), subject (its owner), persist (on or off: its own choice of
// cookie), ua and addr (the client as the handler recorded it), seen (unix
// ms by Redis's clock: when the session was last written or had its
// lifetime renewed, which a subject's listing orders by, since the store
// does not know the handler's TTL then) and indexed (until when, in unix
// ms by Redis's clock, the subject's index is known to outlive the
// session; -1 for ever). Each is there only when set; seen only in a hash
// that has others.
//
// A subject's index is a sorted set of its sessions' keys (see
// subjects.go), under a key of its own derived from the subject alone,
// which lives on its own slot and which no session script touches.
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

// luaIndexHelpers are the Lua functions the session scripts share to keep
// a session's subject index ahead of it (see subjects.go): a script that
// would make a session of a subject live past what its index is known to
// outlive (the indexed field) does not write, and returns {3, subject,
// ttl}; the caller then indexes the session (indexAdd) and runs the script
// again with the index's confirmation (csub, cdl: the subject indexed, and
// the deadline the index then covers). Times are Redis's: the session's
// deadline is its node's clock plus its TTL.
const luaIndexHelpers = `
local function nowms()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function coverage(subj, ttl, now, stored, csub, cdl)
	local d = tonumber(stored)
	if csub == subj then
		local c = tonumber(cdl)
		if c and (c < 0 or not d or (d >= 0 and c > d)) then d = c end
	end
	if not d then return false end
	if d < 0 or (ttl > 0 and d >= now + ttl) then return d end
	return false
end
`

// loadScript reads a session and renews its lifetime when due, in one round
// trip. For a session with a TTL, the time since its last renewal is the TTL
// it was given less what is left of it; a permanent session has no TTL to
// tell that, so the marker's TTL does. A session's own expiry, in its
// metadata, replaces the handler's. A renewal of a session with metadata
// records when (seen); one of a session with a subject must be covered by
// its index (luaIndexHelpers).
//
// KEYS: the session, its metadata, its marker, its moved record. ARGV:
// ttl in ms (0 for permanent), renewAfter in ms, the renew fraction, the
// permanent renewal interval in ms, the index confirmation's subject and
// deadline. Returns nil when absent, {0, newKey} when moved away within a
// grace, {3, subject, ttl} when the index must come first, else {data,
// renewed, and the metaFields}.
var loadScript = rueidis.NewLuaScript(luaIndexHelpers + `
local v = redis.call('GET', KEYS[1])
if not v then
	local to = redis.call('GET', KEYS[4])
	if to then return {0, to} end
	return false
end
local ttl = tonumber(ARGV[1])
local after = tonumber(ARGV[2])
local meta = redis.call('HMGET', KEYS[2], 'created', 'expiry', 'scope', 'subject', 'persist', 'ua', 'addr', 'indexed')
local hasMeta = redis.call('EXISTS', KEYS[2]) == 1
local own = tonumber(meta[2])
if own and own < 0 then
	ttl = 0
	after = tonumber(ARGV[4])
elseif own and own > 0 then
	ttl = own
	after = math.floor(own / tonumber(ARGV[3]))
end
local left = redis.call('PTTL', KEYS[1])
local extend = false
if ttl > 0 then
	extend = left < 0 or ttl - left >= after
else
	extend = left >= 0
end
local now = false
if extend and meta[4] then
	now = nowms()
	local d = coverage(meta[4], ttl, now, meta[8], ARGV[5], ARGV[6])
	if not d then return {3, meta[4], ttl} end
	if d ~= tonumber(meta[8]) then redis.call('HSET', KEYS[2], 'indexed', d) end
end
local renewed = 0
if ttl > 0 then
	if extend then
		redis.call('PEXPIRE', KEYS[1], ttl)
		if hasMeta then redis.call('PEXPIRE', KEYS[2], ttl) end
		renewed = 1
	end
else
	if extend then
		redis.call('PERSIST', KEYS[1])
		if hasMeta then redis.call('PERSIST', KEYS[2]) end
	end
	if redis.call('SET', KEYS[3], '1', 'PX', math.max(after, 1), 'NX') then renewed = 1 end
end
if renewed == 1 and hasMeta then redis.call('HSET', KEYS[2], 'seen', now or nowms()) end
return {v, renewed, meta[1] or '', meta[2] or '', meta[3] or '', meta[4] or '', meta[5] or '', meta[6] or '', meta[7] or ''}
`)

// renameScript moves a session and its metadata to a new key with a fresh
// TTL (the session's own expiry, if it has one), atomically, and with a
// grace leaves the moved record under the old key. A session with a
// subject moves only once its index holds the new key (luaIndexHelpers).
// KEYS: old, new, old metadata, new metadata, old marker, old moved record,
// new marker, new moved record. ARGV: ttl in ms, 0 for none; grace in ms, 0
// for none; the index confirmation's subject and deadline for the new key.
// Returns {1} when moved, {0} when the old key is absent, {2, newKey}
// when it is a moved record (no session), {3, subject, ttl} when the index
// must come first.
var renameScript = rueidis.NewLuaScript(luaIndexHelpers + `
local v = redis.call('GET', KEYS[1])
if not v then
	local to = redis.call('GET', KEYS[6])
	if to then return {2, to} end
	return {0}
end
local ttl = tonumber(ARGV[1])
local own = tonumber(redis.call('HGET', KEYS[3], 'expiry'))
if own and own < 0 then ttl = 0 elseif own and own > 0 then ttl = own end
local subj = redis.call('HGET', KEYS[3], 'subject')
local now = nowms()
local d = false
if subj then
	d = coverage(subj, ttl, now, nil, ARGV[3], ARGV[4])
	if not d then return {3, subj, ttl} end
end
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
	redis.call('HSET', KEYS[4], 'seen', now)
	if d then redis.call('HSET', KEYS[4], 'indexed', d) else redis.call('HDEL', KEYS[4], 'indexed') end
	if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
end
local grace = tonumber(ARGV[2])
if grace > 0 then
	redis.call('SET', KEYS[6], KEYS[2], 'PX', grace)
else
	redis.call('DEL', KEYS[6])
end
return {1}
`)

// patchScript writes a patch's result if the session still holds what the
// merge started from, in one round trip with no WATCH. KEYS: the session,
// its metadata, its moved record. ARGV: 1 if the session was there (0 if
// absent), the value it held, 1 to write (0 only to check), the new value
// (” to delete the session), ttl in ms (0 for none), created to record
// when there is none (unix ms, 0 for none), own expiry to set (” for
// none), scope to record when there is none (” for none), 1 to set the
// subject (0 to leave it), the subject (” removes it), persist, user agent
// and address to set (” for none), the index confirmation's subject and
// deadline. Returns {1} when written, {0, current} when the session holds
// something else (then the caller merges again), {2, newKey} when it moved
// away, {3, subject, ttl} when its index must come first
// (luaIndexHelpers). A write with metadata records when (seen).
var patchScript = rueidis.NewLuaScript(luaIndexHelpers + `
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
local old = {false, false, false}
if cur then old = redis.call('HMGET', KEYS[2], 'expiry', 'subject', 'indexed') end
local ttl = tonumber(ARGV[5])
local own = old[1]
if ARGV[7] ~= '' then own = ARGV[7] end
own = tonumber(own)
if own and own < 0 then ttl = 0 elseif own and own > 0 then ttl = own end
local subj = old[2] or ''
if ARGV[9] == '1' then subj = ARGV[10] end
local now = nowms()
local d = false
if subj ~= '' then
	local stored = nil
	if subj == old[2] then stored = old[3] end
	d = coverage(subj, ttl, now, stored, ARGV[14], ARGV[15])
	if not d then return {3, subj, ttl} end
end
if not cur then redis.call('DEL', KEYS[2]) end
if ARGV[6] ~= '0' then redis.call('HSETNX', KEYS[2], 'created', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'expiry', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSETNX', KEYS[2], 'scope', ARGV[8]) end
if d then
	redis.call('HSET', KEYS[2], 'subject', subj, 'indexed', d)
elseif old[2] then
	redis.call('HDEL', KEYS[2], 'subject', 'indexed')
end
if ARGV[11] ~= '' then redis.call('HSET', KEYS[2], 'persist', ARGV[11]) end
if ARGV[12] ~= '' then redis.call('HSET', KEYS[2], 'ua', ARGV[12]) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[2], 'addr', ARGV[13]) end
if ttl > 0 then
	redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
else
	redis.call('SET', KEYS[1], ARGV[4])
end
if redis.call('EXISTS', KEYS[2]) == 1 then
	redis.call('HSET', KEYS[2], 'seen', now)
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
	var conf indexConf
	for range maxIndexRounds {
		e, need, err := s.loadScripted(ctx, c, key, ttl, conf)
		s.pc.observe(err)
		if err != nil || need.subject == "" {
			return e, err
		}
		// A renewal of a session of a subject waits for its index.
		if conf, _, err = s.indexAdd(ctx, c, need.subject, key, need.ttl); err != nil {
			return sessionstore.Entry{}, fmt.Errorf("redis: loading session: %w", err)
		}
	}
	return sessionstore.Entry{}, &storeError{errors.New("redis: loading session: the subject index never covered it")}
}

// maxIndexRounds bounds the script runs of one operation that each find
// the session's subject index must come first: the first covers it, unless
// the session changed meanwhile.
const maxIndexRounds = 4

// loadCached reads key and its metadata through the client-side cache. ok
// is false when the script must answer instead: the key is absent (it may
// have moved), or its lifetime is due for renewal.
func (s *RedisStore) loadCached(ctx context.Context, c rueidis.Client, key string, ttl time.Duration) (sessionstore.Entry, bool, error) {
	now := time.Now()
	// The replies as the connections' caches hold them, without building
	// the commands or the metadata's key; else through rueidis, which
	// reads them from Redis and caches them when they are not there.
	var mkBuf [96]byte
	var f [nMeta]string
	get, canon, ok := s.pc.cachedSession(key, viewString(appendSideKey(mkBuf[:0], key, "meta")), now.UnixMilli(), &f)
	var getErr, metaErr error
	var meta rueidis.RedisMessage
	if ok {
		s.pc.hits.Add(1)
	} else {
		res := c.DoMultiCache(ctx,
			rueidis.CT(c.B().Get().Key(key).Cache(), cacheTTL),
			rueidis.CT(c.B().Hmget().Key(metaKey(key)).Field(metaFields[:]...).Cache(), cacheTTL))
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
	if !ok {
		if metaErr != nil {
			return sessionstore.Entry{}, false, metaErr
		}
		fields, err := meta.ToArray()
		if err != nil {
			return sessionstore.Entry{}, false, err
		}
		for i := range min(len(fields), nMeta) {
			f[i], _ = fields[i].ToString()
		}
	}
	m := parseMeta(&f)
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

// indexNeed is a script's answer that the session's subject index must
// come first: the subject, and the session's lifetime to cover.
type indexNeed struct {
	subject string
	ttl     time.Duration
}

// parseIndexNeed reads a script's {3, subject, ttl} reply.
func parseIndexNeed(res []rueidis.RedisMessage) (indexNeed, bool) {
	if len(res) != 3 {
		return indexNeed{}, false
	}
	if code, err := res[0].AsInt64(); err != nil || code != 3 {
		return indexNeed{}, false
	}
	subj, err := res[1].ToString()
	ms, err2 := res[2].AsInt64()
	if err != nil || err2 != nil || subj == "" {
		return indexNeed{}, false
	}
	return indexNeed{subject: subj, ttl: time.Duration(ms) * time.Millisecond}, true
}

// loadScripted reads key in one script, renewing it when due; or returns
// what the subject index needs first.
func (s *RedisStore) loadScripted(ctx context.Context, c rueidis.Client, key string, ttl time.Duration, conf indexConf) (sessionstore.Entry, indexNeed, error) {
	res, err := loadScript.Exec(ctx, c, []string{key, metaKey(key), markerKey(key), movedKey(key)}, []string{
		strconv.FormatInt(ttl.Milliseconds(), 10),
		strconv.FormatInt(max(sessionstore.RenewInterval(ttl).Milliseconds(), 1), 10),
		strconv.Itoa(sessionstore.RenewFraction),
		strconv.FormatInt(sessionstore.RenewInterval(0).Milliseconds(), 10),
		conf.subject, conf.deadline,
	}).ToArray()
	if rueidis.IsRedisNil(err) {
		return sessionstore.Entry{}, indexNeed{}, sessionstore.ErrNotFound
	}
	if err != nil {
		return sessionstore.Entry{}, indexNeed{}, fmt.Errorf("redis: loading session: %w", err)
	}
	if len(res) == 2 {
		if to, err := res[1].ToString(); err == nil {
			return sessionstore.Entry{}, indexNeed{}, &sessionstore.MovedError{To: to}
		}
	}
	if need, ok := parseIndexNeed(res); ok {
		return sessionstore.Entry{}, need, nil
	}
	if len(res) != 2+nMeta {
		return sessionstore.Entry{}, indexNeed{}, fmt.Errorf("redis: loading session: unexpected reply of %d values", len(res))
	}
	raw, _ := res[0].ToString()
	renewed, _ := res[1].ToInt64()
	var f [nMeta]string
	for i := range nMeta {
		f[i], _ = res[2+i].ToString()
	}
	data, err := mergepatch.Normalize(raw)
	if err != nil {
		return sessionstore.Entry{}, indexNeed{}, &storeError{fmt.Errorf("redis: stored session data: %w", err)}
	}
	return sessionstore.Entry{Data: data, Meta: parseMeta(&f), Renewed: renewed == 1}, indexNeed{}, nil
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
	if err := checkMeta(&opts); err != nil {
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

// runBatch applies the patches of batch, in order, in one write. A
// write that sets a subject indexes the session first (and one that would
// outlive its index's coverage, when the script says so).
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
	var conf indexConf
	var card int64
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		args, want := s.mergeBatch(batch, cur, exists)
		if want.subject != "" && !conf.fresh(want.subject) {
			if conf, card, err = s.indexAdd(ctx, c, want.subject, key, want.ttl); err != nil {
				fail(fmt.Errorf("redis: saving session: %w", err))
				return
			}
		}
		args = append(args, conf.subject, conf.deadline)
		s.pc.mark(key)
		res, err := patchScript.Exec(ctx, c, keys, args).ToArray()
		if s.pc.observe(err) != nil {
			fail(fmt.Errorf("redis: saving session: %w", err))
			return
		}
		code, _ := res[0].ToInt64()
		switch code {
		case 1:
			if card > pruneAbove {
				s.prune(ctx, c, conf.subject)
			}
			return
		case 2:
			to, _ := res[1].ToString()
			fail(&sessionstore.MovedError{To: to})
			return
		case 3:
			need, ok := parseIndexNeed(res)
			if !ok {
				fail(fmt.Errorf("redis: saving session: unexpected reply of %d values", len(res)))
				return
			}
			if conf, card, err = s.indexAdd(ctx, c, need.subject, key, need.ttl); err != nil {
				fail(fmt.Errorf("redis: saving session: %w", err))
				return
			}
			continue
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
// result, and returns the script's arguments for the write (but the index
// confirmation's), and the subject the write sets, if any, with the
// lifetime it gives the session as far as the batch knows (an own expiry
// stored before may lengthen it: the script says so).
func (s *RedisStore) mergeBatch(batch []*patchReq, cur string, exists bool) ([]string, indexNeed) {
	state, present := cur, exists
	var wrote bool
	var ttl, own time.Duration
	var created int64
	var m sessionstore.Meta // scope, subject, persist, user agent, addr to set
	var setSubject bool
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
			created, own, m, setSubject = 0, 0, sessionstore.Meta{}, false
			continue
		}
		state, present = data, true
		if r.opts.SetCreated && created == 0 {
			created = time.Now().UnixMilli()
		}
		if r.opts.Expiry != 0 {
			own = r.opts.Expiry
		}
		if r.opts.Scope != "" && m.Scope == "" {
			m.Scope = r.opts.Scope
		}
		if r.opts.Subject != nil {
			m.Subject, setSubject = *r.opts.Subject, true
		}
		if r.opts.Persist != sessionstore.PersistDefault {
			m.Persist = r.opts.Persist
		}
		if r.opts.UserAgent != "" {
			m.UserAgent = r.opts.UserAgent
		}
		if r.opts.Addr != "" {
			m.Addr = r.opts.Addr
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
	expiry := ""
	if own != 0 {
		expiry = strconv.FormatInt(expiryField(own), 10)
	}
	var want indexNeed
	if wrote && present && setSubject && m.Subject != "" {
		want = indexNeed{subject: m.Subject, ttl: max(sessionstore.EffectiveTTL(own, ttl), 0)}
	}
	return []string{flag(exists), cur, flag(wrote), state, strconv.FormatInt(ttl.Milliseconds(), 10),
		strconv.FormatInt(created, 10), expiry, m.Scope, flag(setSubject), m.Subject,
		persistField(m.Persist), m.UserAgent, m.Addr}, want
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
		c.B().Hmget().Key(metaKey(key)).Field(metaFields[:]...).Build())
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
	var f [nMeta]string
	for i := range min(len(fields), nMeta) {
		f[i], _ = fields[i].ToString()
	}
	data, err := mergepatch.Normalize(raw)
	if err != nil {
		return sessionstore.Entry{}, 0, &storeError{fmt.Errorf("redis: stored session data: %w", err)}
	}
	ttl := time.Duration(max(pttl, 0)) * time.Millisecond // no TTL: permanent
	return sessionstore.Entry{Data: data, Meta: parseMeta(&f)}, ttl, nil
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
// neither. Either way a session with a subject is in its index under the
// new key before it is there (the old key's entry, stale now, is left for
// a listing to drop).
func (s *RedisStore) Rename(ctx context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	c, err := s.pc.get()
	if err != nil {
		return fmt.Errorf("redis: regenerating session: %w", err)
	}
	ttl, grace := max(opts.TTL, 0), max(opts.Grace, 0)
	s.pc.mark(oldKey, newKey)
	if s.cluster {
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
	// The request that regenerates has just loaded the session: its
	// cached metadata names its subject, whose index then takes the new
	// key before the script runs, saving the script's round trip to ask.
	var conf indexConf
	var f [nMeta]string
	var mkBuf [96]byte
	if _, _, ok := s.pc.cachedSession(oldKey, viewString(appendSideKey(mkBuf[:0], oldKey, "meta")), time.Now().UnixMilli(), &f); ok && f[fSubject] != "" {
		m := parseMeta(&f)
		if conf, _, err = s.indexAdd(ctx, c, m.Subject, newKey, max(sessionstore.EffectiveTTL(m.Expiry, ttl), 0)); err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
	}
	keys := []string{oldKey, newKey, metaKey(oldKey), metaKey(newKey), markerKey(oldKey), movedKey(oldKey), markerKey(newKey), movedKey(newKey)}
	for range maxIndexRounds {
		res, err := renameScript.Exec(ctx, c, keys, []string{
			strconv.FormatInt(ttl.Milliseconds(), 10), strconv.FormatInt(grace.Milliseconds(), 10), conf.subject, conf.deadline,
		}).ToArray()
		if err := s.pc.observe(err); err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		if need, ok := parseIndexNeed(res); ok {
			if conf, _, err = s.indexAdd(ctx, c, need.subject, newKey, need.ttl); err != nil {
				return fmt.Errorf("redis: regenerating session: %w", err)
			}
			continue
		}
		code, err := res[0].AsInt64()
		if err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		switch code {
		case 0:
			return sessionstore.ErrNotFound
		case 2:
			to, _ := res[1].ToString()
			return &sessionstore.MovedError{To: to} // a grace record: moved already
		}
		return nil
	}
	return &storeError{errors.New("redis: regenerating session: the subject index never covered it")}
}

// renameAcrossSlots copies the session to the new key, then deletes the
// old one (and leaves the moved record) in a transaction that fails if the
// old one changed meanwhile (a concurrent patch or clear), and starts over
// if it did. A session with a subject is indexed under the new key before
// the copy is written.
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
			eff := max(sessionstore.EffectiveTTL(entry.Meta.Expiry, ttl), 0)
			var conf indexConf
			if entry.Meta.Subject != "" {
				if conf, _, err = s.indexAdd(ctx, c, entry.Meta.Subject, newKey, eff); err != nil {
					_ = d.Do(ctx, d.B().Unwatch().Build()).Error()
					return err
				}
			}
			if err := s.writeCopy(ctx, c, newKey, entry, eff, conf); err != nil {
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

// writeCopy writes a session and all its metadata under key with a
// lifetime of ttl, for a rename across Cluster slots; conf is its
// subject index's confirmation, if it has a subject. Seen is this
// instance's clock: the copy is not written by a script, which would read
// Redis's.
func (s *RedisStore) writeCopy(ctx context.Context, c rueidis.Client, key string, entry sessionstore.Entry, ttl time.Duration, conf indexConf) error {
	m := entry.Meta
	var fields []string
	if !m.Created.IsZero() {
		fields = append(fields, "created", strconv.FormatInt(m.Created.UnixMilli(), 10))
	}
	if m.Expiry != 0 {
		fields = append(fields, "expiry", strconv.FormatInt(expiryField(m.Expiry), 10))
	}
	for _, f := range [...]struct{ name, val string }{
		{"scope", m.Scope}, {"subject", m.Subject}, {"persist", persistField(m.Persist)}, {"ua", m.UserAgent}, {"addr", m.Addr},
	} {
		if f.val != "" {
			fields = append(fields, f.name, f.val)
		}
	}
	if m.Subject != "" {
		fields = append(fields, "indexed", conf.deadline)
	}
	if len(fields) > 0 {
		fields = append(fields, "seen", strconv.FormatInt(time.Now().UnixMilli(), 10))
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
