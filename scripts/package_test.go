package scripts_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// epoch is the SOURCE_DATE_EPOCH the packages are built with: every file carries it.
const epoch = 1700000000

// entry is one file of a tarball inside a package.
type entry struct {
	mode     int64
	uid, gid int
	dir      bool
	body     string
}

func (e entry) String() string {
	return fmt.Sprintf("%o %d/%d dir=%v %d bytes", e.mode, e.uid, e.gid, e.dir, len(e.body))
}

// pkg is what a package holds: its ar members, the control and data tarballs' entries and
// the control file's fields.
type pkg struct {
	members []string
	binary  string // debian-binary
	control map[string]entry
	data    map[string]entry
	fields  map[string]string
}

// readPkg opens an .ipk or .deb with ar and Go's tar reader.
func readPkg(t *testing.T, path string) pkg {
	t.Helper()
	ar := need(t, "ar")
	p := pkg{members: strings.Fields(run(t, exec.Command(ar, "t", path)))}
	member := func(name string) []byte {
		out, err := exec.Command(ar, "p", path, name).Output()
		if err != nil {
			t.Fatalf("ar p %s %s: %v", path, name, err)
		}
		return out
	}
	p.binary = string(member("debian-binary"))
	p.control = readTarGz(t, member("control.tar.gz"))
	p.data = readTarGz(t, member("data.tar.gz"))
	p.fields = map[string]string{}
	for _, line := range strings.Split(p.control["./control"].body, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, " ") {
			p.fields[k] = v
		}
	}
	return p
}

func readTarGz(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]entry{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(epoch, 0)) {
			t.Errorf("%s is stamped %v, want SOURCE_DATE_EPOCH %d", h.Name, h.ModTime, epoch)
		}
		entries[strings.TrimSuffix(h.Name, "/")] = entry{mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid,
			dir: h.Typeflag == tar.TypeDir, body: string(body)}
	}
}

// want describes an expected tarball entry: its mode, whether it is a directory, and the
// file of this directory whose contents it must hold ("" for none).
type want struct {
	mode int64
	dir  bool
	file string
}

// dir and file build wants.
func dir() want                        { return want{mode: 0o755, dir: true} }
func file(mode int64, src string) want { return want{mode: mode, file: src} }

// checkEntries compares entries with wants; everything must be owned by root.
func checkEntries(t *testing.T, what string, entries map[string]entry, wants map[string]want) {
	t.Helper()
	for name, w := range wants {
		e, ok := entries[name]
		if !ok {
			t.Errorf("%s lacks %s", what, name)
			continue
		}
		if e.mode != w.mode || e.uid != 0 || e.gid != 0 || e.dir != w.dir {
			t.Errorf("%s %s: %v, want mode %o owned by 0/0, dir=%v", what, name, e, w.mode, w.dir)
		}
		if w.file != "" && e.body != readString(t, w.file) {
			t.Errorf("%s %s differs from %s", what, name, w.file)
		}
	}
	for name := range entries {
		if _, ok := wants[name]; !ok {
			t.Errorf("%s holds an unexpected %s", what, name)
		}
	}
}

// checkFields compares the control file's fields with wants.
func checkFields(t *testing.T, p pkg, wants map[string]string) {
	t.Helper()
	for k, w := range wants {
		if got := p.fields[k]; got != w {
			t.Errorf("control field %s = %q, want %q", k, got, w)
		}
	}
	for _, k := range []string{"Maintainer", "Description", "Installed-Size"} {
		if p.fields[k] == "" {
			t.Errorf("control field %s is missing", k)
		}
	}
}

// buildPkg runs a package script with a fixed version and time, returning the package path.
func buildPkg(t *testing.T, env []string, script, arch, bin string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command(script, arch, bin, out)
	cmd.Env = append(append(os.Environ(), "VERSION=v1.2.3-4-gabcdef0", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)), env...)
	path := strings.TrimSpace(run(t, cmd))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s printed %q: %v", script, path, err)
	}
	return path
}

// dummyBinary is a stand-in for the broker.
func dummyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgebroker-linux-test")
	writeFile(t, bin, bytes.Repeat([]byte("not really a broker\n"), 501), 0o755)
	return bin
}

// dpkgReads checks that dpkg-deb understands the package and reports field Package.
func dpkgReads(t *testing.T, path string) {
	t.Helper()
	dd := need(t, "dpkg-deb")
	// Only stdout: dpkg warns on stderr that OpenWrt's architecture names are not its own.
	out, err := exec.Command(dd, "--field", path, "Package").Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "edgebroker" {
		t.Errorf("dpkg-deb --field %s Package = %q (%v)", path, got, err)
	}
	run(t, exec.Command(dd, "--contents", path))
}

