// Package caddysession brings every module of caddy-session into a Caddy
// build:
//
//	xcaddy build --with github.com/caddy-session/caddy-session
//
// The modules live in caddymodule (the `session` handler) and sessionstore
// (the stores).
package caddysession

import (
	// The session handler and its Caddyfile directive.
	_ "github.com/caddy-session/caddy-session/caddymodule"
	// The stores.
	_ "github.com/caddy-session/caddy-session/sessionstore"
)
