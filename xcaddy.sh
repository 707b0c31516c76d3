#!/usr/bin/env bash
# Builds Caddy with caddy-session, with nothing installed globally.
#
#   ./xcaddy.sh build          builds ./caddy
#   ./xcaddy.sh run [args...]  builds, then runs Caddyfile.example
#                              (further arguments go to `caddy run`)
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY="go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5"

build() {
	$XCADDY build "$CADDY_VERSION" --output ./caddy --with github.com/caddy-session/caddy-session@v0.0.0=.
}

case "${1:-}" in
build)
	shift
	build "$@"
	;;
run)
	shift
	build
	exec ./caddy run --config Caddyfile.example --adapter caddyfile "$@"
	;;
*)
	echo "usage: $0 build | run [caddy run arguments...]" >&2
	exit 2
	;;
esac
