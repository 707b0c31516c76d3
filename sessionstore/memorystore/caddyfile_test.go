package memorystore

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestMemoryStoreUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    MemoryStore
		wantErr string // substring; empty for success
	}{
		{"bare", `memory`, MemoryStore{}, ""},
		{"empty block", "memory {\n}", MemoryStore{}, ""},
		{"both options", "memory {\n\tname x\n\tmax_sessions 10\n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"options one line", "memory {\n name x \n max_sessions 10 \n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"name only", "memory {\n\tname shared\n}", MemoryStore{Name: "shared"}, ""},
		{"max_sessions only", "memory {\n\tmax_sessions 1\n}", MemoryStore{MaxSessions: 1}, ""},
		{"quoted name", "memory {\n\tname \"a b\"\n}", MemoryStore{Name: "a b"}, ""},
		{"unknown option", "memory {\n\tfoo 1\n}", MemoryStore{}, `store memory: unknown option "foo"`},
		{"max_sessions zero", "memory {\n\tmax_sessions 0\n}", MemoryStore{}, `store memory: max_sessions: must be a positive integer, got "0"`},
		{"max_sessions negative", "memory {\n\tmax_sessions -1\n}", MemoryStore{}, `store memory: max_sessions: must be a positive integer, got "-1"`},
		{"max_sessions not a number", "memory {\n\tmax_sessions abc\n}", MemoryStore{}, `store memory: max_sessions: must be a positive integer, got "abc"`},
		{"max_sessions fraction", "memory {\n\tmax_sessions 1.5\n}", MemoryStore{}, `store memory: max_sessions: must be a positive integer`},
		{"max_sessions overflow", "memory {\n\tmax_sessions 99999999999999999999\n}", MemoryStore{}, `store memory: max_sessions: must be a positive integer`},
		{"max_sessions missing value", "memory {\n\tmax_sessions\n}", MemoryStore{}, `store memory: max_sessions needs a value`},
		{"name missing value", "memory {\n\tname\n}", MemoryStore{}, `store memory: name needs a value`},
		{"name twice", "memory {\n\tname a\n\tname b\n}", MemoryStore{}, `store memory: option name given twice`},
		{"max_sessions twice", "memory {\n\tmax_sessions 1\n\tmax_sessions 2\n}", MemoryStore{}, `store memory: option max_sessions given twice`},
		{"name extra argument", "memory {\n\tname a b\n}", MemoryStore{}, `store memory: name: unexpected argument "b"`},
		{"max_sessions extra argument", "memory {\n\tmax_sessions 10 20\n}", MemoryStore{}, `store memory: max_sessions: unexpected argument "20"`},
		{"persist", "memory {\n\tpersist /var/lib/caddy/s.jsonl\n\tpersist_interval 30s\n}", MemoryStore{Persist: "/var/lib/caddy/s.jsonl", PersistInterval: caddy.Duration(30 * time.Second)}, ""},
		{"persist no file", "memory {\n\tpersist\n}", MemoryStore{}, "store memory: persist needs a value"},
		{"persist_interval too short", "memory {\n\tpersist_interval 10ms\n}", MemoryStore{}, `store memory: persist_interval: must be a duration of at least 1s, such as 30s, 5m or 1h; got "10ms"`},
		{"persist_interval garbage", "memory {\n\tpersist_interval soon\n}", MemoryStore{}, "persist_interval"},
		{"argument on module line", `memory extra`, MemoryStore{}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m MemoryStore
			err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, want one containing %q; got %+v", tt.wantErr, m)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if m.Name != tt.want.Name || m.MaxSessions != tt.want.MaxSessions {
				t.Errorf("got %+v, want %+v", m, tt.want)
			}
		})
	}
}

// TestMemoryStoreUnmarshalFromStoreLine parses the way the handler does:
// from `store memory { ... }`, the backend's segment onward.
func TestMemoryStoreUnmarshalFromStoreLine(t *testing.T) {
	tests := []struct {
		input   string
		want    MemoryStore
		wantErr string
	}{
		{"store memory", MemoryStore{}, ""},
		{"store memory {\n\tname x\n\tmax_sessions 10\n}", MemoryStore{Name: "x", MaxSessions: 10}, ""},
		{"store memory {\n\tmax_sessions 0\n}", MemoryStore{}, "max_sessions"},
		{"store memory {\n\tbogus\n}", MemoryStore{}, `unknown option "bogus"`},
	}
	for _, tt := range tests {
		d := caddyfile.NewTestDispenser(tt.input)
		if !d.Next() || !d.NextArg() || d.Val() != "memory" {
			t.Fatalf("%q: bad test input", tt.input)
		}
		var m MemoryStore
		err := m.UnmarshalCaddyfile(d.NewFromNextSegment())
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.input, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.input, err)
		case m.Name != tt.want.Name || m.MaxSessions != tt.want.MaxSessions:
			t.Errorf("%q: got %+v, want %+v", tt.input, m, tt.want)
		}
	}
}
