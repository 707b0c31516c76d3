package caddymodule

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddy-session/caddy-session/internal/caddyopt"
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
//		regenerate_grace <duration>
//		scope          <name>
//		devices        <path>
//		record         user_agent|ip|full_ip...
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
	opts := caddyopt.NewReader(d, "", handlerOptions...)
	for d.NextArg() {
		if err := h.unmarshalOption(opts, d, true); err != nil {
			return err
		}
	}
	for d.NextBlock(0) {
		if err := h.unmarshalOption(opts, d, false); err != nil {
			return err
		}
		if err := opts.End(); err != nil {
			return err
		}
	}
	if err := h.checkConfig(); err != nil {
		d.Reset()
		d.Next()
		return d.WrapErr(err)
	}
	return nil
}

// handlerOptions are the options of the session directive.
var handlerOptions = []string{
	"cookie_name", "domain", "path", "expiry", "httponly", "sessioncookie",
	"samesite", "secure", "prefix", "session_name", "forward_cookie",
	"secret", "max_lifetime", "max_size", "regenerate_grace", "scope", "devices", "record", "store",
}

// unmarshalOption parses the option at the dispenser's cursor and its
// arguments. On the directive's line (lineForm) a flag's optional value
// may be followed by the next option instead.
func (h *Handler) unmarshalOption(opts *caddyopt.Reader, d *caddyfile.Dispenser, lineForm bool) error {
	opt, err := opts.Start()
	if err != nil {
		return err
	}
	var v string
	switch opt {
	case "cookie_name":
		h.CookieName, err = opts.Value()
	case "domain":
		h.Domain, err = opts.Value()
	case "path":
		h.Path, err = opts.Value()
	case "prefix":
		if v, err = opts.Value(); err == nil {
			h.Prefix = &v
		}
	case "session_name":
		h.SessionName, err = opts.Value()
	case "samesite":
		// Kept as written: the JSON config keeps what the user wrote.
		if h.SameSite, err = opts.Value(); err == nil {
			if err = checkSameSite(h.SameSite); err != nil {
				return opts.Wrap(err)
			}
		}
	case "expiry", "max_lifetime":
		if v, err = opts.Value(); err != nil {
			return err
		}
		dur, perr := parseExpiry(opt, v)
		if perr != nil {
			return opts.Wrap(perr)
		}
		if opt == "expiry" {
			cd := caddy.Duration(dur)
			h.Expiry = &cd
		} else {
			h.MaxLifetime = caddy.Duration(dur)
		}
	case "httponly":
		var on bool
		if on, err = opts.Flag(lineForm); err == nil {
			h.HTTPOnly = &on
		}
	case "sessioncookie":
		h.SessionCookie, err = opts.Flag(lineForm)
	case "forward_cookie":
		h.ForwardCookie, err = opts.Flag(lineForm)
	case "secure":
		h.Secure, err = opts.OptionalOneOf(lineForm, string(secureAlways), string(secureAlways), string(secureNever), string(secureAuto))
	case "secret":
		// On the directive's line the rest of the line is secrets: no
		// option may follow them there.
		h.Secrets, err = opts.Values()
	case "regenerate_grace":
		if v, err = opts.Value(); err != nil {
			return err
		}
		dur, perr := caddy.ParseDuration(v)
		if perr != nil {
			return opts.Errf("want a duration such as 30s, or 0 for none; got %q", v)
		}
		if perr = checkGrace(dur); perr != nil {
			return opts.Wrap(perr)
		}
		cd := caddy.Duration(dur)
		h.RegenerateGrace = &cd
	case "scope":
		h.Scope, err = opts.Value()
	case "devices":
		if h.Devices, err = opts.Value(); err == nil {
			if err = checkDevices(h.Devices); err != nil {
				return opts.Wrap(err)
			}
		}
	case "record":
		// Like secret, the rest of the line on the directive's line.
		if h.Record, err = opts.Values(); err == nil {
			if err = checkRecord(h.Record); err != nil {
				return opts.Wrap(err)
			}
		}
	case "max_size":
		if v, err = opts.Value(); err != nil {
			return err
		}
		size, perr := humanize.ParseBytes(v)
		if perr != nil || size == 0 || size > 1<<30 {
			return opts.Errf("want a size such as 8KiB or 1MB, or a number of bytes, from 1 to 1GiB; got %q", v)
		}
		h.MaxSize = int(size)
	case "store":
		return h.unmarshalStore(d, lineForm)
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

// parseExpiry reads a Caddyfile lifetime (expiry, max_lifetime): a bare
// integer is seconds, as in sanic_session; anything else is a Caddy
// duration such as 1h or 30d. Errors begin with opt.
func parseExpiry(opt, s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%s: must not be negative, got %q", opt, s)
		}
		if n > int64(1<<63-1)/int64(time.Second) {
			return 0, fmt.Errorf("%s: %q seconds is too long", opt, s)
		}
		d = time.Duration(n) * time.Second
	} else {
		d, err = caddy.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is neither seconds nor a duration such as 1h or 30d", opt, s)
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("%s: must not be negative, got %q", opt, s)
	case d > 0 && d < time.Second:
		return 0, fmt.Errorf("%s: %q is under one second; the smallest %s is 1 (second)", opt, s, opt)
	}
	return d, checkExpiry(opt, d)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
