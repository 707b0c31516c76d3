#!/usr/bin/env bash
# Runs the Express example in the foreground on 127.0.0.1:$APP_PORT. It
# verifies X-Session-Signature with $SESSION_SECRET. Stop it with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")"
: "${APP_PORT:?APP_PORT must be set}"
: "${SESSION_SECRET:?SESSION_SECRET must be set}"
exec node app.js
