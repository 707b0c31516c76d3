package redisstore

import (
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/internal/redistest"
	"github.com/caddy-session/caddy-session/sessionstore/storetest"
)

// TestConformance holds the Redis store to the Store contract against
// real redis-servers. Redis keeps its own time, so the suite's time is
// real: sessions live two seconds, renewal is due after 200ms, and Advance
// sleeps. Each subtest has a server of its own, so they sleep at once.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		srv := redistest.Start(t)
		return storetest.Harness{
			Store:    provision(t, &RedisStore{Address: []string{srv.URL()}}),
			TTL:      2 * time.Second,
			Advance:  time.Sleep,
			Parallel: true,
		}
	})
}
