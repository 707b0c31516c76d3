#!/bin/sh
# Installs what the django example needs when missing: Debian's packages
# python3-django and gunicorn, run with /usr/bin/python3 and /usr/bin/gunicorn.
set -eu
pkgs="python3-django gunicorn"
if /usr/bin/python3 -c 'import django' 2>/dev/null && [ -x /usr/bin/gunicorn ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: the django example needs $pkgs: run as root, or: sudo apt-get install -y $pkgs" >&2
	exit 1
fi
echo "deps.sh: installing $pkgs"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq $pkgs; then
	apt-get update -qq && apt-get install -y -qq $pkgs || {
		echo "deps.sh: apt-get could not install $pkgs (no network?)" >&2
		exit 1
	}
fi
