//go:build race

package tests

// raceEnabled: the race detector slows every goroutine several times over,
// so bounds on how soon something happens are loosened under it.
const raceEnabled = true
