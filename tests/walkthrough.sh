#!/usr/bin/env bash
# Runs the README's Quick start as a new user would: builds ./caddy with
# xcaddy.sh, checks Caddyfile.example with `caddy fmt` and `caddy validate`,
# runs it, and plays the curl walk-through, checking what each step prints.
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

./caddy fmt Caddyfile.example | diff -u Caddyfile.example - || fail "caddy fmt would change Caddyfile.example"
./caddy validate --config Caddyfile.example --adapter caddyfile || fail "caddy validate Caddyfile.example"

work=$(mktemp -d)
log="$work/caddy.log"
./caddy run --config Caddyfile.example --adapter caddyfile >"$log" 2>&1 &
caddy_pid=$!
trap 'kill $caddy_pid 2>/dev/null || true; wait $caddy_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
	curl -s -o /dev/null localhost:8080/ && break
	kill -0 $caddy_pid 2>/dev/null || { cat "$log"; fail "caddy exited"; }
	sleep 0.1
done
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

echo "walkthrough: ok"
