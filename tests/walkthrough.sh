#!/usr/bin/env bash
# Runs the README's walk-throughs as a new user would: builds ./caddy with
# xcaddy.sh, checks the example Caddyfiles with `caddy fmt` and `caddy
# validate`, runs Caddyfile.example and plays the Quick start's curl steps,
# then runs two instances of Caddyfile.redis.example on one redis-server and
# plays the Redis section's steps, checking what each prints.
#
# Every port is one it chose itself, free and on 127.0.0.1, handed to the
# Caddyfiles through their PORT, APP_PORT and ADMIN_PORT (the README's
# commands use their defaults, 8080, 9000 and 2080, or 8081/8082, ...):
# two runs at once, or a run next to the demo or a system Caddy, do not
# collide. The binary is built in a directory of its own, not ./caddy,
# which the demo may be running.
#
# Environment: CADDY_BIN, a ./caddy already built from this checkout to
# use instead of building one (test.sh builds it while the Go tests run).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "walkthrough: FAIL: $*" >&2; exit 1; }
expect() { # expect <what> <pattern> <text>
	grep -qE -- "$2" <<<"$3" || fail "$1: no match for /$2/ in:
$3"
}
refuse() { # refuse <what> <pattern> <text>
	if grep -qiE -- "$2" <<<"$3"; then fail "$1: unexpected /$2/ in:
$3"; fi
}

