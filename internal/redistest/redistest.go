// Package redistest starts real redis-server processes for tests: single
// servers, a Redis Cluster, and a Sentinel, each on free loopback ports and
// stopped when the test ends.
package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
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
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir()}
	s.args = append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--loglevel", "warning",
	}, extra...)
	t.Cleanup(s.Kill) // before start: a server that fails to get ready is stopped too
	s.start()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", s.args...)
	// The output goes to a file, not the test log: the process may write
	// after the test has ended.
	logFile, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logFile.Close()
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.waitReady()
}

func (s *Server) waitReady() {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			return // it answers, password or not
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %d not ready: %v", s.Port, err)
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
	_ = s.cmd.Wait()
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
	_ = s.cmd.Wait()
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
	s := &Server{t: t, Port: freePort(t), dir: t.TempDir()}
	conf := filepath.Join(s.dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 2000\n",
		s.Port, s.dir, masterName, master.Port, masterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{conf, "--sentinel", "--loglevel", "warning"}
	t.Cleanup(s.Kill)
	s.start()
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

// freePort finds a loopback port that is free, and whose cluster bus port
// (port+10000) is free too.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		port := 20000 + rand.IntN(30000)
		if portFree(port) && portFree(port+10000) {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
