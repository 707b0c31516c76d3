package memorystore

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// Benchmarks of the memory store's operations, serial and parallel, and of
// its memory per session.
//
//	go test -run '^$' -bench Memory -benchmem ./sessionstore/memorystore/
//	go test -run '^$' -bench MemoryPerSession -benchtime 1x ./sessionstore/memorystore/

const (
	benchTTL       = 30 * 24 * time.Hour // the handler's default expiry
	benchSessions  = 10_000              // sessions held while operating
	benchPrefix    = "session:"
	benchSmallData = `{"user":"alice"}`
)

var benchCtx = context.Background()

// newBenchStore returns a running store with room for max sessions, and
// stops it when the benchmark ends.
func newBenchStore(b *testing.B, max int) *memStore {
	b.Helper()
	s := newMemStore(max, time.Hour, nil)
	b.Cleanup(func() { _ = s.Destruct() })
	return s
}

// benchKey returns a store key as the handler makes one: the prefix and a
// 32-hex-character ID, in a string of its own.
func benchKey(rng *rand.Rand) string {
	var id [16]byte
	for i := 0; i < len(id); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	var buf [len(benchPrefix) + 32]byte
	copy(buf[:], benchPrefix)
	hex.Encode(buf[len(benchPrefix):], id[:])
	return string(buf[:])
}

func benchKeys(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = benchKey(rng)
	}
	return keys
}

// benchPatchSet is a ring of one-key patches made before the timer starts.
var benchPatchSet = func() [][]string {
	p := make([][]string, 1024)
	for i := range p {
		p[i] = []string{`{"n":` + strconv.Itoa(i) + `}`}
	}
	return p
}()

// filledBenchStore holds benchSessions sessions with small data.
func filledBenchStore(b *testing.B) (*memStore, []string) {
	b.Helper()
	s := newBenchStore(b, 0)
	keys := benchKeys(benchSessions, 1)
	for _, k := range keys {
		if _, err := s.Patch(benchCtx, k, []string{benchSmallData}, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
			b.Fatal(err)
		}
	}
	return s, keys
}

// goroutineSeq gives each RunParallel goroutine its own starting point.
var goroutineSeq atomic.Uint64

