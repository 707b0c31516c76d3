// Package caddysession brings every module of caddy-session into a Caddy
// build:
//
//	xcaddy build --with github.com/caddy-session/caddy-session
//
// The modules live in caddymodule (the `session` handler), sessionstore
// (the store interface and the memory store) and sessionstore/redisstore.
package caddysession

import (
	// The session handler and its Caddyfile directive.
	_ "github.com/caddy-session/caddy-session/caddymodule"
	// The stores: memory (in the core package) and Redis.
	_ "github.com/caddy-session/caddy-session/sessionstore"
	_ "github.com/caddy-session/caddy-session/sessionstore/redisstore"
)
