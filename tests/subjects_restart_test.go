package tests

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/internal/redistest"
)

// The subject index across restarts, with the built Caddy: the memory
// store's index comes back from its persist file and journal, and on Redis
// two Caddy processes share one index that outlives either of them.

// stop sends SIGTERM, which lets Caddy shut down and save, and waits.
func (p *caddyProcess) stop() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	}
}

// binarySite is a Caddyfile for a Caddy process on port whose session
// handler has the devices endpoint and the given store.
func binarySite(port int, upstream, store string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	http_port %d
	persist_config off
}
:%d {
	session {
		scope twin
		devices /devices
		record user_agent ip
		store %s
	}
	reverse_proxy %s
}
`, port, port, store, upstream)
}

// totalOn lists the device's subject's sessions through base.
func totalOn(t *testing.T, d *device, base string) int {
	t.Helper()
	status, list := d.devices(base)
	if status != http.StatusOK {
		t.Fatalf("GET %s/devices: %d %+v", base, status, list)
	}
	return list.Total
}

func TestSubjectIndexSurvivesRestart(t *testing.T) {
	bin := caddyBinary(t)
	up := startUpstream(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	file := filepath.Join(t.TempDir(), "s.jsonl")
	caddyfile := binarySite(port, strings.TrimPrefix(up.URL, "http://"), "memory {\n\t\t\tpersist "+file+"\n\t\t\tpersist_interval 1h\n\t\t}")

	first := startCaddyBinary(t, bin, caddyfile, base)
	laptop, desktop, phone := threeDevices(t, base)
	// The journal keeps what is more than a second old at a SIGKILL.
	time.Sleep(1500 * time.Millisecond)
	first.kill()

	second := startCaddyBinary(t, bin, caddyfile, base)
	if got := totalOn(t, laptop, base); got != 3 {
		t.Fatalf("after SIGKILL and restart: %d sessions of alice, want 3\nfirst Caddy's output:\n%s", got, first.out)
	}
	laptop.on(base, "/?hdr=X-Session-Revoke:others")
	if desktop.user(base) != "" || phone.user(base) != "" || laptop.user(base) != alice(t) {
		t.Fatal("after the restart, revoke others did not end exactly the other two")
	}
	// Remember me off, for this session alone: kept across the restart.
	phone.login(base, alice(t), "X-Session-Persist:false")
	second.stop() // a clean shutdown saves the persist file

	third := startCaddyBinary(t, bin, caddyfile, base)
	defer third.kill()
	if got := totalOn(t, phone, base); got != 2 {
		t.Errorf("after a clean restart: %d sessions of alice, want 2", got)
	}
	_, list := phone.devices(base)
	if len(list.Sessions) != 2 {
		t.Fatalf("after a clean restart: %+v", list)
	}
	for _, s := range list.Sessions {
		if s.UserAgent == "" || s.IP == "" || s.Created == "" {
			t.Errorf("after a restart a session lost what was recorded of it: %+v", s)
		}
	}
	resp, _ := phone.on(base, "/"+set(`{"n":1}`))
	if line := rawSetCookie(t, resp, "session"); strings.Contains(line, "Max-Age") {
		t.Errorf("after a restart the session forgot X-Session-Persist: false: %q", line)
	}
}

func TestRedisSubjectsTwoProcesses(t *testing.T) {
	bin := caddyBinary(t)
	srv := redistest.Start(t)
	up := startUpstream(t)
	upstream := strings.TrimPrefix(up.URL, "http://")
	store := "redis {\n\t\t\taddress " + srv.URL() + "\n\t\t}"
	port1, port2 := freePort(t), freePort(t)
	base1, base2 := fmt.Sprintf("http://127.0.0.1:%d", port1), fmt.Sprintf("http://127.0.0.1:%d", port2)
	cf1, cf2 := binarySite(port1, upstream, store), binarySite(port2, upstream, store)
	one := startCaddyBinary(t, bin, cf1, base1)
	two := startCaddyBinary(t, bin, cf2, base2)

	// Three devices sign in, one through the first and two through the
	// second, and use their sessions through both, so both caches hold
	// them.
	laptop, desktop, phone := newDevice(t, uaFirefox), newDevice(t, uaChrome), newDevice(t, uaSafari)
	laptop.login(base1, alice(t))
	desktop.login(base2, alice(t))
	phone.login(base2, alice(t))
	for _, d := range []*device{laptop, desktop, phone} {
		for _, base := range []string{base1, base2, base1, base2} {
			if got := d.user(base); got != alice(t) {
				t.Fatalf("through %s: user %q", base, got)
			}
		}
	}
	if got := totalOn(t, laptop, base1); got != 3 {
		t.Fatalf("through the first: %d sessions, want 3", got)
	}

	// A revoke through the first ends the others on the second before
	// their next request there: no waiting.
	laptop.on(base1, "/?hdr=X-Session-Revoke:others")
	if got := desktop.user(base2); got != "" {
		t.Errorf("the desktop's next request through the second: still %q", got)
	}
	if got := phone.user(base2); got != "" {
		t.Errorf("the phone's next request through the second: still %q", got)
	}
	if got := laptop.user(base2); got != alice(t) {
		t.Errorf("the laptop through the second: %q", got)
	}

	// The index outlives either process.
	desktop.login(base2, alice(t), "X-Session-Persist:false")
	phone.login(base1, alice(t))
	two.kill()
	two = startCaddyBinary(t, bin, cf2, base2)
	defer two.kill()
	if got := totalOn(t, desktop, base2); got != 3 {
		t.Errorf("after the second restarted: %d sessions through it, want 3", got)
	}
	resp, _ := desktop.on(base2, "/"+set(`{"n":1}`))
	if line := rawSetCookie(t, resp, "session"); strings.Contains(line, "Max-Age") {
		t.Errorf("after a restart the session forgot X-Session-Persist: false: %q", line)
	}
	one.kill()
	one = startCaddyBinary(t, bin, cf1, base1)
	defer one.kill()
	if got := totalOn(t, phone, base1); got != 3 {
		t.Errorf("after the first restarted: %d sessions through it, want 3", got)
	}

	// A session that expires in Redis leaves the list.
	rc := srv.Client()
	if err := rc.PExpire(context.Background(), "session:"+phone.cookieAt(base1, "session"), 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, base := range []string{base1, base2} {
		if got := totalOn(t, laptop, base); got != 2 {
			t.Errorf("through %s after one expired: %d, want 2", base, got)
		}
	}
	if phone.user(base2) != "" {
		t.Error("the expired session is still served")
	}
}
