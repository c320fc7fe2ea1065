#!/bin/sh
# Installs Debian's swupdate (with its suricatta hawkBit client), cpio and
# openssl for the DDI end-to-end test in internal/ddi, which builds a
# CMS-signed .swu and lets the real client install it from Updraft.
# Does nothing when all three are present. Never starts a swupdate service.
set -eu

missing=""
command -v swupdate >/dev/null 2>&1 || [ -x /usr/bin/swupdate ] || missing="$missing swupdate"
command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -z "$missing" ]; then
	echo "swupdate, cpio and openssl already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# apt-cache knows no candidate until the package lists have been fetched once.
if ! apt-cache policy swupdate 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	$SUDO apt-get update
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing

# The package may ship a service unit; the test runs its own instance.
if command -v service >/dev/null 2>&1; then
	$SUDO service swupdate stop >/dev/null 2>&1 || true
fi
echo "installed:$missing"
