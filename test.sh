#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): formatting,
# vet, every Go test under the race detector, then the README's Quick start
# against a freshly built ./caddy.
set -euo pipefail
cd "$(dirname "$0")"

# What the tests need beyond Go: curl for the walk-through.
need=()
command -v curl >/dev/null || need+=(curl)
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
./tests/walkthrough.sh
