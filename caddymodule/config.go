package caddymodule

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddy-session/caddy-session/sessionstore"
)

// secureMode says when the cookie gets the Secure attribute.
type secureMode string

const (
	secureAuto   secureMode = "auto"
	secureAlways secureMode = "always"
	secureNever  secureMode = "never"
)

// sessionNamePattern keeps session names usable in header names and
// placeholders: letters and digits, in words joined by '_' or '-'.
var sessionNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*([_-][A-Za-z0-9]+)*$`)

// checkConfig judges the options as given, with unset ones at their
// defaults; it changes nothing. The Caddyfile parser and Validate both use
// it, so `caddy adapt` already reports what `caddy run` would.
func (h *Handler) checkConfig() error {
	name := h.CookieName
	if name == "" {
		name = DefaultCookieName
	}
	path := h.Path
	if path == "" {
		path = DefaultPath
	}
	probe := http.Cookie{Name: name, Value: "x", Path: path, Domain: h.Domain}
	if err := probe.Valid(); err != nil {
		return fmt.Errorf("cookie_name %q, path %q, domain %q: %w", name, path, h.Domain, err)
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("path: must start with /, got %q", path)
	}

	if h.Expiry != nil {
		if err := checkExpiry("expiry", time.Duration(*h.Expiry)); err != nil {
			return err
		}
	}

	secure := secureMode(strings.ToLower(h.Secure))
	switch secure {
	case "", secureAuto, secureAlways, secureNever:
	default:
		return fmt.Errorf("secure: must be always, never or auto, got %q", h.Secure)
	}
	if cookieNameNeedsSecure(name) && secure == secureNever {
		return fmt.Errorf("secure never: cookie_name %q requires the Secure attribute", name)
	}
	if hasPrefixFold(name, "__Host-") {
		if h.Domain != "" {
			return fmt.Errorf("domain: a __Host- cookie (cookie_name %q) must not have a domain", name)
		}
		if path != "/" {
			return fmt.Errorf("path: a __Host- cookie (cookie_name %q) must have path /, got %q", name, path)
		}
	}

	if err := checkSameSite(h.SameSite); err != nil {
		return err
	}
	if strings.EqualFold(h.SameSite, "none") && secure != secureAlways && !cookieNameNeedsSecure(name) {
		return fmt.Errorf("samesite none requires secure always: browsers drop SameSite=None cookies without Secure")
	}

	if h.SessionName != "" && !sessionNamePattern.MatchString(h.SessionName) {
		return fmt.Errorf("session_name: %q must be letters and digits, in words joined by _ or -", h.SessionName)
	}
	if err := checkMaxLifetime(time.Duration(h.MaxLifetime)); err != nil {
		return err
	}
	if h.RegenerateGrace != nil {
		if err := checkGrace(time.Duration(*h.RegenerateGrace)); err != nil {
			return err
		}
	}
	if len(h.Scope) > sessionstore.MaxScopeLength || strings.ContainsAny(h.Scope, "\x00\r\n") {
		return fmt.Errorf("scope: must be at most %d bytes, without NUL, CR or LF", sessionstore.MaxScopeLength)
	}
	if h.MaxSize < 0 {
		return fmt.Errorf("max_size: must not be negative, got %d", h.MaxSize)
	}
	for i, sec := range h.Secrets {
		// A placeholder is judged once replaced, at provision.
		if !strings.Contains(sec, "{") && len(sec) < minSecretLength {
			return fmt.Errorf("secret %d: must be at least %d bytes; make one with: openssl rand -base64 48", i+1, minSecretLength)
		}
	}
	if err := checkDevices(h.Devices); err != nil {
		return err
	}
	if err := checkRecord(h.Record); err != nil {
		return err
	}
	if h.Prefix != nil && strings.ContainsAny(*h.Prefix, "\x00\r\n") {
		return fmt.Errorf("prefix: must not contain NUL, CR or LF")
	}
	return nil
}

// checkExpiry rejects lifetimes (expiry, max_lifetime: opt) that cannot be
// a cookie's Max-Age. JSON gives durations in nanoseconds when they are
// numbers, so a small positive value is nearly always seconds meant as such.
func checkExpiry(opt string, d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s: must not be negative, got %s", opt, d)
	case d > 0 && d < time.Millisecond:
		// Surely a number of seconds, read as nanoseconds.
		return fmt.Errorf("%s: %s is under one second; in JSON a number is nanoseconds: write seconds as a duration string, e.g. \"%ds\"", opt, d, int64(d))
	case d > 0 && d < time.Second:
		return fmt.Errorf("%s: %s is under one second; the smallest %s is 1s", opt, d, opt)
	case d%time.Second != 0:
		return fmt.Errorf("%s: must be a whole number of seconds, got %s", opt, d)
	}
	return nil
}

// checkMaxLifetime judges max_lifetime: like expiry, but any positive
// value of a second or more (the JSON config has always taken fractions).
func checkMaxLifetime(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("max_lifetime: must not be negative, got %s", d)
	case d > 0 && d < time.Second:
		return fmt.Errorf("max_lifetime: %s is under one second", d)
	}
	return nil
}

// checkGrace judges regenerate_grace: from 0 (off) to an hour; the old ID
// is only for requests already in flight.
func checkGrace(d time.Duration) error {
	if d < 0 || d > time.Hour {
		return fmt.Errorf("regenerate_grace: must be from 0 (off) to 1h, got %s", d)
	}
	return nil
}

// checkDevices judges the devices path: one the request path can equal.
func checkDevices(path string) error {
	if path != "" && (!strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.ContainsAny(path, "?#*{}% ")) {
		return fmt.Errorf("devices: must be a path such as /account/devices: starting with /, not ending with /, without ?, #, *, %%, { } or spaces; got %q", path)
	}
	return nil
}

// checkSameSite judges a samesite value, in any case.
func checkSameSite(s string) error {
	switch strings.ToLower(s) {
	case "", "strict", "lax", "none":
		return nil
	}
	return fmt.Errorf("samesite: must be strict, lax or none, got %q", s)
}

// cookieNameNeedsSecure reports whether browsers accept the cookie only
// with Secure. The prefixes are matched in any case, as RFC 6265bis asks.
func cookieNameNeedsSecure(name string) bool {
	return hasPrefixFold(name, "__Secure-") || hasPrefixFold(name, "__Host-")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func (h *Handler) effectivePrefix() string {
	if h.Prefix == nil {
		return DefaultPrefix
	}
	return *h.Prefix
}

func (h *Handler) effectiveExpiry() time.Duration {
	if h.Expiry == nil {
		return DefaultExpiry
	}
	return time.Duration(*h.Expiry)
}

func (h *Handler) effectiveSecure() secureMode {
	if cookieNameNeedsSecure(h.CookieName) {
		return secureAlways
	}
	if h.Secure == "" {
		return secureAuto
	}
	return secureMode(strings.ToLower(h.Secure))
}

func parseSameSite(s string) http.SameSite {
	switch strings.ToLower(s) {
	case "strict":
		return http.SameSiteStrictMode
	case "lax":
		return http.SameSiteLaxMode
	case "none":
		return http.SameSiteNoneMode
	}
	return http.SameSiteDefaultMode
}
