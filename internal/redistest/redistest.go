// Package redistest starts real redis-server processes for tests: single
// servers, a Redis Cluster, and a Sentinel, each on free loopback ports and
// stopped when the test ends.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-session/caddy-session/internal/freeport"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	// args gives the command line for a port; mkConf, when set, writes the
	// config file the command line names (a Sentinel's) for that port.
	args     func(port int) []string
	mkConf   func(port int)
	password string // for the readiness check, from --requirepass
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the server's redis:// address.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// requireBinary skips the test when redis-server is missing, except in CI
// (CI is set), where a missing binary is a broken setup and fails.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; ./test.sh installs it (apt-get install redis-server)", name)
	}
	t.Skipf("%s is not installed; ./test.sh installs it (apt-get install redis-server)", name)
	return ""
}

// Start starts a redis-server on a free port, with extra arguments.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	requireBinary(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir()}
	s.args = func(port int) []string {
		return append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--loglevel", "warning",
		}, extra...)
	}
	for i, a := range extra {
		if a == "--requirepass" && i+1 < len(extra) {
			s.password = extra[i+1]
		}
	}
	t.Cleanup(s.Kill) // before start: a server that fails to get ready is stopped too
	s.startOnFreePort()
	return s
}

// startOnFreePort starts the server on a free port, and on another if
// that one was taken in the meantime (by another test run, say): the port
// is free when chosen, but another process may bind it before Redis does.
func (s *Server) startOnFreePort() {
	s.t.Helper()
	var err error
	for range 5 {
		s.Port = freePort(s.t)
		if s.mkConf != nil {
			s.mkConf(s.Port)
		}
		if err = s.tryStart(); err == nil {
			return
		}
		s.Kill()
	}
	s.t.Fatal(err)
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.tryStart(); err != nil {
		s.t.Fatal(err)
	}
}

// tryStart starts redis-server on s.Port and waits until it answers. It
// fails when the process exits first (the port was taken, say), and when
// what answers on the port is not this process.
func (s *Server) tryStart() error {
	s.cmd = exec.Command("redis-server", s.args(s.Port)...)
	// The output goes to a file, not the test log: the process may write
	// after the test has ended.
	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	cmd, exited := s.cmd, make(chan struct{})
	s.exited = exited
	go func() { _ = cmd.Wait(); close(exited) }()
	if err := s.waitReady(); err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("redis-server on %d: %w\n%s", s.Port, err, out)
	}
	return nil
}

// waitReady waits until this process answers on s.Port. It checks the
// process ID the server reports, so that another test run's redis-server
// that got the port first is never taken for this one.
func (s *Server) waitReady() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password, DisableIdentity: true})
	defer c.Close()
	want := "process_id:" + strconv.Itoa(s.cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("exited before it answered")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil {
			if strings.Contains(info, want+"\r\n") || strings.Contains(info, want+"\n") {
				return nil
			}
			err = fmt.Errorf("another process answers (not %s)", want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down, saving its data to disk, as an orderly
// restart of Redis does.
func (s *Server) Stop() {
	s.t.Helper()
	c := s.Client()
	_ = c.Do(context.Background(), "SHUTDOWN", "SAVE").Err() // the connection drops: no reply
	_ = c.Close()
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same port, loading what Stop saved.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Kill ends the process without saving. Safe to call when stopped.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Client returns a plain client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the nodes as redis:// URLs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = "redis://" + n.Addr()
	}
	return out
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, DisableIdentity: true})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// StartCluster starts n masters with cluster-enabled and joins them with
// `redis-cli --cluster create`, then waits until the cluster is ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	requireBinary(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for i := 0; i < n; i++ {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, s)
		args = append(args, s.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, node := range c.Nodes {
		cl := node.Client()
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %v %s", node.Addr(), err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// StartSentinel starts one Sentinel watching master under masterName.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	requireBinary(t, "redis-server")
	s := &Server{t: t, dir: t.TempDir()}
	conf := filepath.Join(s.dir, "sentinel.conf")
	// The Sentinel rewrites its config file: a fresh one for each port tried.
	s.mkConf = func(port int) {
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 2000\n",
			port, s.dir, masterName, master.Port, masterName)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.args = func(int) []string { return []string{conf, "--sentinel", "--loglevel", "warning"} }
	t.Cleanup(s.Kill)
	s.startOnFreePort()
	// Wait until the Sentinel knows the master.
	cl := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addr, err := cl.GetMasterAddrByName(context.Background(), masterName).Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.Port) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel does not know %s: %v %v", masterName, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort finds a free loopback port whose cluster bus port (port+10000)
// is free too.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.PortWith(10000)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
