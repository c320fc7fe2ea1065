#!/bin/sh
# Installs Debian's firefox-esr for the dashboard's Firefox test
# (internal/web/browsertest drives it headless over WebDriver BiDi). Does
# nothing when a firefox binary is present.
#
# Pinning: as with chromium (scripts/install-chromium.sh), Debian serves
# only the newest ESR build of the release, so the package is put on hold
# after install: a later apt-get upgrade does not move the tests to another
# browser build behind their back. UPDRAFT_FIREFOX_VERSION=<debian version>
# asks for one exact build while the archive still serves it.
set -eu

for c in firefox-esr firefox; do
	if command -v "$c" >/dev/null 2>&1; then
		echo "firefox already installed: $("$c" --version 2>/dev/null || echo "$c")"
		exit 0
	fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# apt-cache knows no candidate until the package lists have been fetched once.
if ! apt-cache policy firefox-esr 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	$SUDO apt-get update
fi
pkg=firefox-esr
if [ -n "${UPDRAFT_FIREFOX_VERSION:-}" ]; then
	pkg="firefox-esr=$UPDRAFT_FIREFOX_VERSION"
fi
# fonts-liberation gives pages and screenshots readable text; no
# recommends keeps the desktop pieces out.
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y --no-install-recommends $pkg fonts-liberation
$SUDO apt-mark hold firefox-esr >/dev/null

command -v firefox-esr >/dev/null 2>&1 || { echo "install-firefox: firefox-esr still missing" >&2; exit 1; }
echo "firefox installed: $(firefox-esr --version 2>/dev/null)"
