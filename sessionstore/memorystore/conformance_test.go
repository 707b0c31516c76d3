package memorystore

import (
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore/storetest"
)

// TestConformance holds the memory store, through its module, to the
// Store contract, on a clock the suite moves by hand.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		s, c := newTestStore(t, 0)
		// Registered after the store's Destruct, so it runs before it.
		t.Cleanup(func() { checkInvariants(t, s) })
		return storetest.Harness{
			Store:   &MemoryStore{store: s},
			TTL:     10 * time.Minute,
			Advance: c.advance,
			Now:     func() time.Time { return time.Unix(0, c.now()) },
			Sweep:   func() { s.sweep() },
		}
	})
}
