#!/bin/sh
# Installs the Debian tools the bootloader backend tests drive for real:
# fw_printenv/fw_setenv (libubootenv-tool), mkenvimage (u-boot-tools) and
# grub-editenv (grub-common). Does nothing when all three are present; never
# touches a real bootloader environment (the tests use their own files and
# config).
set -eu

missing=""
command -v fw_setenv >/dev/null 2>&1 || missing="$missing libubootenv-tool"
command -v mkenvimage >/dev/null 2>&1 || missing="$missing u-boot-tools"
command -v grub-editenv >/dev/null 2>&1 || missing="$missing grub-common"

if [ -z "$missing" ]; then
	echo "boot tools already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# apt-cache knows no candidate until the package lists have been fetched once.
need_update=""
for p in $missing; do
	if ! apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		need_update=1
	fi
done
if [ -n "$need_update" ]; then
	$SUDO apt-get update
fi
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y --no-install-recommends $missing

for c in fw_printenv fw_setenv mkenvimage grub-editenv; do
	command -v "$c" >/dev/null 2>&1 || { echo "install-boot-tools: $c still missing" >&2; exit 1; }
done
echo "boot tools installed"
