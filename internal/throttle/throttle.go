// Package throttle bounds how often a repeated event is logged, so that a
// flood of failures writes a line every interval with a count instead of a
// line per request.
package throttle

import (
	"sync/atomic"
	"time"
)

// Throttle lets an event through at most once per interval. The zero value
// is not usable; make one with New.
type Throttle struct {
	interval int64 // nanoseconds
	last     atomic.Int64
	pending  atomic.Int64
}

// New returns a Throttle that lets the first event through at once.
func New(interval time.Duration) *Throttle {
	t := &Throttle{interval: int64(interval)}
	t.last.Store(-int64(interval)) // so the first event passes
	return t
}

// Note records n events at now (unix nanoseconds). It reports whether they
// should be logged now and, if so, how many events happened since the last
// logged one, these included.
func (t *Throttle) Note(n, now int64) (total int64, ok bool) {
	total = t.pending.Add(n)
	last := t.last.Load()
	if now-last < t.interval || !t.last.CompareAndSwap(last, now) {
		return 0, false
	}
	t.pending.Add(-total)
	return total, true
}
