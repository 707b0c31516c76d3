package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("session", parseCaddyfile)
	// Before header: handle, route, respond, reverse_proxy and the rest
	// then run inside the session and see its placeholders.
	httpcaddyfile.RegisterDirectiveOrder("session", httpcaddyfile.Before, "header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. The options
// go on the directive's line, or in its block, or both:
//
//	session [<matcher>] [<option>...] {
//		cookie_name    <name>
//		domain         <domain>
//		path           <path>
//		expiry         <seconds>|<duration>
//		httponly       [true|false]
//		sessioncookie  [true|false]
//		samesite       strict|lax|none
//		secure         [always|never|auto]
//		prefix         <prefix>
//		session_name   <name>
//		forward_cookie [true|false]
//		secret         <secret>...
//		max_lifetime   <seconds>|<duration>
//		max_size       <bytes>|<size>
//		store          <backend> {
//			<backend options>
//		}
//	}
//
// so that `session cookie_name myapp expiry 3600 sessioncookie` is the same
// as that block with those three lines. A flag given alone means true, and
// `secure` alone means always. An option given twice is an error. On the
// directive's line, `store` takes the backend name alone.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	seen := map[string]bool{}
	for d.NextArg() {
		if err := h.unmarshalOption(d, seen, true); err != nil {
			return err
		}
	}
	for d.NextBlock(0) {
		opt := d.Val()
		if err := h.unmarshalOption(d, seen, false); err != nil {
			return err
		}
		if d.NextArg() {
			return d.Errf("%s: unexpected argument %q", opt, d.Val())
		}
	}
	if err := h.checkConfig(); err != nil {
		d.Reset()
		d.Next()
		return d.WrapErr(err)
	}
	return nil
}

// unmarshalOption parses the option at the dispenser's cursor and its
// arguments.
func (h *Handler) unmarshalOption(d *caddyfile.Dispenser, seen map[string]bool, onDirectiveLine bool) error {
	opt := d.Val()
	if seen[opt] {
		return d.Errf("option %s given twice", opt)
	}
	seen[opt] = true

	value := func() (string, error) {
		if !d.NextArg() {
			return "", d.Errf("%s needs a value", opt)
		}
		return d.Val(), nil
	}
	// flag reads an optional true/false after a flag option. On the
	// directive's line the next token may be the next option instead.
	flag := func() (bool, error) {
		if !d.NextArg() {
			return true, nil
		}
		switch strings.ToLower(d.Val()) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		if onDirectiveLine {
			d.Prev()
			return true, nil
		}
		return false, d.Errf("%s: expected true or false, got %q", opt, d.Val())
	}

	var err error
	var v string
	switch opt {
	case "cookie_name":
		h.CookieName, err = value()
	case "domain":
		h.Domain, err = value()
	case "path":
		h.Path, err = value()
	case "prefix":
		if v, err = value(); err == nil {
			h.Prefix = &v
		}
	case "session_name":
		h.SessionName, err = value()
	case "samesite":
		if h.SameSite, err = value(); err == nil {
			switch strings.ToLower(h.SameSite) {
			case "strict", "lax", "none":
			default:
				return d.Errf("samesite: must be strict, lax or none, got %q", h.SameSite)
			}
		}
	case "expiry":
		if v, err = value(); err != nil {
			return err
		}
		expiry, perr := parseExpiry(v)
		if perr != nil {
			return d.WrapErr(perr)
		}
		dur := caddy.Duration(expiry)
		h.Expiry = &dur
	case "httponly":
		var on bool
		if on, err = flag(); err == nil {
			h.HTTPOnly = &on
		}
	case "sessioncookie":
		h.SessionCookie, err = flag()
	case "forward_cookie":
		h.ForwardCookie, err = flag()
	case "secure":
		h.Secure = string(secureAlways)
		if d.NextArg() {
			switch m := secureMode(strings.ToLower(d.Val())); m {
			case secureAlways, secureNever, secureAuto:
				h.Secure = string(m)
			default:
				if !onDirectiveLine {
					return d.Errf("secure: must be always, never or auto, got %q", d.Val())
				}
				d.Prev()
			}
		}
	case "secret":
		h.Secrets = nil
		for d.NextArg() {
			h.Secrets = append(h.Secrets, d.Val())
		}
		if len(h.Secrets) == 0 {
			return d.Errf("secret needs a value, e.g. {env.SESSION_SECRET}")
		}
		if onDirectiveLine {
			// The rest of the line was taken as secrets: no option may
			// follow on the directive's line.
			return nil
		}
	case "max_lifetime":
		if v, err = value(); err != nil {
			return err
		}
		lifetime, perr := parseExpiry(v)
		if perr != nil {
			return d.Errf("%s", strings.Replace(perr.Error(), "expiry", "max_lifetime", 1))
		}
		h.MaxLifetime = caddy.Duration(lifetime)
	case "max_size":
		if v, err = value(); err != nil {
			return err
		}
		size, perr := humanize.ParseBytes(v)
		if perr != nil || size == 0 || size > 1<<30 {
			return d.Errf("max_size: want a size such as 8KiB or 1MB, or a number of bytes, from 1 to 1GiB; got %q", v)
		}
		h.MaxSize = int(size)
	case "store":
		return h.unmarshalStore(d, onDirectiveLine)
	default:
		return d.Errf("unknown option %q", opt)
	}
	return err
}

// unmarshalStore parses `store <backend> [{ ... }]` into the guest module.
func (h *Handler) unmarshalStore(d *caddyfile.Dispenser, onDirectiveLine bool) error {
	if !d.NextArg() {
		return d.Errf("store needs a backend, e.g. store memory")
	}
	backend := d.Val()
	modID := "http.session.stores." + backend
	// UnmarshalModule hands the module the tokens from the cursor to the
	// end of the line, with the block that ends it.
	src := d
	if onDirectiveLine {
		// On the directive's line, the rest of the line is more options
		// and the block is the directive's own: the backend gets only
		// its name.
		src = caddyfile.NewDispenser([]caddyfile.Token{{File: d.File(), Line: d.Line(), Text: backend}})
		src.Next()
	}
	unm, err := caddyfile.UnmarshalModule(src, modID)
	if err != nil {
		return err
	}
	h.StoreRaw = caddyconfig.JSONModuleObject(unm, "backend", backend, nil)
	return nil
}

// parseExpiry reads a Caddyfile expiry: a bare integer is seconds, as in
// sanic_session; anything else is a Caddy duration such as 1h or 30d.
func parseExpiry(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("expiry: must not be negative, got %q", s)
		}
		if n > int64(1<<63-1)/int64(time.Second) {
			return 0, fmt.Errorf("expiry: %q seconds is too long", s)
		}
		d = time.Duration(n) * time.Second
	} else {
		d, err = caddy.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("expiry: %q is neither seconds nor a duration such as 1h or 30d", s)
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("expiry: must not be negative, got %q", s)
	case d > 0 && d < time.Second:
		return 0, fmt.Errorf("expiry: %q is under one second; the smallest expiry is 1 (second)", s)
	}
	return d, checkExpiry(d)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