top=$(pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${CADDY_BIN:-}" ]; then
	CADDY_BIN="$work/caddy" ./xcaddy.sh build
	caddy="$work/caddy"
else
	caddy=$(realpath "$CADDY_BIN")
fi
modules=$("$caddy" list-modules)
for m in http.handlers.session http.session.stores.memory http.session.stores.redis admin.api.session; do
	grep -qx "$m" <<<"$modules" || fail "module $m missing from $caddy"
done

for f in Caddyfile.example Caddyfile.redis.example; do
	"$caddy" fmt "$f" | diff -u "$f" - || fail "caddy fmt would change $f"
	"$caddy" validate --config "$f" --adapter caddyfile || fail "caddy validate $f"
done

# free_port VAR: sets VAR to a port nobody listens on on 127.0.0.1, drawn
# below the kernel's ephemeral range (which outgoing connections use) and
# distinct from the others this script chose.
chosen=" "
free_port() {
	local p
	for _ in $(seq 1 500); do
		p=$((10000 + RANDOM % 22000))
		[[ $chosen == *" $p "* ]] && continue
		# A connection refused means no listener: the port is free.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			chosen+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	fail "no free port"
}

# start <log> <url> <command...>: runs a Caddy in the background and waits
# until it has bound all its ports (it logs "serving initial configuration";
# a port taken since it was chosen makes it exit instead) and url answers.
start() {
	local log=$1 url=$2
	shift 2
	"$@" >"$log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 200); do
		if grep -q 'serving initial configuration' "$log" && curl -s -o /dev/null "$url"; then
			return 0
		fi
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log"; fail "$* exited"; }
		sleep 0.05
	done
	cat "$log"
	fail "$* does not answer at $url"
}

free_port port
free_port app_port
free_port admin_port
start "$work/caddy.log" "localhost:$port/" env PORT="$port" APP_PORT="$app_port" ADMIN_PORT="$admin_port" \
	"$caddy" run --config Caddyfile.example --adapter caddyfile
cd "$work"

# The commands below are the README's, in its order.
out=$(curl -si localhost:$port/)
expect "a first visit" '^X-Session-New: true' "$out"
expect "a first visit" '^X-Session-Data: \{\}' "$out"
expect "a first visit" '^X-Session-Id: [0-9a-f]{32}' "$out"
refuse "a first visit" '^Set-Cookie' "$out"

out=$(curl -si -c cookies.txt -b cookies.txt "localhost:$port/login?user=alice")
expect "login" '^Set-Cookie: myapp=[0-9a-f]{32}; Path=/; HttpOnly' "$out"
refuse "login" 'Max-Age|Expires|^X-Session-' "$out"
expect "login" '^logged in as alice' "$out"

out=$(curl -s -b cookies.txt localhost:$port/)
expect "a visit" '^X-Session-New: false' "$out"
expect "a visit" '^X-Session-Data: \{"user":"alice"\}' "$out"
expect "a visit" '^Cookie: $' "$out"
id=$(sed -n 's/^X-Session-Id: //p' <<<"$out")
grep -q "myapp	$id" cookies.txt || fail "the upstream's X-Session-Id is not the cookie's ID"

out=$(curl -s -b cookies.txt localhost:$port/whoami)
expect "whoami" '^you are alice' "$out"

out=$(curl -si -c cookies.txt -b cookies.txt localhost:$port/logout)
expect "logout" '^Set-Cookie: myapp=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly' "$out"
expect "logout" '^logged out' "$out"

out=$(curl -s -b cookies.txt localhost:$port/)
expect "after logout" '^X-Session-New: true' "$out"
expect "after logout" '^X-Session-Data: \{\}' "$out"

out=$(curl -s -b "myapp=$id" localhost:$port/)
expect "the old ID after logout" '^X-Session-New: true' "$out"
refuse "the old ID after logout" "^X-Session-Id: $id" "$out"

out=$(curl -si "localhost:$port/login?user=%22x%22")
expect "a bad user name" '^HTTP/1.1 400' "$out"

# The admin API is on ADMIN_PORT (2080 by default, not 2019): the
# Operations section's metrics and session list.
out=$(curl -s "localhost:$admin_port/metrics" | grep caddy_session_)
expect "metrics" '^caddy_session_created_total\{session_name="session"\} [1-9]' "$out"
out=$(curl -s "localhost:$admin_port/session/")
expect "admin API" '"session_name":"session","cookie_name":"myapp"' "$out"

echo "walkthrough: Quick start ok"

# The Redis section: two instances on one Redis. A free port for Redis, so
# a Redis already running here is left alone.
# The redis-server answering must be this one: another run's could have
# taken the port since it was chosen.
for _ in 1 2 3; do
	free_port redis_port
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --dir "$work" >"$work/redis.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	for _ in $(seq 1 100); do
		redis-cli -p "$redis_port" info server 2>/dev/null | grep -q "^process_id:$redis_pid" && break
		kill -0 "$redis_pid" 2>/dev/null || break
		sleep 0.05
	done
	redis-cli -p "$redis_port" info server 2>/dev/null | grep -q "^process_id:$redis_pid" && break
	kill "$redis_pid" 2>/dev/null || true
	redis_pid=
done
[ -n "$redis_pid" ] || { cat "$work/redis.log"; fail "redis-server does not answer"; }
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
cd "$top"
# The README's commands, with ports of this run's own for 8081, 9001, 2020
# and 8082, 9002, 2021.
free_port port_a
free_port app_a
free_port admin_a
free_port port_b
free_port app_b
free_port admin_b
start "$work/a.log" "localhost:$port_a/" env PORT="$port_a" APP_PORT="$app_a" ADMIN_PORT="$admin_a" "$caddy" run --config Caddyfile.redis.example
start "$work/b.log" "localhost:$port_b/" env PORT="$port_b" APP_PORT="$app_b" ADMIN_PORT="$admin_b" "$caddy" run --config Caddyfile.redis.example
cd "$work"
rm -f cookies.txt

out=$(curl -s -c cookies.txt -b cookies.txt "localhost:$port_a/login?user=alice")
expect "login on 8081" "^logged in as alice on :$port_a" "$out"
out=$(curl -s -b cookies.txt localhost:$port_b/)
expect "visit on 8082" "^served by :$port_b" "$out"
expect "visit on 8082" '^X-Session-New: false' "$out"
expect "visit on 8082" '^X-Session-Data: \{"user":"alice"\}' "$out"
id=$(sed -n 's/^X-Session-Id: //p' <<<"$out")
out=$(redis-cli -p "$redis_port" --raw get "session:$id")
expect "the key in Redis" '^\{"user":"alice"\}$' "$out"
out=$(redis-cli -p "$redis_port" ttl "session:$id")
expect "its TTL" '^259[0-9]{4}$' "$out"
out=$(curl -s -c cookies.txt -b cookies.txt localhost:$port_b/logout)
expect "logout on 8082" "^logged out on :$port_b" "$out"
out=$(curl -s -b cookies.txt localhost:$port_a/)
expect "after logout, on 8081" '^X-Session-New: true' "$out"

echo "walkthrough: Redis ok"
