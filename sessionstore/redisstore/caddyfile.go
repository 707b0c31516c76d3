package redisstore

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddy-session/caddy-session/internal/caddyopt"
)

// caddyfileOptions are the options of `store redis { ... }`.
var caddyfileOptions = []string{
	"address", "username", "password", "master_name", "pool_size", "cache_size",
	"dial_timeout", "read_timeout", "write_timeout", "tls_ca", "tls_insecure_skip_verify", "on_error",
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store redis {
//		address <url>...               # one or more; rediss:// for TLS, unix:// for a socket
//		username <name>
//		password <password>            # e.g. {env.REDIS_PASSWORD}
//		master_name <name>             # Sentinel: address lists the Sentinels
//		pool_size <n>
//		cache_size <bytes>             # e.g. 64MiB; default 32MiB
//		dial_timeout <duration>
//		read_timeout <duration>
//		write_timeout <duration>
//		tls_ca <file>
//		tls_insecure_skip_verify [true|false]
//		on_error open|closed
//	}
//
// `store redis` alone connects to redis://127.0.0.1:6379/0.
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("store redis: unexpected argument %q; options go in a block", d.Val())
	}
	opts := caddyopt.NewReader(d, "store redis", caddyfileOptions...)
	for d.NextBlock(0) {
		opt, err := opts.Start()
		if err != nil {
			return err
		}
		switch opt {
		case "address":
			if s.Address, err = opts.Values(); err != nil {
				return err
			}
			for _, a := range s.Address {
				if strings.Contains(a, "{") {
					continue // a placeholder: checked once replaced, at provision
				}
				if _, perr := parseAddress(a); perr != nil {
					return opts.Errf("%q: %v", redact(a), perr)
				}
			}
		case "username":
			s.Username, err = opts.Value()
		case "password":
			s.Password, err = opts.Value()
		case "master_name":
			s.MasterName, err = opts.Value()
		case "tls_ca":
			s.TLSCA, err = opts.Value()
		case "pool_size":
			s.PoolSize, err = opts.PositiveInt()
		case "cache_size":
			var v string
			if v, err = opts.Value(); err == nil {
				n, perr := parseSize(v)
				if perr != nil || n < 1 {
					return opts.Errf("must be a positive size in bytes, such as 33554432, 64MiB or 1GB; got %q", v)
				}
				s.CacheSize = n
			}
		case "dial_timeout", "read_timeout", "write_timeout":
			dur, derr := opts.Duration(1)
			if derr != nil {
				return derr
			}
			switch opt {
			case "dial_timeout":
				s.DialTimeout = caddy.Duration(dur)
			case "read_timeout":
				s.ReadTimeout = caddy.Duration(dur)
			default:
				s.WriteTimeout = caddy.Duration(dur)
			}
		case "tls_insecure_skip_verify":
			s.TLSInsecureSkipVerify, err = opts.Flag(false)
		case "on_error":
			s.OnError, err = opts.OneOf("open", "closed")
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

// parseSize reads a byte count, plain or with a unit (KB, KiB, MB, MiB...).
func parseSize(v string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return n, nil
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n > 1<<40 {
		return 0, err
	}
	return int(n), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*RedisStore)(nil)
