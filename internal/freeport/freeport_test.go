package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortsAreDistinctAndBindable(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < low || p >= ephemeralLow() {
			t.Fatalf("port %d outside [%d, %d)", p, low, ephemeralLow())
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		_ = l.Close()
	}
}

func TestPortWithOffsetReservesBoth(t *testing.T) {
	p, err := PortWith(10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []int{p, p + 10000} {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
		if err != nil {
			t.Fatalf("port %d: %v", q, err)
		}
		_ = l.Close()
	}
	// The port and its offset are taken now: never handed out again.
	for range 50 {
		q, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if q == p || q == p+10000 {
			t.Fatalf("port %d handed out again", q)
		}
	}
}
