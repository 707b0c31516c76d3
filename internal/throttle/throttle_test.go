package throttle

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	sec := int64(time.Second)
	th := New(10 * time.Second)
	steps := []struct {
		n, at   int64
		total   int64
		allowed bool
	}{
		{1, 0, 1, true},            // the first passes at once
		{1, 1 * sec, 0, false},     // within the interval: held back
		{3, 5 * sec, 0, false},     // and counted
		{1, 10 * sec, 5, true},     // the next line reports all since the last
		{1, 11 * sec, 0, false},    //
		{2, 25 * sec, 3, true},     //
		{1, 100 * sec, 1, true},    // after a quiet spell, at once again
		{1, 100*sec + 1, 0, false}, //
	}
	for i, s := range steps {
		total, ok := th.Note(s.n, s.at)
		if ok != s.allowed || total != s.total {
			t.Errorf("step %d: Note(%d, %d) = %d, %v; want %d, %v", i, s.n, s.at, total, ok, s.total, s.allowed)
		}
	}
}
