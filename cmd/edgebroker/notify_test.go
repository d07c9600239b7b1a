package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listenNotify stands in for the service manager's socket and returns what it receives.
func listenNotify(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

func expectState(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("got %q, want %q", s, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q notification", want)
	}
}

func TestNotifierSendsStatesAndWatchdog(t *testing.T) {
	got := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "20000") // 20 ms: pings every 10 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := newNotifier()
	defer n.close()
	n.send("READY=1")
	expectState(t, got, "READY=1")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { n.watchdog(stop); close(done) }()
	expectState(t, got, "WATCHDOG=1")
	expectState(t, got, "WATCHDOG=1")
	close(stop)
	<-done
}

func TestNotifierWithoutServiceManagerDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := newNotifier()
	n.send("READY=1") // must not panic or block
	stop := make(chan struct{})
	close(stop)
	n.watchdog(stop) // returns at once: no socket
	n.close()
}
