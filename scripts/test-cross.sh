#!/usr/bin/env bash
# Runs the codec, limits, wal, session store, topic tree and durable-session test suites
# (-short) built for 32-bit gateway CPUs under user-mode emulation:
#   mipsle, GOMIPS=softfloat, under qemu-mipsel-static -cpu 24Kc (no FPU, as on cheap routers)
#   armv6,  GOARM=6,          under qemu-arm-static -cpu arm1176  (Raspberry Pi Zero / 1)
# The emulator is given to go test -exec with its -cpu option, so no binfmt registration is
# needed. TARGETS="mipsle" (or "armv6") runs one target only; TARGETS=mips adds big-endian MIPS.
set -euo pipefail
cd "$(dirname "$0")/.."

go=${GO:-go}
pkgs=(./codec ./limits ./wal ./wal/waltest ./session/store ./session/topic ./session)

# name: GOARCH, the GOARCH-specific setting, emulator, emulated CPU
declare -A goarch=([mipsle]=mipsle [armv6]=arm [mips]=mips)
declare -A archenv=([mipsle]=GOMIPS=softfloat [armv6]=GOARM=6 [mips]=GOMIPS=softfloat)
declare -A qemu=([mipsle]=qemu-mipsel-static [armv6]=qemu-arm-static [mips]=qemu-mips-static)
declare -A cpu=([mipsle]=24Kc [armv6]=arm1176 [mips]=24Kc)

failed=()
start=$SECONDS
for name in ${TARGETS:-mipsle armv6}; do
	if [ -z "${goarch[$name]:-}" ]; then
		echo "test-cross: unknown target $name (mipsle, armv6 or mips)" >&2
		exit 2
	fi
	emu=${qemu[$name]}
	if ! command -v "$emu" >/dev/null; then
		echo "test-cross: $emu not found (Debian package qemu-user-static)" >&2
		exit 2
	fi
	# Some emulators exit 1 after listing their CPUs: look at the list only.
	cpus=$("$emu" -cpu help 2>&1 || true)
	if ! grep -w -- "${cpu[$name]}" <<<"$cpus" >/dev/null; then
		echo "test-cross: $emu does not know the CPU ${cpu[$name]}" >&2
		exit 2
	fi
	echo "== $name: GOARCH=${goarch[$name]} ${archenv[$name]} under $emu -cpu ${cpu[$name]}"
	t0=$SECONDS
	if env CGO_ENABLED=0 GOOS=linux GOARCH="${goarch[$name]}" "${archenv[$name]}" \
		"$go" test -short -count=1 -timeout 10m -exec "$emu -cpu ${cpu[$name]}" "${pkgs[@]}"; then
		echo "== $name: ok in $((SECONDS - t0))s"
	else
		echo "== $name: FAIL after $((SECONDS - t0))s"
		failed+=("$name")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "test-cross: FAIL (${failed[*]}) in $((SECONDS - start))s"
	exit 1
fi
echo "test-cross: PASS in $((SECONDS - start))s"
