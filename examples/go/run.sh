#!/bin/sh
# Starts the Go example app in the foreground on 127.0.0.1:$APP_PORT
# (stopped with SIGTERM). It is built first, into $TMPDIR, and exec'd, so
# the signal reaches it.
set -eu
cd "$(dirname "$0")"
: "${APP_PORT:?APP_PORT is needed}" "${SESSION_SECRET:?SESSION_SECRET is needed}"
bin="${TMPDIR:-/tmp}/caddy-session-example-go-$APP_PORT"
go build -o "$bin" .
exec "$bin"
