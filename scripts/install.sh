#!/bin/sh
# install.sh DESTDIR PREFIX BINARY: installs the edgebroker binary, its systemd unit and
# sysusers.d entry, the SysV init script and the default config under DESTDIR (empty for
# the running system). PREFIX is where the binary goes (PREFIX/sbin); the unit and the
# init script are rewritten to start it from there. The config lives in /etc whatever the
# PREFIX, where the unit looks for it, and an existing one is never overwritten, so running
# this again upgrades the program and keeps the settings.
set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 DESTDIR PREFIX BINARY" >&2
	exit 2
fi
destdir=$1
prefix=${2%/}
binary=$3
here=$(cd "$(dirname "$0")" && pwd)

[ -f "$binary" ] || { echo "install.sh: no binary at $binary" >&2; exit 1; }
case "$prefix" in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac

sbin=$prefix/sbin/edgebroker
root=$destdir
install -d -m 0755 "$root$prefix/sbin" "$root$prefix/lib/systemd/system" \
	"$root$prefix/lib/sysusers.d" "$root/etc/init.d" "$root/etc/edgebroker"
install -m 0755 "$binary" "$root$sbin"
# sed into a temp file, then install it: modes are set the same way on every run.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s|/usr/sbin/edgebroker|$sbin|" "$here/systemd/edgebroker.service" >"$tmp"
install -m 0644 "$tmp" "$root$prefix/lib/systemd/system/edgebroker.service"
sed "s|^DAEMON=/usr/sbin/edgebroker\$|DAEMON=$sbin|" "$here/sysv/edgebroker" >"$tmp"
install -m 0755 "$tmp" "$root/etc/init.d/edgebroker"
install -m 0644 "$here/systemd/edgebroker.sysusers" "$root$prefix/lib/sysusers.d/edgebroker.conf"
if [ ! -e "$root/etc/edgebroker/edgebroker.conf" ]; then
	install -m 0640 "$here/edgebroker.conf" "$root/etc/edgebroker/edgebroker.conf"
fi
echo "installed $root$sbin"
