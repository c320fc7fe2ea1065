#!/bin/sh
# Installs Debian's chromium for the dashboard's browser tests
# (internal/web/browsertest drives it headless through chromedp). Does
# nothing when a chromium binary is present.
#
# Pinning: Debian keeps only the newest build of chromium in its security
# archive, so an exact version cannot be pinned for long; the package comes
# from the machine's release (bookworm) and is put on hold after install so
# that a later apt-get upgrade does not move the tests to another browser
# build behind their back. UPDRAFT_CHROMIUM_VERSION=<debian version> asks for
# one exact build while the archive still serves it.
set -eu

for c in chromium chromium-browser; do
	if command -v "$c" >/dev/null 2>&1; then
		echo "chromium already installed: $("$c" --version 2>/dev/null || echo "$c")"
		exit 0
	fi
done

# shellcheck source=scripts/apt-held.sh
. "$(dirname "$0")/apt-held.sh"
pkg=chromium
if [ -n "${UPDRAFT_CHROMIUM_VERSION:-}" ]; then
	pkg="chromium=$UPDRAFT_CHROMIUM_VERSION chromium-common=$UPDRAFT_CHROMIUM_VERSION"
fi
apt_install_held chromium "$pkg" "chromium chromium-common"

command -v chromium >/dev/null 2>&1 || { echo "install-chromium: chromium still missing" >&2; exit 1; }
echo "chromium installed: $(chromium --version 2>/dev/null)"
