package redisstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// The subject index. A subject's sessions are found through a sorted set
// under indexKey(subject): its members are the sessions' full keys, so
// apps that share a Redis under different prefixes share the set and a
// listing keeps to its prefix's members; a member's score is when (unix
// ms, Redis's clock) it was last added. The key names the subject by its
// SHA-256, since a subject may hold any printable character, braces and
// colons included; it has no hash tag, so on a Redis Cluster it lives on a
// slot of its own, which no session script touches: it is read and
// written by commands of its own.
//
// The set is always a superset of the subject's live sessions, so that a
// listing never misses one: a key is added before a session under it gets
// the subject (a write that sets it) or before a session with it moves
// there (a Rename), and nothing removes a member but a listing, a
// DeleteSubject or a prune that found it stale (no session under the key,
// or one whose subject is another) and only if it was not added again
// meanwhile (its score is unchanged) nor lately (a member younger than
// indexGrace may be a session whose write has not landed yet).
//
// The set's own TTL follows its sessions': each add makes it outlive the
// session added by a margin (three times the session's lifetime; it is
// made persistent for a permanent one), and records in the session's
// metadata (indexed) until when it is known to (twice the lifetime: the
// other third absorbs the clocks of a Cluster's nodes differing). A
// session script that would make the session live past that (a write or a
// renewal, a new own expiry, a move) writes nothing and asks for the index
// first (luaIndexHelpers in store.go): so an index expires only once every
// session in it has, which lets the set of a subject never seen again go
// by itself. A set that once held a permanent session stays until a
// listing finds it empty.

// indexKey is the key of subject's index.
func indexKey(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "caddy-session:subject:" + hex.EncodeToString(sum[:])
}

const (
	// indexGrace is how long a member is kept, once added, however stale
	// it looks: its session's write may not have landed yet. A write
	// slower than half of it indexes its session again.
	indexGrace = time.Minute
	// maxExamined bounds the members a listing reads: the most recently
	// added. A subject whose index holds more (live sessions of every
	// prefix, and stale entries not yet dropped) has the sessions beyond
	// neither listed nor counted; DeleteSubject reads them all.
	maxExamined = 4 * sessionstore.MaxSubjectSessions
	// pruneAbove is the size past which a write that indexes a session
	// examines the pruneBatch oldest members, and drops the stale: so the
	// stale entries left by sessions that expired, moved or changed
	// subject do not pile up in the index of a subject that is never
	// listed.
	pruneAbove = 32
	pruneBatch = 32
	// deleteWorkers bounds the Deletes a DeleteSubject runs at once
	// (rueidis pipelines them on the connection).
	deleteWorkers = 16
)

// indexConf is an index's confirmation, for the session scripts, that it
// holds a session's key and outlives it until deadline.
type indexConf struct {
	subject  string
	deadline string // unix ms, Redis's clock; "-1" for ever
	at       time.Time
}

// fresh reports whether c confirms subject recently enough for its member
// to be safe from the stale entries' removal.
func (c indexConf) fresh(subject string) bool {
	return c.subject == subject && time.Since(c.at) < indexGrace/2
}

// indexScript adds a member to an index, with a score of now, or one more
// than the index's highest if that is not less: so every add raises the
// highest score, which a listing watches (see ListSubject); and makes the index
// outlive a session of ARGV[2] ms (0 for permanent) by the margin above:
// never shortening what it had, and never giving a TTL to an index that
// had none. KEYS: the index. ARGV: the member, the session's lifetime in
// ms. Returns {deadline (unix ms, -1 for ever), the index's size}.
var indexScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local existed = redis.call('EXISTS', KEYS[1]) == 1
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local score = now
if top and tonumber(top) >= now then score = tonumber(top) + 1 end
redis.call('ZADD', KEYS[1], score, ARGV[1])
local card = redis.call('ZCARD', KEYS[1])
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
	redis.call('PERSIST', KEYS[1])
	return {-1, card}
end
local want = 3 * ttl
local left = redis.call('PTTL', KEYS[1])
if not existed or (left >= 0 and left < want) then redis.call('PEXPIRE', KEYS[1], want) end
return {now + 2 * ttl, card}
`)

// indexReadScript reads an index's members with their scores, its
// highest score, and Redis's clock (the one the scores are in). KEYS: the
// index. ARGV: rev and a count (the most recently added first), fwd and a
// count (the oldest first), scan, a ZSCAN cursor and a count, or top
// (none). Returns {now, next cursor ("0" when done), {member, score, ...},
// the highest score ("" if none)}.
var indexReadScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or ''
if ARGV[1] == 'scan' then
	local r = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
	return {now, r[1], r[2], top}
end
local r = {}
if ARGV[1] == 'rev' then
	r = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
elseif ARGV[1] == 'fwd' then
	r = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
end
return {now, '0', r, top}
`)

