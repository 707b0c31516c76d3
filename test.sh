#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): formatting,
# vet, every Go test under the race detector, each fuzz target for 15s
# (FUZZTIME), then the README's walk-throughs against a freshly built ./caddy.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need beyond Go: curl for the walk-throughs, redis-server
# and redis-cli (with Sentinel) for the Redis store's tests, which start
# their own servers on free loopback ports.
need=()
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
go test -race -count=1 ./...

# Each fuzz target for a short while; what one finds lands in testdata/fuzz
# and fails the run, to become a regular test.
for target in FuzzReadClientID FuzzSignedCookie FuzzStripPrefixed FuzzCaddyfile; do
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-15s}" ./caddymodule
done
for target in FuzzApplyPatches FuzzCanonicalMatchesOracle; do
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-15s}" ./sessionstore/mergepatch
done

./tests/walkthrough.sh
