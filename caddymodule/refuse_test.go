package caddymodule

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestRefusedInstructionsAreCountedAndTheirLogThrottled: a broken upstream
// refuses on every response; each refusal is counted, but the log gets one
// line per interval, with the count, never the data.
func TestRefusedInstructionsAreCountedAndTheirLogThrottled(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &Handler{SessionName: "refuse_test"}
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Cleanup()
	core, logs := observer.New(zap.DebugLevel)
	h.logger = zap.New(core)

	counter := h.registry.metrics.refused.WithLabelValues("refuse_test", refusedInvalidUTF8)
	before := testutil.ToFloat64(counter)
	for range 50 {
		hdr := http.Header{"X-Refuse-Test-Set": {"{\"secret\":\"caf\xe9\"}"}}
		if in := h.takeInstructions(hdr, nil); len(in.patches) != 0 {
			t.Fatalf("a Set that is not UTF-8 was taken: %q", in.patches)
		}
	}
	if got := testutil.ToFloat64(counter) - before; got != 50 {
		t.Errorf("refused{invalid_utf8} rose by %v, want 50", got)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d log lines for 50 refusals within the interval, want 1", n)
	}
	entry := logs.All()[0]
	if entry.ContextMap()["reason"] != refusedInvalidUTF8 || entry.ContextMap()["session_name"] != "refuse_test" {
		t.Errorf("log line %v", entry.ContextMap())
	}
	for _, f := range entry.Context {
		if strings.Contains(f.String, "secret") || strings.Contains(f.String, "caf") {
			t.Errorf("the log quotes the data: %v", entry.Context)
		}
	}
}
