# Sourced by the browser install scripts: installs Debian packages and puts
# them on hold, so that a later apt-get upgrade does not move the tests to
# another browser build behind their back.
#
#   apt_install_held PROBE "PACKAGES" "HOLD"
#
# PROBE is the package whose candidate tells whether the package lists
# have been fetched; PACKAGES go to apt-get install (with fonts-liberation,
# which gives pages and screenshots readable text; no recommends keeps the
# desktop pieces out); HOLD are put on hold afterwards.

apt_install_held() {
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		sudo="sudo"
	fi
	export DEBIAN_FRONTEND=noninteractive
	# apt-cache knows no candidate until the package lists have been fetched once.
	if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		$sudo apt-get update
	fi
	# shellcheck disable=SC2086 # word splitting of the package lists is intended
	$sudo apt-get install -y --no-install-recommends $2 fonts-liberation
	# shellcheck disable=SC2086
	$sudo apt-mark hold $3 >/dev/null
}
