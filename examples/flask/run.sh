#!/bin/sh
# Starts the Flask example app under gunicorn, in the foreground, on
# 127.0.0.1:$APP_PORT (stopped with SIGTERM). Debian's gunicorn and
# python3 (see deps.sh); the helper is imported from helpers/python.
set -eu
cd "$(dirname "$0")"
: "${APP_PORT:?APP_PORT is needed}" "${SESSION_SECRET:?SESSION_SECRET is needed}"
# --keep-alive 0: Debian's gunicorn 20.1 with threads can leave a request
# that arrives on a kept-alive connection unanswered (seen here: 20
# concurrent requests through Caddy, one run in ten, each stuck until the
# client gave up, Caddy waiting on the app); behind a proxy on the same
# host, a connection per request costs next to nothing.
export PYTHONPATH="$(cd ../../helpers/python && pwd)"
exec /usr/bin/gunicorn --bind "127.0.0.1:$APP_PORT" --workers 2 --threads 4 --keep-alive 0 app:app
