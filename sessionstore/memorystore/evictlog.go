package memorystore

import (
	"sync"
	"time"
)

// evictionLogEvery is how often, at most, a flood's evictions are logged.
const evictionLogEvery = time.Second

// evictionLog logs evictions as they happen without a line per eviction:
// the first of a flood at once, then a summary with the count every
// interval while evictions go on, and a last one at most an interval after
// they stop. A timer is armed only while evictions are pending, so the
// summary does not wait for the next eviction (which, after a flood, may
// never come).
type evictionLog struct {
	every time.Duration
	// log writes one line: first is the line that opens a flood; n
	// evictions, seen of them of sessions off probation.
	log func(first bool, n, seen int64)

	mu            sync.Mutex
	armed         bool // a flood is on: the timer will fire
	timer         *time.Timer
	pending, seen int64
	stopped       bool
}

// note records n evictions, seen of them of sessions off probation.
func (l *evictionLog) note(n, seen int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.armed || l.stopped {
		l.pending += n
		l.seen += seen
		return
	}
	l.armed = true
	if l.timer == nil {
		l.timer = time.AfterFunc(l.every, l.tick)
	} else {
		l.timer.Reset(l.every)
	}
	l.log(true, n, seen)
}

// tick logs what is pending, and disarms when nothing is: the flood is
// over, and the next eviction is logged at once.
func (l *evictionLog) tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.pending == 0 {
		l.armed = false
		return
	}
	l.log(false, l.pending, l.seen)
	l.pending, l.seen = 0, 0
	l.timer.Reset(l.every)
}

// stop logs what is pending and stops the timer, when the store stops.
func (l *evictionLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.pending > 0 {
		l.log(false, l.pending, l.seen)
		l.pending, l.seen = 0, 0
	}
}
