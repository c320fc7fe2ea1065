#!/bin/sh
# A bootloader handler speaking RAUC's custom-backend protocol, for the
# custom backend's tests. It keeps "primary=<slot>", "current=<slot>" and
# "<slot>=good|bad" lines in the file named by $UPDRAFT_TEST_BOOT_STATE.
# A "hang=1" line makes every command hang with a child process, and a
# "say=<text>" line replaces the output of get-* commands.
set -eu
state=${UPDRAFT_TEST_BOOT_STATE:?}

get() { sed -n "s/^$1=//p" "$state"; }

put() {
	grep -v "^$1=" "$state" >"$state.tmp" || true
	echo "$1=$2" >>"$state.tmp"
	mv "$state.tmp" "$state"
}

say() {
	if grep -q '^say=' "$state"; then get say; else echo "$1"; fi
}

if grep -q '^hang=1' "$state"; then
	sleep 600 &
	wait
fi

case "${1:-}" in
get-primary) say "$(get primary)" ;;
set-primary) put primary "$2" ;;
get-state)
	s=$(get "$2")
	[ -n "$s" ] || { echo "no state for slot $2" >&2; exit 2; }
	say "$s"
	;;
set-state)
	case "$3" in
	good | bad) put "$2" "$3" ;;
	*) echo "invalid state $3" >&2; exit 2 ;;
	esac
	;;
get-current)
	c=$(get current)
	[ -n "$c" ] || { echo "get-current not supported" >&2; exit 1; }
	say "$c"
	;;
*) echo "unknown command ${1:-}" >&2; exit 1 ;;
esac
