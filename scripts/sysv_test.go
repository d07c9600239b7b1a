package scripts_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls check every 50 ms until it returns nil, failing the test with its last
// error after timeout.
func waitFor(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// session returns the session id of the process /proc/<pid> describes.
func session(t *testing.T, pid string) string {
	t.Helper()
	stat := readString(t, "/proc/"+pid+"/stat")
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:]) // state ppid pgrp session ...
	if len(fields) < 4 {
		t.Fatalf("/proc/%s/stat: %q", pid, stat)
	}
	return fields[3]
}

// sysvRun runs /etc/init.d/edgebroker action in root and returns its output and exit code.
func sysvRun(t *testing.T, root, action string) (string, int) {
	t.Helper()
	out, err := inRoot(t, root, "/etc/init.d/edgebroker", action).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("init script %s: %v\n%s", action, err, out)
	return "", 0
}

// TestSysvInit runs the SysV script's actions against the real broker in a busybox chroot,
// once with busybox's start-stop-daemon and once with the plain shell path.
func TestSysvInit(t *testing.T) {
	for _, variant := range []struct {
		name string
		omit []string
	}{
		{"start-stop-daemon", nil},
		{"plain-shell", []string{"start-stop-daemon"}},
	} {
		t.Run(variant.name, func(t *testing.T) { testSysv(t, variant.omit == nil) })
	}
}

// testSysv runs the SysV script's actions; ssd tells whether the chroot has a
// start-stop-daemon, which detaches the broker into a session of its own.
func testSysv(t *testing.T, ssd bool) {
	var omit []string
	if !ssd {
		omit = append(omit, "start-stop-daemon")
	}
	root := fakeRoot(t, omit...)
	copyFile(t, broker(t), filepath.Join(root, "usr/sbin/edgebroker"), 0o755)
	copyFile(t, "sysv/edgebroker", filepath.Join(root, "etc/init.d/edgebroker"), 0o755)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	writeFile(t, filepath.Join(root, "etc/edgebroker/edgebroker.conf"),
		[]byte("listen "+addr+"\nboard generic\n"), 0o640)
	// No user to switch to in the chroot; a short stop timeout bounds a failing test.
	writeFile(t, filepath.Join(root, "etc/default/edgebroker"), []byte("RUN_AS=\nSTOP_TIMEOUT=10\n"), 0o644)
	pidfile := filepath.Join(root, "var/run/edgebroker.pid")
	readPID := func() int {
		t.Helper()
		b, err := os.ReadFile(pidfile)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("pidfile: %v", err)
		}
		return pid
	}
	var started []int
	t.Cleanup(func() { // a failed test must not leave a broker behind
		for _, pid := range started {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	serving := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	// isBroker checks that pid is the broker itself, not a shell around it, and that it left
	// the test's session exactly when start-stop-daemon started it.
	isBroker := func(pid int) {
		t.Helper()
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != filepath.Join(root, "usr/sbin/edgebroker") {
			t.Fatalf("pid %d runs %q (%v), want the broker", pid, exe, err)
		}
		if detached := session(t, strconv.Itoa(pid)) != session(t, "self"); detached != ssd {
			t.Errorf("broker %d in a session of its own: %v, want %v (start-stop-daemon used: %v)", pid, detached, ssd, ssd)
		}
	}
	startAndCheck := func(action string) int {
		t.Helper()
		if out, code := sysvRun(t, root, action); code != 0 || !strings.Contains(out, "edgebroker started") {
			t.Fatalf("%s: exit %d\n%s", action, code, out)
		}
		pid := readPID()
		started = append(started, pid)
		waitFor(t, 30*time.Second, serving) // and so the broker has been exec'ed
		isBroker(pid)
		if out, code := sysvRun(t, root, "status"); code != 0 || !strings.Contains(out, fmt.Sprintf("running (pid %d)", pid)) {
			t.Fatalf("status: exit %d\n%s", code, out)
		}
		return pid
	}

	if out, code := sysvRun(t, root, "status"); code != 3 {
		t.Errorf("status before start: exit %d, want 3 (not running)\n%s", code, out)
	}
	first := startAndCheck("start")
	if out, code := sysvRun(t, root, "start"); code != 0 || !strings.Contains(out, "already running") || readPID() != first {
		t.Errorf("second start: exit %d, pid %d (was %d)\n%s", code, readPID(), first, out)
	}
	second := startAndCheck("restart")
	if second == first {
		t.Errorf("restart kept pid %d", first)
	}
	if syscall.Kill(first, 0) == nil {
		t.Errorf("restart left the old broker %d running", first)
	}

	if out, code := sysvRun(t, root, "stop"); code != 0 || !strings.Contains(out, "edgebroker stopped") {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	if syscall.Kill(second, 0) == nil {
		t.Errorf("the broker %d still runs after stop returned", second)
	}
	if serving() == nil {
		t.Errorf("%s still accepts connections after stop", addr)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile after stop: %v", err)
	}
	if out, code := sysvRun(t, root, "status"); code != 3 {
		t.Errorf("status after stop: exit %d, want 3\n%s", code, out)
	}
	// The broker's stderr went to the log, and SIGTERM made it stop cleanly.
	log, err := os.ReadFile(filepath.Join(root, "var/log/edgebroker.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "msg=stopped"); n != 2 || !strings.Contains(string(log), `msg="edgebroker started"`) {
		t.Errorf("log has %d clean stops, want 2:\n%s", n, log)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/edgebroker")); err != nil {
		t.Errorf("data dir: %v", err)
	}
}
