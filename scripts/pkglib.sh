# shellcheck shell=sh
# Helpers shared by package-ipk.sh and package-deb.sh; sourced, not run.
#
# Archives are reproducible: every file is owned by root (uid 0) and stamped with
# SOURCE_DATE_EPOCH (default: the last commit's time), and gzip stores no name or time.

# die prints its arguments to stderr and exits 1.
die() {
	echo "$0: $*" >&2
	exit 1
}

# pkg_version prints the package version: $VERSION, or `git describe`, turned into a
# string that dpkg and opkg accept (it must start with a digit and have no '-'). A bare
# commit name, as from an untagged tree, becomes 0.0.0+<name>.
pkg_version() {
	v=${VERSION:-$(git -C "$(dirname "$0")" describe --tags --always --dirty 2>/dev/null || echo 0)}
	v=$(echo "${v#v}" | tr -- '-' '+')
	case "$v" in
	[0-9]*.*) echo "$v" ;;
	*) echo "0.0.0+$v" ;;
	esac
}

# pkg_epoch prints the time stamped on every archived file.
pkg_epoch() {
	echo "${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$0")" log -1 --format=%ct 2>/dev/null || echo 0)}"
}

# check_arch exits unless $1 looks like a package architecture name.
check_arch() {
	case "$1" in
	'' | *[!a-z0-9_.+-]*) die "bad architecture name '$1'" ;;
	esac
}

# tar_gz OUT DIR: writes DIR's contents as ./... entries to the gzip tarball OUT.
tar_gz() {
	tar -C "$2" --format=gnu --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$(pkg_epoch)" -cf - . | gzip -n -9 >"$1"
}

# ar_archive OUT FILE...: writes the FILEs (by base name) to the ar archive OUT, in the
# layout dpkg-deb writes: the global header, then for each member a 60-byte header (name,
# mtime, uid, gid, octal mode, size, "`\n") and the data padded with "\n" to an even size.
ar_archive() {
	out=$1
	shift
	printf '!<arch>\n' >"$out"
	for f in "$@"; do
		size=$(wc -c <"$f")
		printf '%-16s%-12s%-6s%-6s%-8s%-10s`\n' "${f##*/}" "$(pkg_epoch)" 0 0 100644 "$size" >>"$out"
		cat "$f" >>"$out"
		if [ $((size % 2)) -eq 1 ]; then printf '\n' >>"$out"; fi
	done
}

# stage_file SRC DEST MODE: copies SRC to DEST, creating DEST's directories (mode 0755).
stage_file() {
	mkdir -p "${2%/*}"
	cp "$1" "$2"
	chmod "$3" "$2"
}

# pkg_init ARCH BINARY OUTDIR checks a packager's arguments and sets arch, binary, outdir,
# version and work (a temporary directory removed on exit).
# The variables are the sourcing packager's.
# shellcheck disable=SC2034
pkg_init() {
	[ $# -eq 3 ] || { echo "usage: $0 ARCH BINARY OUTDIR" >&2; exit 2; }
	arch=$1 binary=$2 outdir=$3
	check_arch "$arch"
	[ -f "$binary" ] || die "no binary at $binary"
	version=$(pkg_version)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
}
