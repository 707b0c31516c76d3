package redistest

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Servers started together get distinct ports, answer as themselves, and a
// restart keeps the port and the data.
func TestStartStopRestart(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port == b.Port {
		t.Fatalf("two servers on port %d", a.Port)
	}
	ctx := context.Background()
	if err := a.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port := a.Port
	a.Stop()
	a.Restart()
	if a.Port != port {
		t.Fatalf("restarted on %d, was %d", a.Port, port)
	}
	if got := a.Client().Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("after restart k = %q", got)
	}
	if n := b.Client().Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("the second server holds the first one's key")
	}
}

func TestStartWithPassword(t *testing.T) {
	s := Start(t, "--requirepass", "s3cret")
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "s3cret", DisableIdentity: true})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestSentinel(t *testing.T) {
	master := Start(t)
	s := StartSentinel(t, master, "m")
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	addr, err := c.GetMasterAddrByName(context.Background(), "m").Result()
	if err != nil || addr[1] != strconv.Itoa(master.Port) {
		t.Fatalf("sentinel's master: %v %v", addr, err)
	}
}
