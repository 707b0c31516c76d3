//go:build unix

package redisstore

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-session/caddy-session/internal/redistest"
	"github.com/caddy-session/caddy-session/sessionstore"
)

// Benchmarks of the Redis store's operations against a real redis-server on
// loopback, serial and parallel. Besides ns/op (which includes the wait for
// Redis), each reports client-µs/op: the CPU time this process spent per
// operation, which is what the store costs Caddy.
//
//	go test -run '^$' -bench Redis -benchmem ./sessionstore/redisstore/

const (
	benchTTL      = 30 * 24 * time.Hour
	benchSessions = 1000
)

// benchStore starts a redis-server and a store on it (over TCP, or the
// server's unix socket) holding benchSessions sessions with small data.
func benchStore(b *testing.B, unix bool) (*RedisStore, []string) {
	b.Helper()
	addr := ""
	if unix {
		sock := filepath.Join(b.TempDir(), "redis.sock")
		redistest.Start(b, "--unixsocket", sock, "--unixsocketperm", "700")
		addr = "unix://" + sock
	} else {
		addr = redistest.Start(b).URL()
	}
	s := &RedisStore{Address: []string{addr}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Cleanup() })
	keys := make([]string, benchSessions)
	for i := range keys {
		keys[i] = "session:" + strconv.Itoa(1e9+i)
		if _, err := s.Patch(bg, keys[i], []string{`{"user":"alice"}`}, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
			b.Fatal(err)
		}
	}
	return s, keys
}

// cpuTime is the CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times (in parallel when parallel is set) and
// reports the client CPU per op.
func measure(b *testing.B, parallel bool, op func(i int) error) {
	measureN(b, parallel, 1, op)
}

// measureN is measure with p goroutines per GOMAXPROCS when parallel:
// with -cpu 1 and p 16, it stands for a Caddy on one core serving 16
// connections (as bench/run.sh's load does).
func measureN(b *testing.B, parallel bool, p int, op func(i int) error) {
	b.ReportAllocs()
	b.SetParallelism(p)
	b.ResetTimer()
	start := cpuTime(b)
	if parallel {
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 7919
			for pb.Next() {
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Microsecond)/float64(b.N), "client-µs/op")
}

func BenchmarkRedis(b *testing.B) {
	for _, transport := range []struct {
		name string
		unix bool
	}{{"tcp", false}, {"unix", true}} {
		b.Run(transport.name, func(b *testing.B) {
			s, keys := benchStore(b, transport.unix)
			load := func(i int) error {
				_, err := s.Load(bg, keys[i%len(keys)], benchTTL)
				return err
			}
			patches := make([][]string, 1024)
			for i := range patches {
				patches[i] = []string{`{"n":` + strconv.Itoa(i) + `}`}
			}
			patch := func(i int) error {
				_, err := s.Patch(bg, keys[i%len(keys)], patches[i%len(patches)], sessionstore.PatchOptions{TTL: benchTTL})
				return err
			}
			// A request of the write scenario: the session is loaded,
			// then changed. Its cached copy went with the last change
			// (Redis invalidates a key its writer read, too), so the load
			// reads it from Redis.
			loadPatch := func(i int) error {
				if err := load(i); err != nil {
					return err
				}
				return patch(i)
			}
			b.Run("Load", func(b *testing.B) { measure(b, false, load) })
			b.Run("LoadParallel", func(b *testing.B) { measure(b, true, load) })
			b.Run("Patch", func(b *testing.B) { measure(b, false, patch) })
			b.Run("PatchParallel", func(b *testing.B) { measure(b, true, patch) })
			b.Run("LoadPatch", func(b *testing.B) { measure(b, false, loadPatch) })
			b.Run("LoadPatchParallel", func(b *testing.B) { measure(b, true, loadPatch) })
			b.Run("LoadPatch16", func(b *testing.B) { measureN(b, true, 16, loadPatch) })
			b.Run("Load16", func(b *testing.B) { measureN(b, true, 16, load) })
			b.Run("CreateDelete", func(b *testing.B) {
				measure(b, false, func(i int) error {
					k := "session:new:" + strconv.Itoa(i)
					if _, err := s.Patch(bg, k, []string{`{"user":"bob"}`}, sessionstore.PatchOptions{TTL: benchTTL, Create: true}); err != nil {
						return err
					}
					return s.Delete(bg, k)
				})
			})
		})
	}
}
