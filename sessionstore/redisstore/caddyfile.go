package redisstore

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store redis {
//		address <url>...               # one or more; rediss:// for TLS, unix:// for a socket
//		username <name>
//		password <password>            # e.g. {env.REDIS_PASSWORD}
//		master_name <name>             # Sentinel: address lists the Sentinels
//		pool_size <n>
//		dial_timeout <duration>
//		read_timeout <duration>
//		write_timeout <duration>
//		tls_ca <file>
//		tls_insecure_skip_verify
//		on_error open|closed
//	}
//
// `store redis` alone connects to redis://127.0.0.1:6379/0.
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.Errf("store redis: unexpected argument %q; options go in a block", d.Val())
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("store redis: option %s given twice", opt)
		}
		seen[opt] = true
		value := func() (string, error) {
			if !d.NextArg() {
				return "", d.Errf("store redis: %s needs a value", opt)
			}
			return d.Val(), nil
		}
		var err error
		switch opt {
		case "address":
			s.Address = d.RemainingArgs()
			if len(s.Address) == 0 {
				return d.Errf("store redis: address needs at least one URL")
			}
			for _, a := range s.Address {
				if strings.Contains(a, "{") {
					continue // a placeholder: checked once replaced, at provision
				}
				if _, perr := parseAddress(a); perr != nil {
					return d.Errf("store redis: address %q: %v", redact(a), perr)
				}
			}
		case "username":
			s.Username, err = value()
		case "password":
			s.Password, err = value()
		case "master_name":
			s.MasterName, err = value()
		case "tls_ca":
			s.TLSCA, err = value()
		case "pool_size":
			var v string
			if v, err = value(); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 {
					return d.Errf("store redis: pool_size must be a positive integer, got %q", v)
				}
				s.PoolSize = n
			}
		case "dial_timeout", "read_timeout", "write_timeout":
			var v string
			if v, err = value(); err == nil {
				dur, perr := caddy.ParseDuration(v)
				if perr != nil || dur <= 0 {
					return d.Errf("store redis: %s must be a positive duration such as 500ms, got %q", opt, v)
				}
				switch opt {
				case "dial_timeout":
					s.DialTimeout = caddy.Duration(dur)
				case "read_timeout":
					s.ReadTimeout = caddy.Duration(dur)
				default:
					s.WriteTimeout = caddy.Duration(dur)
				}
			}
		case "tls_insecure_skip_verify":
			s.TLSInsecureSkipVerify = true
		case "on_error":
			var v string
			if v, err = value(); err == nil {
				if v != "open" && v != "closed" {
					return d.Errf("store redis: on_error must be open or closed, got %q", v)
				}
				s.OnError = v
			}
		default:
			return d.Errf("store redis: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
		if d.NextArg() {
			return d.Errf("store redis: %s: unexpected extra argument %q", opt, d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*RedisStore)(nil)