func TestPackageIPK(t *testing.T) {
	need(t, "tar")
	bin := dummyBinary(t)
	path := buildPkg(t, nil, "./package-ipk.sh", "mipsel_24kc", bin)
	if base := filepath.Base(path); base != "edgebroker_1.2.3+4+gabcdef0_mipsel_24kc.ipk" {
		t.Errorf("package name %s", base)
	}
	p := readPkg(t, path)
	if want := []string{"debian-binary", "control.tar.gz", "data.tar.gz"}; !slices.Equal(p.members, want) {
		t.Errorf("ar members %v, want %v", p.members, want)
	}
	if p.binary != "2.0\n" {
		t.Errorf("debian-binary = %q", p.binary)
	}
	checkEntries(t, "control.tar.gz", p.control, map[string]want{
		".": dir(), "./control": file(0o644, ""), "./conffiles": file(0o644, ""),
		"./postinst": file(0o755, "openwrt/postinst"), "./prerm": file(0o755, "openwrt/prerm"),
	})
	checkFields(t, p, map[string]string{"Package": "edgebroker", "Version": "1.2.3+4+gabcdef0",
		"Architecture": "mipsel_24kc", "Depends": ""})
	if got := p.control["./conffiles"].body; got != "/etc/config/edgebroker\n" {
		t.Errorf("conffiles = %q", got)
	}
	checkEntries(t, "data.tar.gz", p.data, map[string]want{
		".": dir(), "./usr": dir(), "./usr/sbin": dir(), "./etc": dir(), "./etc/init.d": dir(), "./etc/config": dir(),
		"./usr/sbin/edgebroker":   file(0o755, bin),
		"./etc/init.d/edgebroker": file(0o755, "openwrt/edgebroker.init"),
		"./etc/config/edgebroker": file(0o600, "openwrt/edgebroker.config"),
	})
	dpkgReads(t, path)

	// The same inputs make the same bytes.
	if again := buildPkg(t, nil, "./package-ipk.sh", "mipsel_24kc", bin); readString(t, again) != readString(t, path) {
		t.Error("a second build differs from the first")
	}
	for _, arch := range []string{"", "mips el", "../x"} {
		if out, err := exec.Command("./package-ipk.sh", arch, bin, t.TempDir()).CombinedOutput(); err == nil {
			t.Errorf("package-ipk.sh accepted architecture %q:\n%s", arch, out)
		}
	}
}

// debWants are the .deb's files.
func debWants(bin string) (control, data map[string]want) {
	control = map[string]want{
		".": dir(), "./control": file(0o644, ""), "./conffiles": file(0o644, ""),
		"./postinst": file(0o755, "debian/postinst"), "./prerm": file(0o755, "debian/prerm"),
		"./postrm": file(0o755, "debian/postrm"),
	}
	data = map[string]want{
		".": dir(), "./usr": dir(), "./usr/sbin": dir(), "./lib": dir(), "./lib/systemd": dir(),
		"./lib/systemd/system": dir(), "./etc": dir(), "./etc/edgebroker": dir(),
		"./usr/sbin/edgebroker":                   file(0o755, bin),
		"./lib/systemd/system/edgebroker.service": file(0o644, "systemd/edgebroker.service"),
		"./etc/edgebroker/edgebroker.conf":        file(0o640, "edgebroker.conf"),
	}
	return control, data
}

// TestPackageDeb builds the .deb with dpkg-deb, and again without it (the script then writes
// the archive by hand), and checks both the same way.
func TestPackageDeb(t *testing.T) {
	need(t, "dpkg-deb")
	bin := dummyBinary(t)
	// A PATH with only what package-deb.sh needs besides dpkg-deb.
	bare := t.TempDir()
	for _, tool := range []string{"sh", "dirname", "mkdir", "mktemp", "cp", "chmod", "cat", "du", "cut", "tr", "rm", "mv", "tar", "gzip", "wc"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bare, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for _, variant := range []struct {
		name string
		env  []string
	}{
		{"dpkg-deb", nil},
		{"by-hand", []string{"PATH=" + bare}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			path := buildPkg(t, variant.env, "./package-deb.sh", "armhf", bin)
			if base := filepath.Base(path); base != "edgebroker_1.2.3+4+gabcdef0_armhf.deb" {
				t.Errorf("package name %s", base)
			}
			p := readPkg(t, path)
			if want := []string{"debian-binary", "control.tar.gz", "data.tar.gz"}; !slices.Equal(p.members, want) {
				t.Errorf("ar members %v, want %v", p.members, want)
			}
			if p.binary != "2.0\n" {
				t.Errorf("debian-binary = %q", p.binary)
			}
			control, data := debWants(bin)
			checkEntries(t, "control.tar.gz", p.control, control)
			checkEntries(t, "data.tar.gz", p.data, data)
			checkFields(t, p, map[string]string{"Package": "edgebroker", "Version": "1.2.3+4+gabcdef0",
				"Architecture": "armhf", "Depends": "adduser"})
			if got := p.control["./conffiles"].body; got != "/etc/edgebroker/edgebroker.conf\n" {
				t.Errorf("conffiles = %q", got)
			}
			dpkgReads(t, path)
		})
	}
}
