package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A store capped at 100: a user logs in and comes back; then 1000
// cookieless visitors each get data. The user's session survives the
// flood, which evicts only the visitors' sessions, and the eviction shows
// in the metrics and the log within seconds, without a line per eviction.
func TestFloodCannotEvictReturningUser(t *testing.T) {
	up := startUpstream(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	globals := fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t}", logFile)
	site := `session cookie_name flood {
	store memory {
		name flood
		max_sessions 100
	}
}
reverse_proxy {upstream}`
	loadCaddyWithGlobals(t, up, globals, site)
	evictedBefore := metricValue(t, "caddy_session_destroyed_total", `reason="evicted"`)

	user := newClient(t)
	user.get(set(`{"user":"alice"}`)) // logs in
	if _, s := user.get("/"); s.get("X-Session-Data") != `{"user":"alice"}` {
		t.Fatalf("the user's next request saw %q", s.get("X-Session-Data"))
	}

	const visitors = 1000
	for i := 0; i < visitors; i++ {
		newClient(t).get(set(fmt.Sprintf(`{"cart":%d}`, i))) // a new session each
	}
	flooded := time.Now()

	if _, s := user.get("/"); s.get("X-Session-Data") != `{"user":"alice"}` {
		t.Errorf("after the flood the user's session holds %q (new: %q): evicted",
			s.get("X-Session-Data"), s.get("X-Session-New"))
	}
	if got := metricValue(t, "caddy_session_destroyed_total", `reason="evicted"`) - evictedBefore; got != visitors-99 {
		t.Errorf("evicted metric went up by %v, want %d", got, visitors-99)
	}

	// The log: a first line at once, then summaries; all of the flood's
	// evictions counted within a few seconds of its end.
	var lines []string
	total := 0
	for deadline := flooded.Add(5 * time.Second); ; {
		b, _ := os.ReadFile(logFile)
		lines, total = evictionLines(t, string(b))
		if total >= visitors-99 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if total != visitors-99 {
		t.Errorf("the eviction log counts %d evictions within 5s of the flood, want %d: %q", total, visitors-99, lines)
	}
	if len(lines) > 20 {
		t.Errorf("%d eviction log lines for one flood: want a summary, not a line each", len(lines))
	}
	if len(lines) > 0 && !strings.Contains(lines[0], `"evicted_seen":0`) {
		t.Errorf("the flood evicted seen sessions: %s", lines[0])
	}
}

// evictionLines returns the memory store's eviction log lines in log and
// the evictions they count.
func evictionLines(t *testing.T, log string) ([]string, int) {
	t.Helper()
	var lines []string
	total := 0
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "memory session store full") {
			continue
		}
		lines = append(lines, line)
		var n int
		if i := strings.Index(line, `"evicted":`); i >= 0 {
			fmt.Sscanf(line[i+len(`"evicted":`):], "%d", &n)
		}
		total += n
	}
	return lines, total
}
