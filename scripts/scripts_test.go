package scripts_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// tools names the Debian package that provides each command the tests run.
var tools = map[string]string{
	"shellcheck":      "shellcheck",
	"busybox":         "busybox-static",
	"systemd-analyze": "systemd",
	"dpkg-deb":        "dpkg",
	"ar":              "binutils",
	"tar":             "tar",
	"chroot":          "coreutils",
	"unshare":         "util-linux",
}

// need returns the path of command, failing the test with the package that provides it.
func need(t *testing.T, command string) string {
	t.Helper()
	p, err := exec.LookPath(command)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (.ci/run installs it)", command, tools[command])
	}
	return p
}

// run runs cmd and returns its combined output, failing the test if it does not exit 0.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

var built struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// broker returns the path of a static edgebroker binary built from this module, once per
// test run.
func broker(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "edgebroker-scripts-test-")
		if built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(built.dir, "edgebroker"), "./cmd/edgebroker")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("building edgebroker: %v\n%s", built.err, built.out)
	}
	return filepath.Join(built.dir, "edgebroker")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// shellScripts returns every shell script under scripts/, found by its first line.
func shellScripts(t *testing.T) []string {
	t.Helper()
	var scripts []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		first, _ := bufio.NewReader(f).ReadString('\n')
		if strings.HasPrefix(first, "#!/bin/sh") || strings.HasPrefix(first, "#!/usr/bin/env bash") ||
			strings.HasPrefix(first, "#!/bin/bash") || strings.HasPrefix(first, "# shellcheck shell=") {
			scripts = append(scripts, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 12 {
		t.Fatalf("found only %d shell scripts: %v", len(scripts), scripts)
	}
	return scripts
}

// TestShellcheck runs shellcheck on every shell script here, failing on warnings and errors
// (its info and style notes are advice).
func TestShellcheck(t *testing.T) {
	sc := need(t, "shellcheck")
	for _, s := range shellScripts(t) {
		cmd := exec.Command(sc, "--severity=warning", "--external-sources", "--source-path=SCRIPTDIR", s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", s, err, out)
		}
	}
}

// TestBusyboxAshParses checks the scripts that run on OpenWrt, where /bin/sh is busybox ash.
func TestBusyboxAshParses(t *testing.T) {
	bb := need(t, "busybox")
	for _, s := range []string{"openwrt/edgebroker.init", "openwrt/postinst", "openwrt/prerm", "testdata/rc.common"} {
		if out, err := exec.Command(bb, "ash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("busybox ash -n %s: %v\n%s", s, err, out)
		}
	}
	// The check itself must be able to fail.
	bad := filepath.Join(t.TempDir(), "bad.sh")
	if err := os.WriteFile(bad, []byte("if true; then\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if exec.Command(bb, "ash", "-n", bad).Run() == nil {
		t.Error("busybox ash -n accepted an unterminated if")
	}
}

// staticBusybox returns the path of busybox, failing unless it is statically linked (it
// must run inside an empty chroot).
func staticBusybox(t *testing.T) string {
	t.Helper()
	bb := need(t, "busybox")
	f, err := elf.Open(bb)
	if err != nil {
		t.Fatalf("reading %s: %v", bb, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked: apt-get install busybox-static", bb)
		}
	}
	return bb
}

// fakeRoot returns a directory to chroot into that holds the static busybox as /bin/busybox
// and a link to it for every applet but those in omit, /tmp, /dev/null and /etc.
func fakeRoot(t *testing.T, omit ...string) string {
	t.Helper()
	bb := staticBusybox(t)
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "dev", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, bb, filepath.Join(root, "bin/busybox"), 0o755)
	copyFile(t, os.DevNull, filepath.Join(root, "dev/null"), 0o666)
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || contains(omit, applet) {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// inRoot returns a command that runs args inside root: with chroot as root, or as root of
// a new user namespace (unshare --map-root-user) otherwise.
func inRoot(t *testing.T, root string, args ...string) *exec.Cmd {
	t.Helper()
	chroot := need(t, "chroot")
	if os.Geteuid() == 0 {
		return exec.Command(chroot, append([]string{root}, args...)...)
	}
	return exec.Command(need(t, "unshare"), append([]string{"--map-root-user", chroot, root}, args...)...)
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b, mode)
}

// writeFile writes b to path with mode, creating its directory.
func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is cut by the umask
		t.Fatal(err)
	}
}

// TestDefaultConfigAccepted runs the broker on the default config file, as is and with every
// example line ("#name value") switched on: --version makes it parse and check every
// setting, then exit.
func TestDefaultConfigAccepted(t *testing.T) {
	eb := broker(t)
	conf, err := os.ReadFile("edgebroker.conf")
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	examples := 0
	for _, line := range strings.SplitAfter(string(conf), "\n") {
		if len(line) > 1 && line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' {
			line = line[1:]
			examples++
		}
		all.WriteString(line)
	}
	if examples < 10 {
		t.Fatalf("edgebroker.conf has %d example lines, want every tunable setting", examples)
	}
	full := filepath.Join(t.TempDir(), "all.conf")
	writeFile(t, full, all.Bytes(), 0o644)
	for _, file := range []string{"edgebroker.conf", full} {
		out := run(t, exec.Command(eb, "--config", file, "--version"))
		if !strings.HasPrefix(out, "edgebroker ") {
			t.Errorf("edgebroker --config %s --version printed %q", file, out)
		}
	}
	// The check can fail: a bad value is refused.
	bad := filepath.Join(t.TempDir(), "bad.conf")
	writeFile(t, bad, []byte("queue-overflow sideways\n"), 0o644)
	if out, err := exec.Command(eb, "--config", bad, "--version").CombinedOutput(); err == nil {
		t.Errorf("edgebroker accepted queue-overflow sideways: %s", out)
	}
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with ExecStart pointing at
// a freshly built broker (verify requires the program to exist), and requires it to report
// nothing; then runs that ExecStart line with --version, so the broker checks its flags.
func TestSystemdUnitVerifies(t *testing.T) {
	sa := need(t, "systemd-analyze")
	eb := broker(t)
	unit, err := os.ReadFile("systemd/edgebroker.service")
	if err != nil {
		t.Fatal(err)
	}
	var execStart []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = strings.Fields(v)
		}
	}
	if len(execStart) == 0 || execStart[0] != "/usr/sbin/edgebroker" {
		t.Fatalf("ExecStart = %q, want /usr/sbin/edgebroker ...", execStart)
	}
	for _, want := range []string{"Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "StateDirectory=edgebroker",
		"Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}

	verify := func(unit []byte) string {
		dir := t.TempDir()
		path := filepath.Join(dir, "edgebroker.service")
		writeFile(t, path, bytes.ReplaceAll(unit, []byte("/usr/sbin/edgebroker"), []byte(eb)), 0o644)
		out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
		if err != nil {
			return string(out) + err.Error()
		}
		return string(out)
	}
	if out := verify(unit); out != "" {
		t.Errorf("systemd-analyze verify reports:\n%s", out)
	}
	// verify must notice a broken unit, or the check above proves nothing.
	broken := bytes.Replace(unit, []byte("WatchdogSec=30s"), []byte("WatchdogSecs=30s"), 1)
	if out := verify(broken); !strings.Contains(out, "WatchdogSecs") {
		t.Errorf("systemd-analyze verify did not report an unknown key: %q", out)
	}

	// The config file path is replaced by the shipped default, the data dir is left alone:
	// --version parses and checks every flag and setting, then exits.
	args := append(execStart[1:], "--version")
	for i, a := range args {
		if a == "/etc/edgebroker/edgebroker.conf" {
			args[i] = "edgebroker.conf"
		}
	}
	run(t, exec.Command(eb, args...))
}
