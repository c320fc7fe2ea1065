#!/usr/bin/env bash
# Cross-builds updraft-agent for the device architectures Updraft supports
# (static, CGO_ENABLED=0, stripped) and reports each binary's size plus a
# per-module breakdown of the code and data in it.
#
#   scripts/cross-build-agent.sh            # builds into build/agent/
#   OUT=/tmp/agent scripts/cross-build-agent.sh
#   BREAKDOWN=linux/arm64 scripts/cross-build-agent.sh   # which target to break down
#
# The budget is 14 MB stripped per binary (docs/device-integration.md).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-build/agent}
breakdown=${BREAKDOWN:-linux/arm64}
budget=$((14 * 1000 * 1000))
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
mkdir -p "$out"

# os arch goarm
targets=(
	"linux arm 7"
	"linux arm64 -"
	"linux riscv64 -"
	"linux mipsle -"
)

printf '%-16s %12s %10s\n' target bytes MB
over=0
for t in "${targets[@]}"; do
	read -r os arch arm <<<"$t"
	name="updraft-agent-$os-$arch"
	env=(CGO_ENABLED=0 GOOS="$os" GOARCH="$arch")
	if [[ $arm != - ]]; then
		env+=(GOARM="$arm")
		name+="v$arm"
	fi
	env "${env[@]}" go build -trimpath -ldflags="-s -w -X main.version=$version" -o "$out/$name" ./cmd/updraft-agent
	size=$(stat -c %s "$out/$name")
	printf '%-16s %12d %10.2f\n' "$os/$arch${arm/#-/}" "$size" "$(awk -v s="$size" 'BEGIN{print s/1000000}')"
	if ((size > budget)); then
		echo "  over the $budget-byte budget" >&2
		over=1
	fi
done

# Per-module breakdown: sizes of code and read-only data symbols (nm types
# T and R) from an unstripped build of one target, attributed to the
# module whose path prefixes the symbol's package (longest match);
# everything else is the standard library and runtime. Writable data is
# left out (nm cannot tell file-backed data from zeroed memory), and so are
# the runtime's tables (pclntab, type links), which grow with the code.
bos=${breakdown%/*}
barch=${breakdown#*/}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOOS="$bos" GOARCH="$barch" go build -trimpath -o "$tmp/agent" ./cmd/updraft-agent
go version -m "$tmp/agent" | awk '$1 == "mod" || $1 == "dep" { print $2 }' >"$tmp/modules"
go tool nm -size "$tmp/agent" >"$tmp/nm"
echo
echo "per-module breakdown ($breakdown, code + read-only data):"
awk -v modfile="$tmp/modules" '
	BEGIN {
		while ((getline m < modfile) > 0) mods[++n] = m
		# Longest module path first.
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (length(mods[j]) > length(mods[i])) { t = mods[i]; mods[i] = mods[j]; mods[j] = t }
	}
	NF >= 4 && ($3 == "T" || $3 == "t" || $3 == "R" || $3 == "r") {
		size = $2; name = $4
		owner = "std+runtime"
		for (i = 1; i <= n; i++) {
			p = index(name, mods[i])
			if (p > 0) {
				c = substr(name, p + length(mods[i]), 1)
				if (c == "/" || c == "." || c == "") { owner = mods[i]; break }
			}
		}
		bytes[owner] += size; total += size
	}
	END {
		for (o in bytes) printf "%12d %5.1f%%  %s\n", bytes[o], 100 * bytes[o] / total, o
		printf "%12d 100.0%%  total\n", total
	}
' "$tmp/nm" | sort -rn
exit $over
