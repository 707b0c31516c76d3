#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs via .ci/run):
#
#   1. prerequisites: Go (at least go.mod's version), a C compiler for
#      -race, curl, redis-server and redis-cli; for the app helpers and the
#      example apps: Python 3 with Flask, Django and gunicorn (Debian's),
#      Node.js and npm, PHP (cli and fpm). What is missing is installed
#      with apt-get when it can be (as root, with apt-get); otherwise it
#      stops and says what is missing and how to install it.
#   2. gofmt and go vet over everything.
#   3. every Go test, once: under the race detector, except the packages
#      without goroutines in their tests, where it finds nothing
#      (sessionstore/mergepatch: pure functions). Meanwhile, in the
#      background, a Caddy is built with ./xcaddy.sh and the README's
#      walk-throughs run against it (tests/walkthrough.sh).
#   4. the tests that need the built Caddy (a real SIGKILL of a memory
#      store with a persist file), the app helpers' own tests
#      (python3 -m unittest, node --test, php), then the example apps
#      (examples/<stack>) behind the built Caddy,
#      over HTTP/1.1 and HTTP/2, with the checks of examples/SPEC.md.
#   5. each fuzz target for FUZZTIME (15s), one after the other, with one
#      instrumented test binary per package rather than one per target;
#      what a fuzzer finds lands in testdata/fuzz and fails the run, to
#      become a regular test.
#
# Environment: FUZZTIME, how long each of the 7 fuzz targets runs (15s;
# any -fuzztime value, e.g. 1m or 1000x); CI, set by CI, makes the Redis
# tests fail rather than skip without redis-server.
#
# Every server a test starts is on 127.0.0.1 and on a port it chose itself,
# so two runs at once, or a run next to the demo (./xcaddy.sh run) or a
# system Caddy, do not collide.
set -euo pipefail
cd "$(dirname "$0")"

FUZZTIME=${FUZZTIME:-15s}
start_time=$SECONDS

