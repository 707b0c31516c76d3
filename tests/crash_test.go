package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddy-session/caddy-session/internal/freeport"
)

// caddyBinary returns the Caddy built with caddy-session (./xcaddy.sh
// build): $CADDY_BIN, which must then exist (./test.sh sets it once it has
// built one), else ../caddy, without which the tests that run it skip.
func caddyBinary(t *testing.T) string {
	t.Helper()
	bin, required := os.Getenv("CADDY_BIN"), true
	if bin == "" {
		bin, required = filepath.Join("..", "caddy"), false
	}
	abs, err := filepath.Abs(bin)
	if err == nil {
		if info, serr := os.Stat(abs); serr == nil && !info.IsDir() {
			return abs
		}
	}
	if required {
		t.Fatalf("CADDY_BIN=%s: no such binary", bin)
	}
	t.Skipf("no Caddy binary at %s: build it with ./xcaddy.sh build, or set CADDY_BIN", bin)
	return ""
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// caddyProcess is a Caddy binary running a Caddyfile.
type caddyProcess struct {
	cmd *exec.Cmd
	out *strings.Builder
}

// caddyEnv keeps Caddy's own files (autosave, storage) in dir.
func caddyEnv(dir string) []string {
	return append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
}

// startCaddyBinary runs `caddy run` with the Caddyfile and waits until base
// answers.
func startCaddyBinary(t *testing.T, bin, caddyfile, base string) *caddyProcess {
	t.Helper()
	dir := t.TempDir()
	cf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile"), out: &strings.Builder{}}
	p.cmd.Env = caddyEnv(dir)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			return p
		}
	}
	p.kill()
	t.Fatalf("Caddy did not answer at %s within 15s; its output:\n%s", base, p.out)
	return nil
}

// kill sends SIGKILL: no shutdown, no final save.
func (p *caddyProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// With persist, a SIGKILL loses at most the last second of changes: every
// session created, changed or cleared more than a second before the kill
// is as it was after a restart, though the snapshot interval (1h) never
// came. The journal is what keeps them.
func TestMemoryStoreSurvivesSIGKILL(t *testing.T) {
	bin := caddyBinary(t)
	up := startUpstream(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	file := filepath.Join(t.TempDir(), "s.jsonl")
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	http_port %d
	persist_config off
}
:%d {
	session cookie_name crash {
		store memory {
			persist %s
			persist_interval 1h
		}
	}
	reverse_proxy %s
}
`, port, port, file, strings.TrimPrefix(up.URL, "http://"))
	first := startCaddyBinary(t, bin, caddyfile, base)

	const users = 30
	clients := make([]*client, users)
	for i := range clients {
		clients[i] = newClient(t)
		clients[i].getURL(base + "/" + set(fmt.Sprintf(`{"user":%d}`, i)))
	}
	clients[0].getURL(base + "/" + set(`{"changed":true}`)) // a change
	clients[1].getURL(base + "/?clear=true")                // cleared
	time.Sleep(1500 * time.Millisecond)
	first.kill()

	second := startCaddyBinary(t, bin, caddyfile, base)
	defer second.kill()
	for i, c := range clients {
		want := fmt.Sprintf(`{"user":%d}`, i)
		switch i {
		case 0:
			want = `{"changed":true,"user":0}`
		case 1:
			want = "{}"
		}
		if _, s := c.getURL(base + "/"); s.get("X-Session-Data") != want {
			t.Errorf("user %d after SIGKILL and restart: %q (new: %q), want %s",
				i, s.get("X-Session-Data"), s.get("X-Session-New"), want)
		}
	}
	if t.Failed() {
		t.Logf("first Caddy's output:\n%s", first.out)
	}
}

// A persist file in a missing directory is a config error that `caddy
// validate` reports, not a failed save at shutdown.
func TestPersistInMissingDirectoryFailsValidate(t *testing.T) {
	bin := caddyBinary(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir", "s.jsonl")
	cf := filepath.Join(dir, "Caddyfile")
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
}
:%d {
	session {
		store memory {
			persist %s
		}
	}
	respond ok
}
`, freePort(t), missing)
	if err := os.WriteFile(cf, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", cf, "--adapter", "caddyfile")
	cmd.Env = caddyEnv(dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("caddy validate passed a persist file in a missing directory:\n%s", out)
	}
	if !strings.Contains(string(out), "persist") || !strings.Contains(string(out), "no-such-dir") {
		t.Errorf("caddy validate failed without naming persist and the path:\n%s", out)
	}
}
