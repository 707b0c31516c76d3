package redisstore

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/caddy-session/caddy-session/internal/redistest"
	"github.com/caddy-session/caddy-session/sessionstore"
)

func subjectOpts(subject string, ttl time.Duration) sessionstore.PatchOptions {
	return sessionstore.PatchOptions{TTL: ttl, Create: true, Subject: &subject}
}

// listed returns the keys ListSubject lists, sorted, and the total.
func listed(t *testing.T, s *RedisStore, prefix, subject string) ([]string, int) {
	t.Helper()
	list, total, err := s.ListSubject(bg, prefix, subject, sessionstore.MaxSubjectSessions)
	if err != nil {
		t.Fatalf("ListSubject(%q, %q): %v", prefix, subject, err)
	}
	var keys []string
	for _, l := range list {
		keys = append(keys, l.Key)
	}
	slices.Sort(keys)
	return keys, total
}

// msField reads a unix ms field of a hash.
func msField(t *testing.T, rc goredis.Cmdable, key, field string) int64 {
	t.Helper()
	v, err := rc.HGet(bg, key, field).Int64()
	if err != nil {
		t.Fatalf("HGET %s %s: %v", key, field, err)
	}
	return v
}

// TestSubjectIndexLayout: the index's key, TTL and members, and the
// metadata fields beside a session with a subject.
func TestSubjectIndexLayout(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	const subject = "{alice}:42" // braces and colons are a subject's like any other
	ix := indexKey(subject)

	before := time.Now().UnixMilli()
	if _, err := s.Patch(bg, "session:a", []string{`{"a":1}`}, subjectOpts(subject, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := rc.ZRange(bg, ix, 0, -1).Val(); !slices.Equal(got, []string{"session:a"}) {
		t.Errorf("index %s holds %q, want session:a", ix, got)
	}
	if ttl := rc.PTTL(bg, ix).Val(); ttl < 179*time.Minute || ttl > 3*time.Hour {
		t.Errorf("index TTL %v, want three times the session's hour", ttl)
	}
	meta := rc.HGetAll(bg, "{session:a}:meta").Val()
	if meta["subject"] != subject {
		t.Errorf("meta %v, want the subject", meta)
	}
	if ixd := msField(t, rc, "{session:a}:meta", "indexed"); ixd < before+2*time.Hour.Milliseconds()-1000 {
		t.Errorf("indexed %d, want about two hours from now", ixd)
	}
	if seen := msField(t, rc, "{session:a}:meta", "seen"); seen < before-1000 || seen > time.Now().UnixMilli()+1000 {
		t.Errorf("seen %d, want now", seen)
	}

	// A session that would outlive what its index covers (a renewal due
	// when the index covers less than the renewed lifetime) is indexed
	// again first.
	rc.HSet(bg, "{session:a}:meta", "indexed", strconv.FormatInt(time.Now().UnixMilli()+time.Minute.Milliseconds(), 10))
	rc.PExpire(bg, "session:a", 50*time.Minute)
	rc.PExpire(bg, ix, 10*time.Minute)
	waitInvalidated()
	if e, err := s.Load(bg, "session:a", time.Hour); err != nil || !e.Renewed || e.Meta.Subject != subject {
		t.Fatalf("Load when due = %+v, %v", e, err)
	}
	if ttl := rc.PTTL(bg, ix).Val(); ttl < 179*time.Minute {
		t.Errorf("after a renewal past its coverage, index TTL %v", ttl)
	}
	if ixd := msField(t, rc, "{session:a}:meta", "indexed"); ixd < time.Now().UnixMilli()+2*time.Hour.Milliseconds()-5000 {
		t.Errorf("after a renewal past its coverage, indexed %d", ixd)
	}

	// A longer own expiry written later, without the subject, lengthens
	// the index's life too.
	if _, err := s.Patch(bg, "session:a", []string{`{"b":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Expiry: 10 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.PTTL(bg, ix).Val(); ttl < 29*time.Hour {
		t.Errorf("after a ten-hour own expiry, index TTL %v", ttl)
	}
	// A permanent one makes it persistent.
	if _, err := s.Patch(bg, "session:a", []string{`{"c":1}`}, sessionstore.PatchOptions{TTL: time.Hour, Expiry: sessionstore.Permanent}); err != nil {
		t.Fatal(err)
	}
	if ttl := rc.TTL(bg, ix).Val(); ttl != -1 {
		t.Errorf("with a permanent session, index TTL %v, want none", ttl)
	}
	if got := rc.HGet(bg, "{session:a}:meta", "indexed").Val(); got != "-1" {
		t.Errorf("a permanent session's indexed %q, want -1", got)
	}

	// A stale member is dropped by a listing; one added less than the
	// grace ago (its session's write may be on its way) is kept, unlisted.
	old := float64(time.Now().Add(-2 * indexGrace).UnixMilli())
	rc.ZAdd(bg, ix, goredis.Z{Score: old, Member: "session:ghost"}, goredis.Z{Score: float64(time.Now().UnixMilli()), Member: "session:young"})
	if keys, total := listed(t, s, "", subject); !slices.Equal(keys, []string{"session:a"}) || total != 1 {
		t.Errorf("listed %q, total %d; want session:a", keys, total)
	}
	if rc.ZScore(bg, ix, "session:ghost").Err() == nil {
		t.Error("the stale member is still in the index")
	}
	if rc.ZScore(bg, ix, "session:young").Err() != nil {
		t.Error("the young member was dropped")
	}
	// One added again since it was read stays.
	if err := s.removeMembers(bg, srvClient(t, s), ix, []member{{key: "session:young", score: "1"}}); err != nil {
		t.Fatal(err)
	}
	if rc.ZScore(bg, ix, "session:young").Err() != nil {
		t.Error("a member whose score changed was removed")
	}

	// Bounds.
	long := string(make([]byte, sessionstore.MaxSubjectLength+1))
	if _, err := s.Patch(bg, "session:x", []string{`{"a":1}`}, subjectOpts(long, time.Hour)); err == nil {
		t.Error("a subject over MaxSubjectLength was accepted")
	}
	if _, err := s.Patch(bg, "session:x", []string{`{"a":1}`}, subjectOpts("tab\there", time.Hour)); err == nil {
		t.Error("a subject with a control character was accepted")
	}
	if n := rc.Exists(bg, "session:x").Val(); n != 0 {
		t.Error("a refused write wrote")
	}
}

// srvClient is the store's rueidis client.
func srvClient(t *testing.T, s *RedisStore) rueidis.Client {
	t.Helper()
	c, err := s.pc.get()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSubjectPrune: the stale entries of a subject that is never listed
// are dropped as its index grows.
func TestSubjectPrune(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	ix := indexKey("bob")
	old := float64(time.Now().Add(-2 * indexGrace).UnixMilli())
	for i := range 3 * pruneAbove {
		rc.ZAdd(bg, ix, goredis.Z{Score: old + float64(i), Member: fmt.Sprintf("session:gone%d", i)})
	}
	if _, err := s.Patch(bg, "session:b", []string{`{"a":1}`}, subjectOpts("bob", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := rc.ZCard(bg, ix).Val(); n != 3*pruneAbove+1-pruneBatch {
		t.Errorf("index of %d members after a write, want %d", n, 3*pruneAbove+1-pruneBatch)
	}
	if rc.ZScore(bg, ix, "session:b").Err() != nil {
		t.Error("the live session was pruned")
	}
}

// TestDeleteSubjectReachesOtherInstances: a session another instance has
// cached is gone for it too once DeleteSubject returns (Redis's
// invalidation, which travels on its own, reaches it at once).
func TestDeleteSubjectReachesOtherInstances(t *testing.T) {
	srv := redistest.Start(t)
	a := provision(t, &RedisStore{Address: []string{srv.URL()}})
	b := provision(t, &RedisStore{Address: []string{srv.Addr()}, PoolSize: 4})
	if _, err := a.Patch(bg, "session:d", []string{`{"a":1}`}, subjectOpts("carol", time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b caches the session", func() bool {
		loadData(b, "session:d")
		var f [nMeta]string
		_, _, ok := b.pc.cachedSession("session:d", metaKey("session:d"), time.Now().UnixMilli(), &f)
		return ok && f[fSubject] == "carol"
	})
	if n, err := a.DeleteSubject(bg, "session:", "carol", nil); err != nil || n != 1 {
		t.Fatalf("DeleteSubject = %d, %v", n, err)
	}
	eventually(t, "b sees it gone", func() bool {
		_, err := b.Load(bg, "session:d", time.Hour)
		return errors.Is(err, sessionstore.ErrNotFound)
	})
	if n := srv.Client().Exists(bg, "session:d", "{session:d}:meta").Val(); n != 0 {
		t.Errorf("%d keys left", n)
	}
}

// TestSubjectListNeverMissesARenamedSession: a listing that races
// regenerates of a session finds it every time. (A session regenerated
// every few milliseconds, over and over, can keep a listing going over
// the index until maxRounds, and then be missed: the regenerates here
// pause, though far less than any real session does between two.)
func TestSubjectListNeverMissesARenamedSession(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}})
	if _, err := s.Patch(bg, "session:r0", []string{`{"a":1}`}, subjectOpts("dave", time.Hour)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			from, to := fmt.Sprintf("session:r%d", i), fmt.Sprintf("session:r%d", i+1)
			if err := s.Rename(bg, from, to, sessionstore.RenameOptions{TTL: time.Hour, Grace: time.Second}); err != nil {
				t.Errorf("Rename %s: %v", from, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	for range 500 {
		if _, total := listed(t, s, "session:", "dave"); total != 1 {
			t.Errorf("listed %d sessions during regenerates, want 1", total)
			break
		}
	}
	close(stop)
	wg.Wait()
}

// TestSubjectIndexFailsFast: the index's commands go through the failure
// detector like every store call.
func TestSubjectIndexFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	s := provision(t, &RedisStore{Address: []string{srv.URL()}, DialTimeout: caddy.Duration(200 * time.Millisecond)})
	srv.Kill()
	for range failThreshold {
		if _, _, err := s.ListSubject(bg, "", "erin", 10); err == nil {
			t.Fatal("ListSubject with Redis down succeeded")
		}
	}
	if s.pc.up.Load() {
		t.Error("failed index reads did not count as failures")
	}
	if _, err := s.DeleteSubject(bg, "", "erin", nil); !errors.Is(err, errRedisDown) {
		t.Errorf("DeleteSubject while down: %v, want errRedisDown", err)
	}
}

// TestClusterSubjects: a subject's sessions spread over a Cluster's
// slots, its index on a slot of its own: listed, followed through a
// rename across slots, deleted.
func TestClusterSubjects(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	cc := cluster.Client(t)
	s := provision(t, &RedisStore{Address: cluster.Addrs()})
	const n = 30
	slots := map[int64]bool{}
	var want []string
	for i := range n {
		key := fmt.Sprintf("app:%032x", i*7919)
		opts := subjectOpts("frank", time.Hour)
		opts.UserAgent = "ua"
		if _, err := s.Patch(bg, key, []string{fmt.Sprintf(`{"i":%d}`, i)}, opts); err != nil {
			t.Fatalf("patch %s: %v", key, err)
		}
		slots[cc.ClusterKeySlot(bg, key).Val()*3/16384] = true
		want = append(want, key)
	}
	if len(slots) != 3 {
		t.Fatalf("sessions on %d of 3 masters", len(slots))
	}
	if _, err := s.Patch(bg, "other:1", []string{`{"a":1}`}, subjectOpts("frank", time.Hour)); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if keys, total := listed(t, s, "app:", "frank"); !slices.Equal(keys, want) || total != n {
		t.Fatalf("listed %d (total %d), want the %d sessions", len(keys), total, n)
	}
	list, _, err := s.ListSubject(bg, "app:", "frank", 5)
	if err != nil || len(list) != 5 || list[0].Meta.UserAgent != "ua" || list[0].LastSeen.IsZero() {
		t.Fatalf("ListSubject(limit 5) = %+v, %v", list, err)
	}

	// A rename across slots: the index follows.
	from, to := want[0], "app:"+fmt.Sprintf("%032x", 999999)
	if cc.ClusterKeySlot(bg, from).Val() == cc.ClusterKeySlot(bg, to).Val() {
		t.Fatal("want keys on two slots")
	}
	if err := s.Rename(bg, from, to, sessionstore.RenameOptions{TTL: time.Hour, Grace: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(k string) bool { return k == from })
	want = append(want, to)
	slices.Sort(want)
	if keys, _ := listed(t, s, "app:", "frank"); !slices.Equal(keys, want) {
		t.Errorf("after a rename across slots listed %q", keys)
	}
	if e, err := s.Load(bg, to, time.Hour); err != nil || e.Meta.Subject != "frank" || e.Meta.UserAgent != "ua" {
		t.Errorf("Load(new) = %+v, %v", e, err)
	}

	// Delete all but one.
	deleted, err := s.DeleteSubject(bg, "app:", "frank", func(ss sessionstore.SubjectSession) bool { return ss.Key == to })
	if err != nil || deleted != n-1 {
		t.Fatalf("DeleteSubject = %d, %v; want %d", deleted, err, n-1)
	}
	for _, k := range want {
		if k != to && cc.Exists(bg, k, "{"+k+"}:meta").Val() != 0 {
			t.Errorf("%s is left", k)
		}
	}
	if keys, total := listed(t, s, "", "frank"); !slices.Equal(keys, []string{to, "other:1"}) || total != 2 {
		t.Errorf("after DeleteSubject listed %q, total %d", keys, total)
	}
}
