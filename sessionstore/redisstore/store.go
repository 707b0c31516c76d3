package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key + ":" + what // key has a hash tag already: keep it
		}
	}
	return "{" + key + "}:" + what
}

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
var loadScript = redis.NewScript(`
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
var renameScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
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

// maxPatchAttempts bounds the optimistic retries of a patch that other
// writers of the same session keep interrupting.
const maxPatchAttempts = 100

// Load implements sessionstore.Store.
func (s *RedisStore) Load(ctx context.Context, key string, ttl time.Duration) (sessionstore.Entry, error) {
	res, err := loadScript.Run(ctx, s.client, []string{key, metaKey(key), markerKey(key), movedKey(key)},
		ttl.Milliseconds(), max(sessionstore.RenewInterval(ttl).Milliseconds(), 1), sessionstore.RenewFraction,
		sessionstore.RenewInterval(0).Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return sessionstore.Entry{}, sessionstore.ErrNotFound
	}
	if err != nil {
		return sessionstore.Entry{}, fmt.Errorf("redis: loading session: %w", err)
	}
	if len(res) == 2 {
		if to, ok := res[1].(string); ok {
			return sessionstore.Entry{}, &sessionstore.MovedError{To: to}
		}
	}
	if len(res) != 5 {
		return sessionstore.Entry{}, fmt.Errorf("redis: loading session: unexpected reply of %d values", len(res))
	}
	raw, _ := res[0].(string)
	renewed, _ := res[1].(int64)
	created, _ := res[2].(string)
	ownExpiry, _ := res[3].(string)
	scope, _ := res[4].(string)
	data, err := mergepatch.Normalize(raw)
	if err != nil {
		return sessionstore.Entry{}, fmt.Errorf("redis: stored session data: %w", err)
	}
	return sessionstore.Entry{Data: data, Meta: parseMeta(created, ownExpiry, scope), Renewed: renewed == 1}, nil
}

// parseMeta reads the metadata hash's fields; what is missing or unreadable
// stays zero.
func parseMeta(created, ownExpiry, scope string) sessionstore.Meta {
	m := sessionstore.Meta{Scope: scope}
	if ms, err := strconv.ParseInt(created, 10, 64); err == nil && ms > 0 {
		m.Created = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(ownExpiry, 10, 64); err == nil {
		if ms < 0 {
			m.Expiry = sessionstore.Permanent
		} else {
			m.Expiry = time.Duration(ms) * time.Millisecond
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

// Patch implements sessionstore.Store. It is optimistic: it watches the
// session's keys, merges in Go, and writes in a MULTI/EXEC that fails if
// another writer got there first, then tries again. Merging in Go (not in a
// Lua script with cjson) keeps numbers exactly as written and the stored
// text canonical.
func (s *RedisStore) Patch(ctx context.Context, key string, patches []string, opts sessionstore.PatchOptions) (string, error) {
	if err := checkScope(opts.Scope); err != nil {
		return "", err
	}
	mkey, movedK := metaKey(key), movedKey(key)
	var data string
	txf := func(tx *redis.Tx) error {
		current, err := tx.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			to, err := tx.Get(ctx, movedK).Result()
			switch {
			case err == nil:
				return &sessionstore.MovedError{To: to}
			case !errors.Is(err, redis.Nil):
				return err
			}
			if !opts.Create {
				return sessionstore.ErrNotFound
			}
			current = ""
		case err != nil:
			return err
		}
		fields, err := tx.HMGet(ctx, mkey, "created", "expiry", "scope").Result()
		if err != nil {
			return err
		}
		created, _ := fields[0].(string)
		ownExpiry, _ := fields[1].(string)
		scope, _ := fields[2].(string)
		if current == "" {
			created, ownExpiry, scope = "", "", "" // metadata of a session that is gone
		}
		meta := parseMeta(created, ownExpiry, scope)
		data, err = mergepatch.Apply(current, patches)
		if err != nil {
			return err
		}
		if sessionstore.OverSize(data, current, opts.MaxSize) {
			return fmt.Errorf("%w: %d bytes, the limit is %d", sessionstore.ErrTooLarge, len(data), opts.MaxSize)
		}
		setMeta := map[string]any{}
		if opts.SetCreated && meta.Created.IsZero() {
			setMeta["created"] = time.Now().UnixMilli()
		}
		if opts.Expiry != 0 {
			meta.Expiry = opts.Expiry
			setMeta["expiry"] = expiryField(opts.Expiry)
		}
		if opts.Scope != "" && meta.Scope == "" {
			setMeta["scope"] = opts.Scope
		}
		ttl := max(sessionstore.EffectiveTTL(meta.Expiry, opts.TTL), 0)
		hasMeta := created != "" || ownExpiry != "" || scope != "" || len(setMeta) > 0
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if data == mergepatch.EmptyData {
				p.Del(ctx, key, mkey)
				return nil
			}
			if current == "" {
				p.Del(ctx, mkey) // what a session that is gone left
			}
			p.Set(ctx, key, data, ttl)
			if len(setMeta) > 0 {
				p.HSet(ctx, mkey, setMeta)
			}
			if hasMeta {
				if ttl > 0 {
					p.PExpire(ctx, mkey, ttl)
				} else {
					p.Persist(ctx, mkey)
				}
			}
			return nil
		})
		return err
	}
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		err := s.client.Watch(ctx, txf, key, mkey, movedK)
		if errors.Is(err, redis.TxFailedErr) {
			// Another writer changed the session: merge again, after a
			// random pause that grows with the contention, so that many
			// writers of one session do not keep colliding.
			pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(500*time.Microsecond)))
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return "", fmt.Errorf("redis: saving session: %w", ctx.Err())
			}
			continue
		}
		if errors.Is(err, sessionstore.ErrNotFound) || errors.Is(err, sessionstore.ErrTooLarge) || errors.Is(err, sessionstore.ErrMoved) {
			return "", err
		}
		if err != nil {
			return "", fmt.Errorf("redis: saving session: %w", err)
		}
		return data, nil
	}
	return "", fmt.Errorf("redis: saving session: still contended after %d attempts", maxPatchAttempts)
}

func expiryField(d time.Duration) int64 {
	if d == sessionstore.Permanent {
		return -1
	}
	return d.Milliseconds()
}

// Inspect implements sessionstore.Inspector: the session, its TTL and its
// metadata in one round trip, the lifetime untouched. A moved record is no
// session: ErrNotFound.
func (s *RedisStore) Inspect(ctx context.Context, key string) (sessionstore.Entry, time.Duration, error) {
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	var meta *redis.SliceCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		meta = p.HMGet(ctx, metaKey(key), "created", "expiry", "scope")
		return nil
	})
	if errors.Is(get.Err(), redis.Nil) {
		return sessionstore.Entry{}, 0, sessionstore.ErrNotFound
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	data, err := mergepatch.Normalize(get.Val())
	if err != nil {
		return sessionstore.Entry{}, 0, fmt.Errorf("redis: stored session data: %w", err)
	}
	fields := meta.Val()
	var created, ownExpiry, scope string
	if len(fields) == 3 {
		created, _ = fields[0].(string)
		ownExpiry, _ = fields[1].(string)
		scope, _ = fields[2].(string)
	}
	ttl := pttl.Val()
	if ttl < 0 {
		ttl = 0 // no TTL: permanent
	}
	return sessionstore.Entry{Data: data, Meta: parseMeta(created, ownExpiry, scope)}, ttl, nil
}

// SharedKey implements sessionstore.Shared: stores with the same
// connection settings share a client, and one Redis.
func (s *RedisStore) SharedKey() string { return s.poolKey }

// Delete implements sessionstore.Store: the session, what is kept beside
// it, and a moved record under the key.
func (s *RedisStore) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key, metaKey(key), markerKey(key), movedKey(key)).Err(); err != nil {
		return fmt.Errorf("redis: deleting session: %w", err)
	}
	return nil
}

// Rename implements sessionstore.Store. On one server or a Sentinel primary
// it is one script, so no reader sees both keys or neither. Keys in a Redis
// Cluster live on different slots, which no single command spans: there the
// new key is written first and the old deleted after (and the moved record
// set, on the old key's slot), so a reader may briefly see both, never
// neither.
func (s *RedisStore) Rename(ctx context.Context, oldKey, newKey string, opts sessionstore.RenameOptions) error {
	ttl, grace := max(opts.TTL, 0), max(opts.Grace, 0)
	if !s.cluster {
		moved, err := renameScript.Run(ctx, s.client,
			[]string{oldKey, newKey, metaKey(oldKey), metaKey(newKey), markerKey(oldKey), movedKey(oldKey), markerKey(newKey), movedKey(newKey)},
			ttl.Milliseconds(), grace.Milliseconds()).Int64()
		if err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		if moved == 0 {
			return sessionstore.ErrNotFound
		}
		return nil
	}
	// Across slots: copy the session to the new key, then delete the old
	// one (and leave the moved record) in a transaction that fails if the
	// old one changed meanwhile (a concurrent patch or clear), and start
	// over if it did.
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			entry, _, err := s.Inspect(ctx, oldKey)
			if err != nil {
				return err
			}
			if err := s.writeCopy(ctx, newKey, entry, ttl); err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, oldKey, metaKey(oldKey), markerKey(oldKey))
				if grace > 0 {
					p.Set(ctx, movedKey(oldKey), newKey, grace)
				} else {
					p.Del(ctx, movedKey(oldKey))
				}
				return nil
			})
			return err
		}, oldKey, metaKey(oldKey))
		switch {
		case errors.Is(err, redis.TxFailedErr):
			continue
		case errors.Is(err, sessionstore.ErrNotFound):
			_ = s.client.Del(ctx, newKey, metaKey(newKey)).Err() // a copy from an earlier attempt
			return err
		case err != nil:
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		return nil
	}
	return fmt.Errorf("redis: regenerating session: still contended after %d attempts", maxPatchAttempts)
}

// writeCopy writes a session and its metadata under key, for a rename
// across Cluster slots.
func (s *RedisStore) writeCopy(ctx context.Context, key string, entry sessionstore.Entry, ttl time.Duration) error {
	ttl = max(sessionstore.EffectiveTTL(entry.Meta.Expiry, ttl), 0)
	fields := map[string]any{}
	if !entry.Meta.Created.IsZero() {
		fields["created"] = entry.Meta.Created.UnixMilli()
	}
	if entry.Meta.Expiry != 0 {
		fields["expiry"] = expiryField(entry.Meta.Expiry)
	}
	if entry.Meta.Scope != "" {
		fields["scope"] = entry.Meta.Scope
	}
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, entry.Data, ttl)
		p.Del(ctx, metaKey(key), markerKey(key), movedKey(key))
		if len(fields) > 0 {
			p.HSet(ctx, metaKey(key), fields)
			if ttl > 0 {
				p.PExpire(ctx, metaKey(key), ttl)
			}
		}
		return nil
	})
	return err
}
