#!/bin/sh
# package-deb.sh ARCH BINARY OUTDIR: builds OUTDIR/edgebroker_<version>_<ARCH>.deb for
# Raspberry Pi OS and Debian (ARCH armhf, arm64, amd64...) from a static edgebroker BINARY.
# Raspberry Pi OS's armhf runs on ARMv6 (Pi Zero, Pi 1): build its binary with GOARM=6.
# The version is $VERSION or `git describe`.
#
# Contents: the binary, the systemd unit and the config file (a conffile); the postinst
# creates the edgebroker user and /var/lib/edgebroker and enables the service. Built with
# dpkg-deb when it is installed, otherwise written with tar, gzip and the ar layout by hand.
set -eu
umask 022
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=pkglib.sh
. "$here/pkglib.sh"

pkg_init "$@"
root=$work/root
mkdir -m 0755 "$root"
stage_file "$binary" "$root/usr/sbin/edgebroker" 0755
stage_file "$here/systemd/edgebroker.service" "$root/lib/systemd/system/edgebroker.service" 0644
# 0640: the postinst gives it to group edgebroker, so the service (not other users) reads it.
stage_file "$here/edgebroker.conf" "$root/etc/edgebroker/edgebroker.conf" 0640

mkdir -m 0755 "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: edgebroker
Version: $version
Architecture: $arch
Maintainer: edgebroker maintainers <edgebroker@localhost>
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser
Description: MQTT 3.1, 3.1.1 and 5.0 broker for edge gateways
 Persistent sessions survive power loss: no acknowledged message is lost.
 Runs in a strict memory budget, as one static binary, under systemd.
CONTROL
echo /etc/edgebroker/edgebroker.conf >"$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
	stage_file "$here/debian/$script" "$root/DEBIAN/$script" 0755
done

mkdir -p "$outdir"
out=$outdir/edgebroker_${version}_$arch.deb
if command -v dpkg-deb >/dev/null 2>&1; then
	SOURCE_DATE_EPOCH=$(pkg_epoch) dpkg-deb --root-owner-group -Zgzip --build "$root" "$out" >/dev/null
else
	mv "$root/DEBIAN" "$work/control"
	echo 2.0 >"$work/debian-binary"
	tar_gz "$work/control.tar.gz" "$work/control"
	tar_gz "$work/data.tar.gz" "$root"
	ar_archive "$out" "$work/debian-binary" "$work/control.tar.gz" "$work/data.tar.gz"
fi
echo "$out"
