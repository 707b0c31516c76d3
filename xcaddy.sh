#!/usr/bin/env bash
# Builds Caddy with caddy-session, with nothing installed globally.
#
#   ./xcaddy.sh build          builds ./caddy
#   ./xcaddy.sh run [args...]  builds, then runs Caddyfile.example
#                              (further arguments go to `caddy run`)
#
# Environment: CADDY_BIN, where to build (./caddy), so that the tests build
# a binary of their own and leave a ./caddy that may be running alone;
# PORT, APP_PORT and ADMIN_PORT, the demo's ports (8080, 9000 and 2080; see
# Caddyfile.example).
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY="go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5"

CADDY_BIN=${CADDY_BIN:-./caddy}

build() {
	$XCADDY build "$CADDY_VERSION" --output "$CADDY_BIN" --with github.com/caddy-session/caddy-session@v0.0.0=.
}

case "${1:-}" in
build)
	shift
	build "$@"
	;;
run)
	shift
	build
	exec "$CADDY_BIN" run --config Caddyfile.example --adapter caddyfile "$@"
	;;
*)
	echo "usage: $0 build | run [caddy run arguments...]" >&2
	exit 2
	;;
esac
