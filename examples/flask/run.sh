#!/bin/sh
# Starts the Flask example app under gunicorn, in the foreground, on
# 127.0.0.1:$APP_PORT (stopped with SIGTERM). Debian's gunicorn and
# python3 (see deps.sh); the helper is imported from helpers/python.
set -eu
cd "$(dirname "$0")"
: "${APP_PORT:?APP_PORT is needed}" "${SESSION_SECRET:?SESSION_SECRET is needed}"
export PYTHONPATH="$(cd ../../helpers/python && pwd)"
exec /usr/bin/gunicorn --bind "127.0.0.1:$APP_PORT" --workers 2 --threads 4 app:app
