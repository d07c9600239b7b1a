// Package scripts holds no Go code: it is where the broker's deployment files live, and its
// tests check them. The files:
//
//   - edgebroker.conf: the default /etc/edgebroker/edgebroker.conf, "name value" lines
//     named like the flags;
//   - systemd/edgebroker.service (Type=notify, watchdog, StateDirectory, hardening) and
//     systemd/edgebroker.sysusers (the service user);
//   - openwrt/edgebroker.init (procd), openwrt/edgebroker.config (UCI /etc/config/edgebroker),
//     openwrt/postinst and openwrt/prerm (the .ipk's maintainer scripts);
//   - sysv/edgebroker: an LSB init script for other inits;
//   - debian/postinst, prerm, postrm: the .deb's maintainer scripts;
//   - install.sh DESTDIR PREFIX BINARY: what `make install` runs;
//   - package-ipk.sh and package-deb.sh ARCH BINARY OUTDIR, sharing pkglib.sh: the packages.
//
// The tests need Debian's shellcheck, busybox-static, systemd (for systemd-analyze) and
// dpkg (for dpkg-deb, to read the packages back), and fail saying so when one is missing.
// They run the init scripts in a chroot holding only the static busybox (as root, or in a
// user namespace otherwise), with testdata/rc.common standing in for OpenWrt's, which
// records the procd calls instead of making them.
package scripts
