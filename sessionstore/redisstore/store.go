package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// loadScript reads a session and renews its lifetime when due, in one round
// trip. For a session with a TTL, the time since its last renewal is the TTL
// it was given less what is left of it. A permanent session has no TTL to
// tell that, so a marker key with a TTL of renewAfter does.
//
// KEYS[1] the session; KEYS[2] its renewal marker (permanent sessions only).
// ARGV[1] ttl in ms, 0 for permanent; ARGV[2] renewAfter in ms.
// Returns nil when absent, else {data, renewed}.
var loadScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = tonumber(ARGV[1])
local after = tonumber(ARGV[2])
if ttl > 0 then
	local left = redis.call('PTTL', KEYS[1])
	if left < 0 or ttl - left >= after then
		redis.call('PEXPIRE', KEYS[1], ttl)
		return {v, 1}
	end
	return {v, 0}
end
if redis.call('PTTL', KEYS[1]) >= 0 then
	redis.call('PERSIST', KEYS[1])
end
if redis.call('SET', KEYS[2], '1', 'PX', after, 'NX') then
	return {v, 1}
end
return {v, 0}
`)

// renameScript moves a session to a new key with a fresh TTL, atomically.
// KEYS[1] old, KEYS[2] new; ARGV[1] ttl in ms, 0 for none. Returns 0 when
// the old key is absent.
var renameScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if tonumber(ARGV[1]) > 0 then
	redis.call('SET', KEYS[2], v, 'PX', ARGV[1])
else
	redis.call('SET', KEYS[2], v)
end
redis.call('DEL', KEYS[1])
return 1
`)

// maxPatchAttempts bounds the optimistic retries of a patch that other
// writers of the same session keep interrupting.
const maxPatchAttempts = 100

// Load implements sessionstore.Store.
func (s *RedisStore) Load(ctx context.Context, key string, ttl, renewAfter time.Duration) (string, bool, error) {
	keys := []string{key}
	if ttl <= 0 {
		keys = append(keys, renewalMarker(key))
	}
	res, err := loadScript.Run(ctx, s.client, keys, ttl.Milliseconds(), max(renewAfter.Milliseconds(), 1)).Slice()
	if errors.Is(err, redis.Nil) {
		return "", false, sessionstore.ErrNotFound
	}
	if err != nil {
		return "", false, fmt.Errorf("redis: loading session: %w", err)
	}
	if len(res) != 2 {
		return "", false, fmt.Errorf("redis: loading session: unexpected reply of %d values", len(res))
	}
	raw, _ := res[0].(string)
	renewed, _ := res[1].(int64)
	data, err := sessionstore.Normalize(raw)
	if err != nil {
		return "", false, fmt.Errorf("redis: stored session data: %w", err)
	}
	return data, renewed == 1, nil
}

// Patch implements sessionstore.Store. It is optimistic: it watches the key,
// merges in Go, and writes in a MULTI/EXEC that fails if another writer got
// there first, then tries again. Merging in Go (not in a Lua script with
// cjson) keeps numbers exactly as written and the stored text canonical.
func (s *RedisStore) Patch(ctx context.Context, key string, patches []string, ttl time.Duration, create bool) (string, error) {
	var data string
	txf := func(tx *redis.Tx) error {
		current, err := tx.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if !create {
				return sessionstore.ErrNotFound
			}
			current = ""
		case err != nil:
			return err
		}
		data, err = sessionstore.ApplyPatches(current, patches)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if data == sessionstore.EmptyData {
				p.Del(ctx, key)
			} else {
				p.Set(ctx, key, data, max(ttl, 0))
			}
			return nil
		})
		return err
	}
	for attempt := 1; attempt <= maxPatchAttempts; attempt++ {
		err := s.client.Watch(ctx, txf, key)
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
		if errors.Is(err, sessionstore.ErrNotFound) {
			return "", err
		}
		if err != nil {
			return "", fmt.Errorf("redis: saving session: %w", err)
		}
		return data, nil
	}
	return "", fmt.Errorf("redis: saving session: still contended after %d attempts", maxPatchAttempts)
}

// Inspect implements sessionstore.Inspector: GET and PTTL in one round
// trip, the lifetime untouched.
func (s *RedisStore) Inspect(ctx context.Context, key string) (string, time.Duration, error) {
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		pttl = p.PTTL(ctx, key)
		return nil
	})
	if errors.Is(err, redis.Nil) || errors.Is(get.Err(), redis.Nil) {
		return "", 0, sessionstore.ErrNotFound
	}
	if err != nil {
		return "", 0, fmt.Errorf("redis: inspecting session: %w", err)
	}
	data, err := sessionstore.Normalize(get.Val())
	if err != nil {
		return "", 0, fmt.Errorf("redis: stored session data: %w", err)
	}
	ttl := pttl.Val()
	if ttl < 0 {
		ttl = 0 // no TTL: permanent
	}
	return data, ttl, nil
}

// SharedKey implements sessionstore.Shared: stores with the same
// connection settings share a client, and one Redis.
func (s *RedisStore) SharedKey() string { return s.poolKey }

// Delete implements sessionstore.Store.
func (s *RedisStore) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis: deleting session: %w", err)
	}
	return nil
}

// Rename implements sessionstore.Store. On one server or a Sentinel primary
// it is one script, so no reader sees both keys or neither. Keys in a Redis
// Cluster live on different slots, which no single command spans: there the
// new key is written first and the old deleted after, so a reader may
// briefly see both, never neither.
func (s *RedisStore) Rename(ctx context.Context, oldKey, newKey string, ttl time.Duration) error {
	if !s.cluster {
		moved, err := renameScript.Run(ctx, s.client, []string{oldKey, newKey}, max(ttl.Milliseconds(), 0)).Int64()
		if err != nil {
			return fmt.Errorf("redis: regenerating session: %w", err)
		}
		if moved == 0 {
			return sessionstore.ErrNotFound
		}
		return nil
	}
	data, err := s.client.Get(ctx, oldKey).Result()
	if errors.Is(err, redis.Nil) {
		return sessionstore.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("redis: regenerating session: %w", err)
	}
	if err := s.client.Set(ctx, newKey, data, max(ttl, 0)).Err(); err != nil {
		return fmt.Errorf("redis: regenerating session: %w", err)
	}
	if err := s.client.Del(ctx, oldKey).Err(); err != nil {
		return fmt.Errorf("redis: regenerating session: deleting the old key: %w", err)
	}
	return nil
}

// renewalMarker is the key beside a permanent session that records its
// last renewal. It carries the session key as its hash tag, so that in a
// Redis Cluster both live on one slot and one script may touch both.
func renewalMarker(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			return key + ":renewed" // key has a hash tag already: keep it
		}
	}
	return "{" + key + "}:renewed"
}