// indexRemoveScript removes members whose score is still the one read,
// so that one added again since (a new score) stays. KEYS: the index.
// ARGV: member, score, member, score... Returns how many it removed.
var indexRemoveScript = rueidis.NewLuaScript(`
local n = 0
for i = 1, #ARGV, 2 do
	local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
	if s and tonumber(s) == tonumber(ARGV[i + 1]) then
		redis.call('ZREM', KEYS[1], ARGV[i])
		n = n + 1
	end
end
return n
`)

// indexAdd adds key to subject's index, made to outlive a session of
// lifetime ttl (0 for permanent), and returns the confirmation for the
// session scripts and the index's size.
func (s *RedisStore) indexAdd(ctx context.Context, c rueidis.Client, subject, key string, ttl time.Duration) (indexConf, int64, error) {
	at := time.Now()
	res, err := indexScript.Exec(ctx, c, []string{indexKey(subject)}, []string{key, strconv.FormatInt(ttl.Milliseconds(), 10)}).ToArray()
	if err := s.pc.observe(err); err != nil {
		return indexConf{}, 0, fmt.Errorf("indexing the session's subject: %w", err)
	}
	if len(res) != 2 {
		return indexConf{}, 0, fmt.Errorf("indexing the session's subject: unexpected reply of %d values", len(res))
	}
	deadline, err := res[0].AsInt64()
	if err != nil {
		return indexConf{}, 0, fmt.Errorf("indexing the session's subject: %w", err)
	}
	card, _ := res[1].AsInt64()
	return indexConf{subject: subject, deadline: strconv.FormatInt(deadline, 10), at: at}, card, nil
}

// A member is an entry of an index as read.
type member struct {
	key   string
	score string // as Redis wrote it, for indexRemoveScript to compare
	ms    int64  // the score: when it was added
}

// An indexRead is what indexReadScript read.
type indexRead struct {
	now     int64 // Redis's clock, unix ms
	next    string
	members []member
	top     string // the highest score: any add changes it
}

// readIndex reads members of an index (see indexReadScript).
func (s *RedisStore) readIndex(ctx context.Context, c rueidis.Client, ix string, args ...string) (indexRead, error) {
	res, err := indexReadScript.Exec(ctx, c, []string{ix}, args).ToArray()
	if err = s.pc.observe(err); err != nil {
		return indexRead{}, err
	}
	if len(res) != 4 {
		return indexRead{}, fmt.Errorf("unexpected reply of %d values", len(res))
	}
	var r indexRead
	if r.now, err = res[0].AsInt64(); err != nil {
		return indexRead{}, err
	}
	if r.next, err = res[1].ToString(); err != nil {
		return indexRead{}, err
	}
	flat, err := res[2].AsStrSlice()
	if err != nil {
		return indexRead{}, err
	}
	r.top, _ = res[3].ToString()
	r.members = make([]member, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		f, err := strconv.ParseFloat(flat[i+1], 64)
		if err != nil {
			continue
		}
		r.members = append(r.members, member{key: flat[i], score: flat[i+1], ms: int64(f)})
	}
	return r, nil
}

// indexTop reads an index's highest score.
func (s *RedisStore) indexTop(ctx context.Context, c rueidis.Client, ix string) (string, error) {
	r, err := s.readIndex(ctx, c, ix, "top")
	return r.top, err
}

// maxRounds bounds how many times a listing or a DeleteSubject goes over
// an index that sessions keep being added to meanwhile (see ListSubject):
// after that it answers with what its last round found.
const maxRounds = 5

// A found session is a member whose session is live and has the subject.
type found struct {
	sessionstore.SubjectSession
	m member
}

