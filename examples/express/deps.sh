#!/usr/bin/env bash
# Installs the Express example's npm packages (Express, and helpers/node
# linked from the repository) when node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "examples/express: needs node (20+) and npm; install them first (Debian: apt-get install -y nodejs npm)" >&2
	exit 1
fi
if [ -d node_modules/express ] && [ -e node_modules/caddy-session ]; then
	exit 0
fi
echo "examples/express: npm ci (express, caddy-session from helpers/node)"
if ! npm ci --no-audit --no-fund; then
	echo "examples/express: npm ci failed (no network, or no access to the npm registry?)" >&2
	exit 1
fi
