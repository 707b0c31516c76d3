package memorystore

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-session/caddy-session/internal/caddyopt"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store memory {
//		name <name>
//		max_sessions <n>
//		persist <file>
//		persist_interval <duration>
//	}
func (m *MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("store memory: unexpected argument %q; options go in a block", d.Val())
	}
	opts := caddyopt.NewReader(d, "store memory", "name", "max_sessions", "persist", "persist_interval")
	for d.NextBlock(0) {
		opt, err := opts.Start()
		if err != nil {
			return err
		}
		switch opt {
		case "name":
			m.Name, err = opts.Value()
		case "max_sessions":
			m.MaxSessions, err = opts.PositiveInt()
		case "persist":
			m.Persist, err = opts.Value()
		case "persist_interval":
			var dur time.Duration
			dur, err = opts.Duration(time.Second)
			m.PersistInterval = caddy.Duration(dur)
		}
		if err != nil {
			return err
		}
		if err := opts.End(); err != nil {
			return err
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*MemoryStore)(nil)
