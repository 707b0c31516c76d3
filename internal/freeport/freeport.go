// Package freeport picks free loopback TCP ports for servers that tests
// start, so that tests never bind a fixed port: two test runs at once, or a
// run next to the demo (./xcaddy.sh run) or a system Caddy, do not collide.
//
// A port is drawn at random below the kernel's ephemeral range and checked
// by binding it on 127.0.0.1. Below that range rather than from a listen on
// port 0 because port 0 hands out ephemeral ports, which the kernel also
// gives to outgoing connections: a test that frees its port between two
// Caddy configs and binds it again could find a client socket on it.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// low is the bottom of the range ports are drawn from; the top is the
// ephemeral range's bottom (32768 on Linux by default).
const low = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{} // ports this process already handed out
)

// Port returns a free loopback port, distinct from every other this
// process got from it.
func Port() (int, error) { return PortWith() }

// PortWith returns a free loopback port p such that p+offset is free too
// for each offset (Redis Cluster's bus port is port+10000).
func PortWith(offsets ...int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	high := ephemeralLow()
	maxOffset := 0
	for _, o := range offsets {
		maxOffset = max(maxOffset, o)
	}
	if high-maxOffset-low < 100 {
		return 0, fmt.Errorf("freeport: no room below the ephemeral range (%d) for offsets %v", high, offsets)
	}
	for range 1000 {
		p := low + rand.IntN(high-maxOffset-low)
		if !free(p) {
			continue
		}
		ok := true
		for _, o := range offsets {
			if !free(p + o) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		given[p] = true
		for _, o := range offsets {
			given[p+o] = true
		}
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port found in [%d, %d)", low, high)
}

// free tells whether p is neither handed out already nor bound by anyone.
func free(p int) bool {
	if given[p] {
		return false
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// ephemeralLow is the bottom of the kernel's ephemeral port range, or 32768
// where it cannot be read (non-Linux) or leaves too little room below it.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < low+12000 {
		return 32768
	}
	return n
}
