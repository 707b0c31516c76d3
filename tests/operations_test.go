package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue reads one sample from Caddy's /metrics on the admin API; a
// sample that is not there reads as 0.
func metricValue(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(adminBase + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

func TestMetricsThroughCaddy(t *testing.T) {
	up := startUpstream(t)
	const site = `session session_name ops cookie_name ops prefix ops: {
	store memory {
		name ops
	}
}
reverse_proxy {upstream}`
	loadCaddy(t, up, site)
	name := `session_name="ops"`
	before := map[string]float64{
		"created":     metricValue(t, "caddy_session_created_total", name),
		"cleared":     metricValue(t, "caddy_session_destroyed_total", name, `reason="cleared"`),
		"regenerated": metricValue(t, "caddy_session_destroyed_total", name, `reason="regenerated"`),
		"unknown":     metricValue(t, "caddy_session_rejected_total", name, `reason="unknown"`),
		"malformed":   metricValue(t, "caddy_session_rejected_total", name, `reason="malformed"`),
		"loads":       metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`),
	}
	// The upstream's instructions for session_name ops are X-Ops-*.
	ops := func(name, value string) string { return "/?hdr=" + url.QueryEscape("X-Ops-"+name+":"+value) }
	c := newClient(t)
	c.get(ops("Set", `{"a":1}`))                        // created
	c.get(ops("Regenerate", "true"))                    // regenerated
	c.get(ops("Clear", "true"))                         // cleared
	c.get("/", "Cookie: ops="+strings.Repeat("ab", 16)) // unknown
	c.get("/", "Cookie: ops=forged")                    // malformed
	other := newClient(t)
	other.get(ops("Set", `{"b":1}`)) // created, and held

	checks := []struct {
		what  string
		got   float64
		delta float64
	}{
		{"created", metricValue(t, "caddy_session_created_total", name), 2},
		{"cleared", metricValue(t, "caddy_session_destroyed_total", name, `reason="cleared"`), 1},
		{"regenerated", metricValue(t, "caddy_session_destroyed_total", name, `reason="regenerated"`), 1},
		{"unknown", metricValue(t, "caddy_session_rejected_total", name, `reason="unknown"`), 1},
		{"malformed", metricValue(t, "caddy_session_rejected_total", name, `reason="malformed"`), 1},
	}
	for _, c := range checks {
		if c.got-before[c.what] != c.delta {
			t.Errorf("%s: went from %v to %v, want +%v", c.what, before[c.what], c.got, c.delta)
		}
	}
	if got := metricValue(t, "caddy_session_store_duration_seconds_count", `backend="memory"`, `operation="load"`); got-before["loads"] < 3 {
		t.Errorf("store load latency count went from %v to %v, want +3 or more", before["loads"], got)
	}
	if got := metricValue(t, "caddy_session_active", name); got != 1 {
		t.Errorf("caddy_session_active{ops} = %v, want 1", got)
	}

	// After a reload, the metrics are registered again and keep counting.
	loadCaddy(t, up, site+"\nheader X-Reloaded yes")
	createdBefore := metricValue(t, "caddy_session_created_total", name)
	newClient(t).get(ops("Set", `{"c":1}`))
	if got := metricValue(t, "caddy_session_created_total", name); got != createdBefore+1 {
		t.Errorf("after a reload created went from %v to %v, want +1", createdBefore, got)
	}
	if got := metricValue(t, "caddy_session_active", name); got != 2 {
		t.Errorf("after a reload caddy_session_active{ops} = %v, want 2", got)
	}
}

// adminDo sends a request to the admin API and returns status and body.
func adminDo(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, adminBase+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminAPI(t *testing.T) {
	up := startUpstream(t)
	loadCaddy(t, up, `session cookie_name main expiry 3600
session cookie_name alt session_name alt_session prefix alt:
reverse_proxy {upstream}`)
	c := newClient(t)
	c.get("/" + set(`{"user":"gina"}`))
	id := c.cookie("main")

	status, body := adminDo(t, http.MethodGet, "/session/")
	var list []map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("GET /session/: %d %s", status, body)
	}
	names := map[string]map[string]any{}
	for _, s := range list {
		names[s["session_name"].(string)] = s
	}
	if names["session"] == nil || names["alt_session"] == nil || names["session"]["store"] != "memory" || names["session"]["sessions"] == nil {
		t.Errorf("GET /session/ = %s", body)
	}

	status, body = adminDo(t, http.MethodGet, "/session/session/"+id)
	var one struct {
		SessionName string `json:"session_name"`
		ID          string `json:"id"`
		Stores      []struct {
			Store     string         `json:"store"`
			Data      map[string]any `json:"data"`
			ExpiresIn int64          `json:"expires_in"`
		} `json:"stores"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &one) != nil || len(one.Stores) != 1 {
		t.Fatalf("GET one session: %d %s", status, body)
	}
	if one.Stores[0].Data["user"] != "gina" || one.Stores[0].ExpiresIn < 3590 || one.Stores[0].ExpiresIn > 3600 || one.ID != id {
		t.Errorf("GET one session = %s", body)
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/session/nosuch/" + id, 404},
		{http.MethodGet, "/session/session/" + strings.Repeat("0", 32), 404},
		{http.MethodGet, "/session/session/not-an-id", 404},
		{http.MethodDelete, "/session/alt_session/" + id, 404}, // that ID is not an alt_session
		{http.MethodPost, "/session/session/" + id, 405},
		{http.MethodPut, "/session/", 405},
		{http.MethodGet, "/session/session", 404},
	} {
		if status, body := adminDo(t, tc.method, tc.path); status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, body, tc.want)
		}
	}

	status, body = adminDo(t, http.MethodDelete, "/session/session/"+id)
	if status != 200 || !strings.Contains(body, `"revoked":1`) {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	resp, s := c.get("/")
	if s.get("X-Session-New") != "true" || s.get("X-Session-Id") == id {
		t.Errorf("after revoke the cookie still opens the session: %v", s.Header)
	}
	if line := rawSetCookie(t, resp, "main"); !strings.Contains(line, "Max-Age=0") {
		t.Errorf("after revoke the stale cookie was not deleted: %q", line)
	}
	if status, _ := adminDo(t, http.MethodDelete, "/session/session/"+id); status != 404 {
		t.Errorf("DELETE of a revoked session: %d, want 404", status)
	}
}

func TestMemoryStorePersistsAcrossRestart(t *testing.T) {
	up := startUpstream(t)
	file := filepath.Join(t.TempDir(), "sessions.jsonl")
	site := fmt.Sprintf(`session cookie_name keep {
	store memory {
		name persisted
		persist %s
		persist_interval 1s
	}
}
session cookie_name brief session_name brief prefix brief: expiry 1 {
	store memory {
		name persisted
		persist %s
		persist_interval 1s
	}
}
reverse_proxy {upstream}`, file, file)
	stopped := `respond "stopped"`

	loadCaddy(t, up, site)
	c := newClient(t)
	briefSet := "?hdr=" + url.QueryEscape(`X-Brief-Set:{"n":1}`)
	c.get("/" + set(`{"user":"hank"}`) + "&" + strings.TrimPrefix(briefSet, "?"))
	keep, brief := c.cookie("keep"), c.cookie("brief")
	if keep == "" || brief == "" {
		t.Fatalf("login set cookies keep=%q brief=%q", keep, brief)
	}
	time.Sleep(1100 * time.Millisecond) // brief expires while Caddy is down

	// Stopping the last config that uses the store saves it.
	loadCaddy(t, nil, stopped)
	info, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no file after stop: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", info.Mode().Perm())
	}

	loadCaddy(t, up, site)
	_, s := c.get("/", "Cookie: brief="+brief)
	if s.get("X-Session-Id") != keep || s.get("X-Session-Data") != `{"user":"hank"}` {
		t.Errorf("after restart: id %s data %s, want the logged-in session", s.get("X-Session-Id"), s.get("X-Session-Data"))
	}
	if s.get("X-Brief-New") != "true" {
		t.Errorf("an expired session came back after restart: %s", s.get("X-Brief-Id"))
	}

	// A corrupt file: moved aside, the store starts empty, Caddy serves.
	loadCaddy(t, nil, stopped)
	if err := os.WriteFile(file, []byte("corrupt\x00\x01"), 0o600); err != nil {
		t.Fatal(err)
	}
	loadCaddy(t, up, site)
	resp, s := c.get("/")
	if resp.StatusCode != http.StatusOK || s.get("X-Session-New") != "true" {
		t.Errorf("with a corrupt file: status %d, new %s", resp.StatusCode, s.get("X-Session-New"))
	}
	aside, _ := filepath.Glob(file + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file moved to %v, want one file", aside)
	}
	if body, _ := os.ReadFile(aside[0]); string(body) != "corrupt\x00\x01" {
		t.Errorf("the moved file lost its content: %q", body)
	}
}
