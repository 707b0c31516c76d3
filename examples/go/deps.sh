#!/bin/sh
# The Go example needs only Go, which builds the repository anyway.
set -eu
if ! command -v go >/dev/null 2>&1; then
	echo "deps.sh: the Go example needs Go (https://go.dev/dl/) on PATH" >&2
	exit 1
fi
