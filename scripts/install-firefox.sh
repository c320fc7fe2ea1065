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

# shellcheck source=scripts/apt-held.sh
. "$(dirname "$0")/apt-held.sh"
pkg=firefox-esr
if [ -n "${UPDRAFT_FIREFOX_VERSION:-}" ]; then
	pkg="firefox-esr=$UPDRAFT_FIREFOX_VERSION"
fi
apt_install_held firefox-esr "$pkg" "firefox-esr"

command -v firefox-esr >/dev/null 2>&1 || { echo "install-firefox: firefox-esr still missing" >&2; exit 1; }
echo "firefox installed: $(firefox-esr --version 2>/dev/null)"
