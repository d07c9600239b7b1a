#!/bin/sh
# package-ipk.sh ARCH BINARY OUTDIR: builds OUTDIR/edgebroker_<version>_<ARCH>.ipk, an
# OpenWrt package, from a static edgebroker BINARY. ARCH is an OpenWrt package architecture
# (mipsel_24kc, mips_24kc, arm_cortex-a7, aarch64_generic, arm_arm1176jzf-s_vfp, x86_64...)
# matching the binary's GOARCH. The version is $VERSION or `git describe`.
#
# Layout: an ar archive of debian-binary ("2.0\n"), control.tar.gz (control, conffiles,
# postinst, prerm) and data.tar.gz (./usr/sbin/edgebroker, ./etc/init.d/edgebroker,
# ./etc/config/edgebroker).
set -eu
umask 022
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pkglib.sh
. "$here/pkglib.sh"

pkg_init "$@"
mkdir -m 0755 "$work/data" "$work/control"
stage_file "$binary" "$work/data/usr/sbin/edgebroker" 0755
stage_file "$here/openwrt/edgebroker.init" "$work/data/etc/init.d/edgebroker" 0755
# 0600: the UCI file may later name password files; only root reads it.
stage_file "$here/openwrt/edgebroker.config" "$work/data/etc/config/edgebroker" 0600

# No Depends: the binary is static, it needs not even libc.
cat >"$work/control/control" <<CONTROL
Package: edgebroker
Version: $version
Architecture: $arch
Maintainer: edgebroker maintainers
Section: net
Priority: optional
Installed-Size: $(du -sb "$work/data" | cut -f1)
Description: MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways
 Persistent sessions survive power loss: no acknowledged message is lost.
 Runs in a strict memory budget, as one static binary, under procd.
CONTROL
echo /etc/config/edgebroker >"$work/control/conffiles"
stage_file "$here/openwrt/postinst" "$work/control/postinst" 0755
stage_file "$here/openwrt/prerm" "$work/control/prerm" 0755

echo 2.0 >"$work/debian-binary"
tar_gz "$work/control.tar.gz" "$work/control"
tar_gz "$work/data.tar.gz" "$work/data"
mkdir -p "$outdir"
out=$outdir/edgebroker_${version}_$arch.ipk
ar_archive "$out" "$work/debian-binary" "$work/control.tar.gz" "$work/data.tar.gz"
echo "$out"