// examine reads the sessions of ms: those live with the subject are
// found; the others are stale, but for the members younger than
// indexGrace at now, which are neither. On one server (or a Sentinel's
// primary) the reads are one transaction, a snapshot: a session that a
// Rename moves meanwhile is found under one of its keys. A Cluster has
// no transaction across slots: its nodes are read at once, and a listing
// that races a Rename of one of the sessions may miss it, or see it under
// both keys (as a Load may for the moment the Rename takes).
func (s *RedisStore) examine(ctx context.Context, c rueidis.Client, subject string, ms []member, now int64) (live []found, stale []member, err error) {
	if len(ms) == 0 {
		return nil, nil, nil
	}
	fields := append(metaFields[:], "seen")
	cmds := make(rueidis.Commands, 0, 2*len(ms)+2)
	if !s.cluster {
		cmds = append(cmds, c.B().Multi().Build())
	}
	for _, m := range ms {
		cmds = append(cmds,
			c.B().Exists().Key(m.key).Build(),
			c.B().Hmget().Key(metaKey(m.key)).Field(fields...).Build())
	}
	var res []rueidis.RedisMessage
	if s.cluster {
		for _, r := range c.DoMulti(ctx, cmds...) {
			m, err := r.ToMessage()
			if err := s.pc.observe(err); err != nil {
				return nil, nil, err
			}
			res = append(res, m)
		}
	} else {
		cmds = append(cmds, c.B().Exec().Build())
		all := c.DoMulti(ctx, cmds...)
		if res, err = all[len(all)-1].ToArray(); s.pc.observe(err) != nil {
			return nil, nil, err
		}
		if len(res) != 2*len(ms) {
			return nil, nil, fmt.Errorf("unexpected transaction reply of %d values", len(res))
		}
	}
	for i, m := range ms {
		n, err := res[2*i].AsInt64()
		if err != nil {
			return nil, nil, err
		}
		vals, err := res[2*i+1].ToArray()
		if err != nil {
			return nil, nil, err
		}
		var f [nMeta]string
		for j := range min(len(vals), nMeta) {
			f[j], _ = vals[j].ToString()
		}
		if n == 1 && f[fSubject] == subject {
			ss := sessionstore.SubjectSession{Key: m.key, Meta: parseMeta(&f), LastSeen: time.UnixMilli(m.ms)}
			if len(vals) > nMeta {
				if v, err := vals[nMeta].ToString(); err == nil {
					if seen, err := strconv.ParseInt(v, 10, 64); err == nil && seen > 0 {
						ss.LastSeen = time.UnixMilli(seen)
					}
				}
			}
			live = append(live, found{ss, m})
		} else if now-m.ms >= indexGrace.Milliseconds() {
			stale = append(stale, m)
		}
	}
	return live, stale, nil
}

// removeMembers removes ms from the index ix, each only if not added
// again since it was read.
func (s *RedisStore) removeMembers(ctx context.Context, c rueidis.Client, ix string, ms []member) error {
	for len(ms) > 0 {
		batch := ms[:min(len(ms), 500)]
		ms = ms[len(batch):]
		args := make([]string, 0, 2*len(batch))
		for _, m := range batch {
			args = append(args, m.key, m.score)
		}
		if err := s.pc.observe(indexRemoveScript.Exec(ctx, c, []string{ix}, args).Error()); err != nil {
			return err
		}
	}
	return nil
}

// withPrefix keeps the members under prefix.
func withPrefix(ms []member, prefix string) []member {
	if prefix == "" {
		return ms
	}
	return slices.DeleteFunc(ms, func(m member) bool { return !strings.HasPrefix(m.key, prefix) })
}

// prune drops the stale among the oldest members of subject's index. Its
// failure costs nothing but the stale entries' staying: it is not
// reported.
func (s *RedisStore) prune(ctx context.Context, c rueidis.Client, subject string) {
	ix := indexKey(subject)
	r, err := s.readIndex(ctx, c, ix, "fwd", strconv.Itoa(pruneBatch))
	if err != nil {
		return
	}
	if _, stale, err := s.examine(ctx, c, subject, r.members, r.now); err == nil {
		_ = s.removeMembers(ctx, c, ix, stale)
	}
}

