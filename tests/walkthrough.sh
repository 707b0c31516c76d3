#!/usr/bin/env bash
# Runs the README's walk-throughs as a new user would: builds ./caddy with
# xcaddy.sh, checks the example Caddyfiles with `caddy fmt` and `caddy
# validate`, runs Caddyfile.example and plays the Quick start's curl steps,
# then runs two instances of Caddyfile.redis.example on one redis-server and
# plays the Redis section's steps, checking what each prints.
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

./xcaddy.sh build
./caddy list-modules | grep -qx 'http.handlers.session' || fail "module http.handlers.session missing from ./caddy"
./caddy list-modules | grep -qx 'http.session.stores.memory' || fail "module http.session.stores.memory missing from ./caddy"
./caddy list-modules | grep -qx 'http.session.stores.redis' || fail "module http.session.stores.redis missing from ./caddy"

for f in Caddyfile.example Caddyfile.redis.example; do
	./caddy fmt "$f" | diff -u "$f" - || fail "caddy fmt would change $f"
	./caddy validate --config "$f" --adapter caddyfile || fail "caddy validate $f"
done

top=$(pwd)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# start <log> <url> <command...>: runs a server in the background and waits
# until url answers.
start() {
	local log=$1 url=$2
	shift 2
	"$@" >"$log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do
		curl -s -o /dev/null "$url" && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log"; fail "$* exited"; }
		sleep 0.1
	done
	cat "$log"
	fail "$* does not answer at $url"
}

start "$work/caddy.log" localhost:8080/ ./caddy run --config Caddyfile.example --adapter caddyfile
cd "$work"

# The commands below are the README's, in its order.
out=$(curl -si localhost:8080/)
expect "a first visit" '^X-Session-New: true' "$out"
expect "a first visit" '^X-Session-Data: \{\}' "$out"
expect "a first visit" '^X-Session-Id: [0-9a-f]{32}' "$out"
refuse "a first visit" '^Set-Cookie' "$out"

out=$(curl -si -c cookies.txt -b cookies.txt 'localhost:8080/login?user=alice')
expect "login" '^Set-Cookie: myapp=[0-9a-f]{32}; Path=/; HttpOnly' "$out"
refuse "login" 'Max-Age|Expires|^X-Session-' "$out"
expect "login" '^logged in as alice' "$out"

out=$(curl -s -b cookies.txt localhost:8080/)
expect "a visit" '^X-Session-New: false' "$out"
expect "a visit" '^X-Session-Data: \{"user":"alice"\}' "$out"
expect "a visit" '^Cookie: $' "$out"
id=$(sed -n 's/^X-Session-Id: //p' <<<"$out")
grep -q "myapp	$id" cookies.txt || fail "the upstream's X-Session-Id is not the cookie's ID"

out=$(curl -s -b cookies.txt localhost:8080/whoami)
expect "whoami" '^you are alice' "$out"

out=$(curl -si -c cookies.txt -b cookies.txt localhost:8080/logout)
expect "logout" '^Set-Cookie: myapp=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly' "$out"
expect "logout" '^logged out' "$out"

out=$(curl -s -b cookies.txt localhost:8080/)
expect "after logout" '^X-Session-New: true' "$out"
expect "after logout" '^X-Session-Data: \{\}' "$out"

out=$(curl -s -b "myapp=$id" localhost:8080/)
expect "the old ID after logout" '^X-Session-New: true' "$out"
refuse "the old ID after logout" "^X-Session-Id: $id" "$out"

out=$(curl -si 'localhost:8080/login?user=%22x%22')
expect "a bad user name" '^HTTP/1.1 400' "$out"

echo "walkthrough: Quick start ok"

# The Redis section: two instances on one Redis. A free port for Redis, so
# a Redis already running here is left alone.
redis_port=$((20000 + RANDOM % 20000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$redis_port" ping >/dev/null || { cat "$work/redis.log"; fail "redis-server does not answer"; }
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
cd "$top"
# The commands below are the README's.
start "$work/a.log" localhost:8081/ env PORT=8081 APP_PORT=9001 ADMIN_PORT=2020 ./caddy run --config Caddyfile.redis.example
start "$work/b.log" localhost:8082/ env PORT=8082 APP_PORT=9002 ADMIN_PORT=2021 ./caddy run --config Caddyfile.redis.example
cd "$work"
rm -f cookies.txt

out=$(curl -s -c cookies.txt -b cookies.txt 'localhost:8081/login?user=alice')
expect "login on 8081" '^logged in as alice on :8081' "$out"
out=$(curl -s -b cookies.txt localhost:8082/)
expect "visit on 8082" '^served by :8082' "$out"
expect "visit on 8082" '^X-Session-New: false' "$out"
expect "visit on 8082" '^X-Session-Data: \{"user":"alice"\}' "$out"
id=$(sed -n 's/^X-Session-Id: //p' <<<"$out")
out=$(redis-cli -p "$redis_port" --raw get "session:$id")
expect "the key in Redis" '^\{"user":"alice"\}$' "$out"
out=$(redis-cli -p "$redis_port" ttl "session:$id")
expect "its TTL" '^259[0-9]{4}$' "$out"
out=$(curl -s -c cookies.txt -b cookies.txt localhost:8082/logout)
expect "logout on 8082" '^logged out on :8082' "$out"
out=$(curl -s -b cookies.txt localhost:8081/)
expect "after logout, on 8081" '^X-Session-New: true' "$out"

echo "walkthrough: Redis ok"
