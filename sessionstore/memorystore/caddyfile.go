package memorystore

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("store memory: option %q given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "name":
			if !d.NextArg() {
				return d.Errf("store memory: name needs a value")
			}
			m.Name = d.Val()
		case "max_sessions":
			if !d.NextArg() {
				return d.Errf("store memory: max_sessions needs a value")
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("store memory: max_sessions must be a positive integer, got %q", d.Val())
			}
			m.MaxSessions = n
		case "persist":
			if !d.NextArg() {
				return d.Errf("store memory: persist needs a file")
			}
			m.Persist = d.Val()
		case "persist_interval":
			if !d.NextArg() {
				return d.Errf("store memory: persist_interval needs a duration")
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur < time.Second {
				return d.Errf("store memory: persist_interval must be a duration of 1s or more, got %q", d.Val())
			}
			m.PersistInterval = caddy.Duration(dur)
		default:
			return d.Errf("store memory: unknown option %q", opt)
		}
		if d.NextArg() {
			return d.Errf("store memory: %s: unexpected extra argument %q", opt, d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*MemoryStore)(nil)
