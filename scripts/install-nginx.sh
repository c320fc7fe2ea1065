#!/bin/sh
# Installs nginx from the Debian archive for bench/download, which compares
# Updraft's artifact download path with nginx serving the same file.
# Does nothing when nginx is already present. The benchmark starts its own
# nginx with a private config; this script never starts or enables the
# distribution's service.
set -eu

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
	echo "nginx already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# apt-cache knows no candidate until the package lists have been fetched once.
if ! apt-cache policy nginx 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	$SUDO apt-get update
fi
$SUDO apt-get install -y --no-install-recommends nginx

# Debian's postinst may start the packaged service on port 80 where init
# scripts are allowed to run; the benchmark does not need it.
if command -v service >/dev/null 2>&1; then
	$SUDO service nginx stop >/dev/null 2>&1 || true
fi
echo "nginx installed: $(/usr/sbin/nginx -v 2>&1)"
