#!/usr/bin/env bash
# Builds static edgebroker binaries for the gateway targets into OUTDIR (default dist/):
#   edgebroker-linux-{amd64,arm64,armv6,armv7,mips,mipsle}
#   edgebroker-linux-{mips,mipsle}-tls
# The MIPS router builds leave TLS out (build tag notls: about 2 MB less flash, as OpenWrt's
# mosquitto-nossl does); their -tls variants have it, as every other target does. Then it
# writes OUTDIR/SHA256SUMS and prints a size report. Fails if the mipsle binary is not smaller
# than MIPSLE_MAX_BYTES (default 6000000: the size target for cheap routers).
#
# VERSION and COMMIT come from the environment, else from git, and are stamped into the
# binary (edgebroker --version prints them with the target).
set -euo pipefail
cd "$(dirname "$0")/.."

outdir=${1:-dist}
go=${GO:-go}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
mipsle_max=${MIPSLE_MAX_BYTES:-6000000}

# name GOARCH variable=value tags (the GOARCH-specific setting and build tags, "-" for none)
targets=(
	"amd64      amd64  -               -"
	"arm64      arm64  -               -"
	"armv6      arm    GOARM=6         -"
	"armv7      arm    GOARM=7         -"
	"mips       mips   GOMIPS=softfloat notls"
	"mipsle     mipsle GOMIPS=softfloat notls"
	"mips-tls   mips   GOMIPS=softfloat -"
	"mipsle-tls mipsle GOMIPS=softfloat -"
)

mkdir -p "$outdir"
names=()
for t in "${targets[@]}"; do
	read -r name arch extra tags <<<"$t"
	[ "$extra" = - ] && extra=
	[ "$tags" = - ] && tags=
	bin="edgebroker-linux-$name"
	echo "build $bin (GOARCH=$arch${extra:+ $extra}${tags:+, tags $tags})"
	# extra is a single VAR=value word or empty; env takes it as an assignment.
	env CGO_ENABLED=0 GOOS=linux GOARCH="$arch" ${extra:+"$extra"} \
		"$go" build -trimpath -tags "$tags" \
		-ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
		-o "$outdir/$bin" ./cmd/edgebroker
	names+=("$bin")
done

(cd "$outdir" && sha256sum "${names[@]}" >SHA256SUMS)

echo
echo "edgebroker $version (commit $commit), stripped static binaries in $outdir:"
printf '%-28s %10s %9s\n' binary bytes MiB
for bin in "${names[@]}"; do
	size=$(stat -c %s "$outdir/$bin")
	printf '%-28s %10d %9.2f\n' "$bin" "$size" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')"
done

size=$(stat -c %s "$outdir/edgebroker-linux-mipsle")
if [ "$size" -ge "$mipsle_max" ]; then
	echo "FAIL: edgebroker-linux-mipsle is $size bytes, the target is under $mipsle_max" >&2
	exit 1
fi
echo "ok: edgebroker-linux-mipsle is $size bytes, under the $mipsle_max target"
