#!/usr/bin/env bash
# Installs PHP's CLI and FPM (Debian packages) when missing.
set -euo pipefail

if command -v php >/dev/null && compgen -G '/usr/sbin/php-fpm*' >/dev/null; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "examples/php: needs php-cli and php-fpm; run as root to install them (apt-get install -y php-cli php-fpm)" >&2
	exit 1
fi
echo "examples/php: apt-get install -y php-cli php-fpm"
# The package scripts try to start the php-fpm service; that may fail
# where there is no init system, and is not needed: run.sh starts its own.
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-cli php-fpm; }; then
	echo "examples/php: installing php-cli and php-fpm failed (no network, or no apt?)" >&2
	exit 1
fi