func BenchmarkMemoryLoad(b *testing.B) {
	s, keys := filledBenchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := unpackLoad(s.Load(benchCtx, keys[i%len(keys)], benchTTL)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkMemoryLoadParallel(b *testing.B) {
	s, keys := filledBenchStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(goroutineSeq.Add(7919))
		for pb.Next() {
			if _, _, err := unpackLoad(s.Load(benchCtx, keys[i%len(keys)], benchTTL)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemoryLoadSubject loads sessions with all of the Meta a
// handler records (scope, subject, user agent, address): the data and the
// meta tail still cost one allocation.
func BenchmarkMemoryLoadSubject(b *testing.B) {
	s := newBenchStore(b, 0)
	keys := benchKeys(benchSessions, 1)
	for i, k := range keys {
		subject := "user" + strconv.Itoa(i%1000) + "@example.com"
		opts := sessionstore.PatchOptions{TTL: benchTTL, Create: true, Scope: "example.com", Subject: &subject,
			UserAgent: "Firefox 140 on Linux", Addr: "192.0.2.0/24"}
		if _, err := s.Patch(benchCtx, k, []string{benchSmallData}, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := unpackLoad(s.Load(benchCtx, keys[i%len(keys)], benchTTL)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMemoryListSubject lists a user's 5 sessions among 10,000.
func BenchmarkMemoryListSubject(b *testing.B) {
	s := newBenchStore(b, 0)
	keys := benchKeys(benchSessions, 1)
	for i, k := range keys {
		subject := "user" + strconv.Itoa(i%(benchSessions/5)) + "@example.com"
		if _, err := s.Patch(benchCtx, k, []string{benchSmallData}, sessionstore.PatchOptions{TTL: benchTTL, Create: true, Subject: &subject}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		subject := "user" + strconv.Itoa(i%(benchSessions/5)) + "@example.com"
		if _, n, err := s.ListSubject(benchCtx, benchPrefix, subject, 10); err != nil || n != 5 {
			b.Fatalf("ListSubject: %d, %v", n, err)
		}
		i++
	}
}

// BenchmarkMemoryLoadMissing is the lookup of a well-formed cookie the store
// does not hold.
func BenchmarkMemoryLoadMissing(b *testing.B) {
	s, _ := filledBenchStore(b)
	missing := benchKeys(1024, 2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := unpackLoad(s.Load(benchCtx, missing[i%len(missing)], benchTTL)); err != sessionstore.ErrNotFound {
			b.Fatalf("Load of a missing key: %v", err)
		}
		i++
	}
}

// BenchmarkMemoryPatch changes one key of an existing session.
func BenchmarkMemoryPatch(b *testing.B) {
	s, keys := filledBenchStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Patch(benchCtx, keys[i%len(keys)], benchPatchSet[i%len(benchPatchSet)], sessionstore.PatchOptions{TTL: benchTTL, Create: false}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkMemoryPatchParallel(b *testing.B) {
	s, keys := filledBenchStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(goroutineSeq.Add(7919))
		for pb.Next() {
			if _, err := s.Patch(benchCtx, keys[i%len(keys)], benchPatchSet[i%len(benchPatchSet)], sessionstore.PatchOptions{TTL: benchTTL, Create: false}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// benchChunk bounds how many fresh keys a benchmark holds at once.
const benchChunk = 100_000

// BenchmarkMemoryPatchCreate starts new sessions (the store grows by one
// each op); the timer stops while chunks of them are removed.
func BenchmarkMemoryPatchCreate(b *testing.B) {
	s, _ := filledBenchStore(b)
	keys := benchKeys(benchChunk, 3)
	patch := []string{benchSmallData}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, len(keys))
		for _, k := range keys[:n] {
			if _, err := s.Patch(benchCtx, k, patch, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
				b.Fatal(err)
			}
		}
		done += n
		b.StopTimer()
		for _, k := range keys[:n] {
			_ = s.Delete(benchCtx, k)
		}
		b.StartTimer()
	}
}

// BenchmarkMemoryDelete deletes existing sessions; the timer stops while
// chunks of them are created.
func BenchmarkMemoryDelete(b *testing.B) {
	s, _ := filledBenchStore(b)
	keys := benchKeys(benchChunk, 4)
	patch := []string{benchSmallData}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, len(keys))
		b.StopTimer()
		for _, k := range keys[:n] {
			if _, err := s.Patch(benchCtx, k, patch, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for _, k := range keys[:n] {
			if err := s.Delete(benchCtx, k); err != nil {
				b.Fatal(err)
			}
		}
		done += n
	}
}

// BenchmarkMemoryCreateDeleteParallel is a session's whole life, created
// with small data then deleted, in every goroutine at once: one op is both.
// (A parallel Delete alone cannot stop the timer to refill.)
func BenchmarkMemoryCreateDeleteParallel(b *testing.B) {
	s, _ := filledBenchStore(b)
	patch := []string{benchSmallData}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		keys := benchKeys(1024, 100+goroutineSeq.Add(1))
		i := 0
		for pb.Next() {
			k := keys[i%len(keys)]
			if _, err := s.Patch(benchCtx, k, patch, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
				b.Error(err)
				return
			}
			if err := s.Delete(benchCtx, k); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemoryPerSession measures the heap the store takes per session at
// a million sessions with small data (runtime.MemStats.HeapAlloc after a
// GC, before and after), and reports it per session: in all, beyond the
// data's bytes, and beyond the data's and the key's. It measures once,
// whatever b.N; run it with -benchtime 1x.
//
// Its subject variants give each session a subject ("u000123@example.com",
// 19 bytes) of its own, or one of five sessions each: what they take more
// than no-subject is the subject's place in the arena (3 bytes and the
// subject) and in the subject index.
func BenchmarkMemoryPerSession(b *testing.B) {
	for _, v := range []struct {
		name       string
		perSubject int // sessions per subject; 0 for none
	}{{"no-subject", 0}, {"subject-each", 1}, {"subject-per-5", 5}} {
		b.Run(v.name, func(b *testing.B) { benchmarkMemoryPerSession(b, v.perSubject) })
	}
}

func benchmarkMemoryPerSession(b *testing.B, perSubject int) {
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(5, 5))
	subjects := make([]string, 0, n)
	for i := 0; perSubject > 0 && i < n; i++ {
		subjects = append(subjects, "u"+strconv.Itoa(n + i/perSubject)[1:]+"@example.com")
	}

	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	s := newMemStore(n, time.Hour, nil)
	dataBytes, keyBytes := 0, 0
	for i := 0; i < n; i++ {
		key := benchKey(rng) // "session:" + 32 hex, a string of its own, as the handler's
		// Small data: {"user":"u000123"}, 18 bytes.
		opts := sessionstore.PatchOptions{TTL: benchTTL, Create: true}
		if perSubject > 0 {
			opts.Subject = &subjects[i]
		}
		data, err := s.Patch(benchCtx, key, []string{`{"user":"u` + strconv.Itoa(n + i)[1:] + `"}`}, opts)
		if err != nil {
			b.Fatal(err)
		}
		dataBytes += len(data)
		keyBytes += len(key)
	}
	if s.Len() != n {
		b.Fatalf("store holds %d sessions, want %d", s.Len(), n)
	}

	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	runtime.KeepAlive(subjects) // made before: not the store's
	_ = s.Destruct()

	total := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	per := total / n
	b.ReportMetric(per, "B/session")
	b.ReportMetric(float64(dataBytes)/n, "data-B/session")
	b.ReportMetric(per-float64(dataBytes)/n, "beyond-data-B/session")
	b.ReportMetric(per-float64(dataBytes+keyBytes)/n, "beyond-data+key-B/session")
	b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/n, "objects/session")
}
