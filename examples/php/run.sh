#!/usr/bin/env bash
# Runs php-fpm in the foreground, listening for FastCGI on
# 127.0.0.1:$APP_PORT, with its own configuration, pid file and logs in a
# temporary directory (not /run, not the system's pools). The app verifies
# X-Session-Signature with $SESSION_SECRET. Stop it with SIGTERM.
set -euo pipefail
: "${APP_PORT:?APP_PORT must be set}"
: "${SESSION_SECRET:?SESSION_SECRET must be set}"

fpm=$(command -v php-fpm || ls /usr/sbin/php-fpm* 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$fpm" ]; then
	echo "examples/php: php-fpm not found (run examples/php/deps.sh)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# As root, the master may run as root but the workers must not: they run
# as nobody, who can read the repository (files are world-readable).
user=""
if [ "$(id -u)" -eq 0 ]; then
	user=$'user = nobody\ngroup = nogroup'
fi

cat >"$tmp/php-fpm.conf" <<CONF
[global]
pid = $tmp/php-fpm.pid
error_log = $tmp/php-fpm.log
daemonize = no

[app]
$user
listen = 127.0.0.1:$APP_PORT
; loopback only, whatever the address above says
listen.allowed_clients = 127.0.0.1
; enough workers for the checks' 20 concurrent requests to queue briefly
pm = static
pm.max_children = 8
; the app reads SESSION_SECRET from the environment
clear_env = no
catch_workers_output = yes
decorate_workers_output = no
php_admin_flag[display_errors] = off
php_admin_value[error_log] = $tmp/php-errors.log
php_admin_flag[log_errors] = on
CONF

"$fpm" -F -y "$tmp/php-fpm.conf" &
pid=$!
# Pass SIGTERM on, then show the logs (to stderr) before the folder goes.
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
status=0
wait "$pid" || status=$?
wait "$pid" 2>/dev/null || true
cat "$tmp"/*.log >&2 2>/dev/null || true
exit "$status"
