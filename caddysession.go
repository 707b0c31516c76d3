// Package caddysession brings every module of caddy-session into a Caddy
// build:
//
//	xcaddy build --with github.com/caddy-session/caddy-session
//
// The modules live in caddymodule (the `session` handler and the admin
// API), sessionstore/memorystore (the in-process store, the default) and
// sessionstore/redisstore.
package caddysession

import (
	// The session handler, its Caddyfile directive and the admin API.
	_ "github.com/caddy-session/caddy-session/caddymodule"
	// The stores.
	_ "github.com/caddy-session/caddy-session/sessionstore/memorystore"
	_ "github.com/caddy-session/caddy-session/sessionstore/redisstore"
)