say() { printf 'test.sh [%3ds]: %s\n' "$((SECONDS - start_time))" "$*" >&2; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

# --- 1. prerequisites -------------------------------------------------------

go_wanted=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
command -v go >/dev/null ||
	die "go not found: install Go $go_wanted or later from https://go.dev/dl/ and put it on PATH"
go_have=$(go env GOVERSION)
go_have=${go_have#go}
go_have=${go_have%%[!0-9.]*} # go1.27rc1 -> 1.27
if [ "$(printf '%s\n' "$go_wanted" "$go_have" | sort -V | head -n1)" != "$go_wanted" ]; then
	die "go $go_have is older than go.mod's go $go_wanted: install Go $go_wanted or later from https://go.dev/dl/ (or let the go command fetch it: GOTOOLCHAIN=auto)"
fi
[ "$(go env CGO_ENABLED)" = 1 ] ||
	die "the race detector needs cgo, which is off (CGO_ENABLED=$(go env CGO_ENABLED)): unset CGO_ENABLED, and have a C compiler"

# missing: "program package" pairs, the package being Debian's.
missing=()
cc=$(go env CC)
command -v "${cc%% *}" >/dev/null || missing+=("${cc%% *} gcc")
command -v curl >/dev/null || missing+=("curl curl")
command -v redis-server >/dev/null || missing+=("redis-server redis-server")
command -v redis-cli >/dev/null || missing+=("redis-cli redis-tools")
# The helpers and examples: Debian's Python (the examples run
# /usr/bin/python3 and /usr/bin/gunicorn, whatever python3 is on PATH).
[ -x /usr/bin/python3 ] || missing+=("python3 python3")
/usr/bin/python3 -c 'import flask' 2>/dev/null || missing+=("flask python3-flask")
/usr/bin/python3 -c 'import django' 2>/dev/null || missing+=("django python3-django")
[ -x /usr/bin/gunicorn ] || missing+=("gunicorn gunicorn")
command -v node >/dev/null || missing+=("node nodejs")
command -v npm >/dev/null || missing+=("npm npm")
command -v php >/dev/null || missing+=("php php-cli")
compgen -G '/usr/sbin/php-fpm*' >/dev/null || missing+=("php-fpm php-fpm")
if [ ${#missing[@]} -gt 0 ]; then
	programs=() packages=()
	for m in "${missing[@]}"; do
		programs+=("${m%% *}")
		packages+=("${m#* }")
	done
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		say "installing ${packages[*]} (for ${programs[*]}) with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${packages[@]}" >/dev/null
	else
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo="sudo "
		die "${programs[*]} not found: install with \`${sudo}apt-get install -y ${packages[*]}\` (Debian, Ubuntu) or your package manager (the packages holding ${programs[*]}), then run ./test.sh again"
	fi
fi

# --- 2. format and vet ------------------------------------------------------

work=$(mktemp -d)
walk_pid=""
cleanup() {
	if [ -n "$walk_pid" ]; then
		kill "$walk_pid" 2>/dev/null || true
		wait "$walk_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

say "gofmt, go vet"
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"
go vet ./...

# --- 3. the Go tests, and the walk-throughs beside them ---------------------

# The walk-throughs wait on processes and HTTP more than they compute, and
# the Go tests spend most of their time in sleeps (expiries), so the two
# share the 2 cores of a small machine well. The Caddy is built into the
# scratch directory: a ./caddy the demo is running stays untouched.
say "building Caddy and running the walk-throughs, in the background"
(
	CADDY_BIN="$work/caddy" ./xcaddy.sh build
	CADDY_BIN="$work/caddy" ./tests/walkthrough.sh
) >"$work/walkthrough.log" 2>&1 &
walk_pid=$!

# go vet has run: -vet=off spares go test its own partial vet pass.
race_free=(./sessionstore/mergepatch)
mapfile -t race_pkgs < <(go list ./... | grep -v -x -F "$(go list "${race_free[@]}")")
say "go test -race (${#race_pkgs[@]} packages), go test ${race_free[*]}"
go test -count=1 -vet=off "${race_free[@]}"
go test -race -count=1 -vet=off "${race_pkgs[@]}"

say "waiting for the walk-throughs"
if ! wait "$walk_pid"; then
	walk_pid=""
	cat "$work/walkthrough.log" >&2
	die "the walk-throughs failed (log above)"
fi
walk_pid=""
grep '^walkthrough:' "$work/walkthrough.log" >&2

# --- 4. the app helpers and the example apps --------------------------------

say "app helpers: python, node, php"
/usr/bin/python3 -m unittest discover -s helpers/python
node --test helpers/node/
php helpers/php/tests/run.php

say "the built Caddy: a memory store that survives SIGKILL, a persist path that is checked, subject indexes across restarts"
CADDY_BIN="$work/caddy" go test -count=1 -vet=off -run '^(TestMemoryStoreSurvivesSIGKILL|TestPersistInMissingDirectoryFailsValidate|TestSubjectIndexSurvivesRestart|TestRedisSubjectsTwoProcesses)$' ./tests/

say "example apps behind the built Caddy, HTTP/1.1 and HTTP/2"
CADDY_BIN="$work/caddy" CADDY_SESSION_EXAMPLES=all go test -count=1 -vet=off -v ./examples/check/ >"$work/examples.log" 2>&1 || {
	cat "$work/examples.log" >&2
	die "the example apps failed (log above)"
}
grep -E '^\s*--- (PASS|FAIL)|up in' "$work/examples.log" >&2

# --- 5. fuzzing -------------------------------------------------------------

# go test -fuzz builds an instrumented binary for each target it is given;
# building once per package and running the binary once per target saves
# the link. The binary runs in the package's directory, as go test runs
# it, so that its corpus (testdata/fuzz) and what it finds are there, and
# with go test's cache of generated inputs.
fuzz() { # fuzz <package dir> <target...>
	local dir=$1 bin
	shift
	bin="$work/$(basename "$dir").fuzz"
	go test -c -fuzz . -o "$bin" "$dir"
	local cache
	cache="$(go env GOCACHE)/fuzz/$(go list "$dir")"
	for target in "$@"; do
		say "fuzzing $target for $FUZZTIME"
		fuzz_one "$dir" "$bin" "$cache" "$target" && continue
		# Go 1.26's fuzz coordinator can fail a run as its time ends,
		# with a bare "context deadline exceeded" and nothing found
		# (golang/go#75804, fixed in Go 1.27): that, and only that, is
		# run once more.
		if grep -q 'context deadline exceeded' "$work/fuzz.log" && ! grep -q 'Failing input written' "$work/fuzz.log"; then
			say "fuzzing $target: the fuzzer's own deadline race (golang/go#75804), nothing found; once more"
			fuzz_one "$dir" "$bin" "$cache" "$target" && continue
		fi
		die "fuzzing $target failed: what it found is in $dir/testdata/fuzz/$target"
	done
}
fuzz_one() { # fuzz_one <package dir> <binary> <cache> <target>; the output also in $work/fuzz.log
	(cd "$1" && "$2" -test.run '^$' -test.fuzz "^${4}\$" -test.fuzztime "$FUZZTIME" -test.fuzzcachedir "$3") 2>&1 |
		tee "$work/fuzz.log"
	return "${PIPESTATUS[0]}"
}
fuzz ./caddymodule FuzzReadClientID FuzzSignedCookie FuzzStripPrefixed FuzzCaddyfile
fuzz ./sessionstore/mergepatch FuzzApplyPatches FuzzCanonicalMatchesOracle
fuzz ./appsession FuzzVerify

say "all passed"