// ListSubject implements sessionstore.SubjectIndex. It reads the
// maxExamined most recently indexed members of the subject's index, checks
// each against its session (pipelined: whether the key holds a session,
// and its metadata) and drops the stale ones from the index.
//
// The index and the sessions are read one after the other (on a Cluster
// they live on different nodes): a session that a Rename moves in between
// is under a key not read yet. But that key was added to the index before
// the session moved, which raised the index's highest score: so the
// listing reads the highest score again after the sessions, and goes over
// the index again if it changed (up to maxRounds times).
func (s *RedisStore) ListSubject(ctx context.Context, prefix, subject string, limit int) ([]sessionstore.SubjectSession, int, error) {
	if subject == "" || len(subject) > sessionstore.MaxSubjectLength {
		return nil, 0, nil // no session has such a subject
	}
	c, err := s.pc.get()
	if err != nil {
		return nil, 0, fmt.Errorf("redis: listing a subject's sessions: %w", err)
	}
	ix := indexKey(subject)
	var live []found
	var stale []member
	for range maxRounds {
		r, err := s.readIndex(ctx, c, ix, "rev", strconv.Itoa(maxExamined))
		if err != nil {
			return nil, 0, fmt.Errorf("redis: listing a subject's sessions: %w", err)
		}
		if live, stale, err = s.examine(ctx, c, subject, withPrefix(r.members, prefix), r.now); err != nil {
			return nil, 0, fmt.Errorf("redis: listing a subject's sessions: %w", err)
		}
		top, err := s.indexTop(ctx, c, ix)
		if err != nil {
			return nil, 0, fmt.Errorf("redis: listing a subject's sessions: %w", err)
		}
		if top == r.top {
			break
		}
	}
	if err := s.removeMembers(ctx, c, ix, stale); err != nil {
		return nil, 0, fmt.Errorf("redis: listing a subject's sessions: %w", err)
	}
	// The most recently seen first; the most recently indexed, then the
	// key, between equals, so that pages are stable.
	slices.SortFunc(live, func(a, b found) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(b.m.ms, a.m.ms), strings.Compare(a.Key, b.Key))
	})
	limit = min(max(limit, 0), sessionstore.MaxSubjectSessions, len(live))
	list := make([]sessionstore.SubjectSession, limit)
	for i := range list {
		list[i] = live[i].SubjectSession
	}
	return list, len(live), nil
}

// DeleteSubject implements sessionstore.SubjectIndex. It goes through the
// whole index (ZSCAN), checks each member as ListSubject does, and deletes
// each session not kept with Delete, so the session's side keys go too
// and the write reaches every instance's cache as a Delete's does; the
// members of the deleted sessions and the stale ones leave the index. As
// ListSubject, it goes over the index again while sessions were added to
// it meanwhile (a session moved by a Rename, say).
func (s *RedisStore) DeleteSubject(ctx context.Context, prefix, subject string, keep func(sessionstore.SubjectSession) bool) (int, error) {
	if subject == "" || len(subject) > sessionstore.MaxSubjectLength {
		return 0, nil
	}
	c, err := s.pc.get()
	if err != nil {
		return 0, fmt.Errorf("redis: deleting a subject's sessions: %w", err)
	}
	ix := indexKey(subject)
	done := map[string]bool{} // sessions deleted or kept: ZSCAN may return a member twice
	deleted := 0
	for range maxRounds {
		var start string
		for cursor := "0"; ; {
			r, err := s.readIndex(ctx, c, ix, "scan", cursor, "256")
			if err != nil {
				return deleted, fmt.Errorf("redis: deleting a subject's sessions: %w", err)
			}
			if cursor == "0" {
				start = r.top
			}
			ms := slices.DeleteFunc(withPrefix(r.members, prefix), func(m member) bool { return done[m.key] })
			live, stale, err := s.examine(ctx, c, subject, ms, r.now)
			if err != nil {
				return deleted, fmt.Errorf("redis: deleting a subject's sessions: %w", err)
			}
			var doomed []found
			for _, f := range live {
				done[f.Key] = true
				if keep == nil || !keep(f.SubjectSession) {
					doomed = append(doomed, f)
				}
			}
			gone, err := s.deleteAll(ctx, doomed)
			deleted += len(gone)
			if rerr := s.removeMembers(ctx, c, ix, append(stale, gone...)); err == nil {
				err = rerr
			}
			if err != nil {
				return deleted, fmt.Errorf("redis: deleting a subject's sessions: %w", err)
			}
			if r.next == "0" || r.next == "" {
				break
			}
			cursor = r.next
		}
		// Its own removals may lower the highest score: one more round
		// then finds nothing to do.
		top, err := s.indexTop(ctx, c, ix)
		if err != nil {
			return deleted, fmt.Errorf("redis: deleting a subject's sessions: %w", err)
		}
		if top == start {
			break
		}
	}
	return deleted, nil
}

// deleteAll deletes the sessions of fs with Delete, deleteWorkers at a
// time, and returns the members of those it deleted, and the first error.
func (s *RedisStore) deleteAll(ctx context.Context, fs []found) ([]member, error) {
	var (
		mu    sync.Mutex
		gone  []member
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, deleteWorkers)
	)
	for _, f := range fs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.Delete(ctx, f.Key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				first = cmp.Or(first, err)
				return
			}
			gone = append(gone, f.m)
		})
	}
	wg.Wait()
	return gone, first
}
