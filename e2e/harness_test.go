package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// brokerOptions are the broker settings a test asks for; a zero field keeps the default.
type brokerOptions struct {
	maxQueued           int           // --max-queued-messages
	overflow            string        // --queue-overflow: drop-new or drop-oldest
	queueQoS0           bool          // --queue-qos0
	maxInflight         int           // --max-inflight
	maxPacketSize       string        // --max-packet-size, with units (1MiB)
	sessionExpiryMax    time.Duration // --session-expiry-max
	slowConsumerTimeout time.Duration // --slow-consumer-timeout
	maxKeepAlive        int           // --max-keepalive, seconds
	connectTimeout      time.Duration // --connect-timeout
	walSegmentSize      string        // --wal-segment-size, with units (64KiB)
	extraArgs           []string      // further flags of our broker, appended as given
}

// args turns o into our broker's command-line flags.
func (o brokerOptions) args() []string {
	var a []string
	if o.maxQueued > 0 {
		a = append(a, "--max-queued-messages", strconv.Itoa(o.maxQueued))
	}
	if o.overflow != "" {
		a = append(a, "--queue-overflow", o.overflow)
	}
	if o.queueQoS0 {
		a = append(a, "--queue-qos0")
	}
	if o.maxInflight > 0 {
		a = append(a, "--max-inflight", strconv.Itoa(o.maxInflight))
	}
	if o.maxPacketSize != "" {
		a = append(a, "--max-packet-size", o.maxPacketSize)
	}
	if o.sessionExpiryMax > 0 {
		a = append(a, "--session-expiry-max", o.sessionExpiryMax.String())
	}
	if o.slowConsumerTimeout > 0 {
		a = append(a, "--slow-consumer-timeout", o.slowConsumerTimeout.String())
	}
	if o.maxKeepAlive > 0 {
		a = append(a, "--max-keepalive", strconv.Itoa(o.maxKeepAlive))
	}
	if o.connectTimeout > 0 {
		a = append(a, "--connect-timeout", o.connectTimeout.String())
	}
	if o.walSegmentSize != "" {
		a = append(a, "--wal-segment-size", o.walSegmentSize)
	}
	return append(a, o.extraArgs...)
}

// referenceConfig turns o into a configuration file for the reference broker, skipping t when
// o asks for something that broker cannot do.
func (o brokerOptions) referenceConfig(t *testing.T, port int) string {
	t.Helper()
	switch {
	case o.overflow == "drop-oldest":
		onlyOurs(t, "no drop-oldest overflow policy")
	case o.sessionExpiryMax > 0:
		onlyOurs(t, "no sub-minute persistent session expiry")
	case o.slowConsumerTimeout > 0:
		onlyOurs(t, "no slow-consumer timeout")
	case o.connectTimeout > 0:
		onlyOurs(t, "no CONNECT timeout option")
	case o.walSegmentSize != "":
		onlyOurs(t, "no write-ahead log")
	case len(o.extraArgs) > 0:
		onlyOurs(t, "flags of ours only")
	}
	maxQueued := 100
	if o.maxQueued > 0 {
		maxQueued = o.maxQueued
	}
	lines := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence false",
		fmt.Sprintf("max_queued_messages %d", maxQueued),
		"log_dest stderr",
		"log_type all",
	}
	if o.queueQoS0 {
		lines = append(lines, "queue_qos0_messages true")
	}
	if o.maxInflight > 0 {
		lines = append(lines, fmt.Sprintf("max_inflight_messages %d", o.maxInflight))
	}
	if o.maxPacketSize != "" {
		lines = append(lines, fmt.Sprintf("max_packet_size %d", parseSize(t, o.maxPacketSize)))
	}
	if o.maxKeepAlive > 0 {
		lines = append(lines, fmt.Sprintf("max_keepalive %d", o.maxKeepAlive))
	}
	return strings.Join(lines, "\n") + "\n"
}

// parseSize reads the sizes the tests use: a number with an optional KiB or MiB suffix.
func parseSize(t *testing.T, s string) int {
	t.Helper()
	mult := 1
	for suffix, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad size %q: %v", s, err)
	}
	return n * mult
}

// broker is one broker process under test, bound to 127.0.0.1 on a port that stays the same
// across Restart, with a data directory that stays the same too.
type broker struct {
	t       *testing.T
	opts    brokerOptions
	port    int
	dataDir string
	log     *syncBuffer // stderr and stdout of every run, in order

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process has exited
}

// startBroker starts a broker with options o and registers its shutdown with t.Cleanup. On a
// failed test the broker's log is written to the test log.
func startBroker(t *testing.T, o brokerOptions) *broker {
	t.Helper()
	b := &broker{t: t, opts: o, dataDir: t.TempDir(), log: &syncBuffer{}}
	t.Cleanup(func() {
		b.Stop()
		b.checkLog()
		if t.Failed() {
			t.Logf("broker log:\n%s", b.log.String())
		}
	})
	// A port found free can be taken by someone else before the broker binds it: retry.
	for attempt := 0; ; attempt++ {
		b.port = freePort(t)
		err := b.start()
		if err == nil {
			return b
		}
		if attempt == 4 {
			t.Fatalf("starting broker: %v", err)
		}
		t.Logf("starting broker on port %d: %v; retrying on another port", b.port, err)
	}
}

// Addr is the broker's host:port.
func (b *broker) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// URL is the broker's address in the form the 3.x client library wants.
func (b *broker) URL() string { return "tcp://" + b.Addr() }

// Start starts the broker process again after Stop or Kill, on the same port and data dir.
func (b *broker) Start() {
	b.t.Helper()
	// A port freed by the previous process can linger for a moment: retry a few times.
	var err error
	for range 5 {
		if err = b.start(); err == nil {
			return
		}
	}
	b.t.Fatalf("restarting broker on port %d: %v", b.port, err)
}

// Restart stops the broker gracefully and starts it again on the same port and data dir.
func (b *broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.Start()
}

// Stop sends SIGTERM and waits for the process to exit, sending SIGKILL after 10 s.
// It is a no-op when the broker is not running.
func (b *broker) Stop() { b.signal(syscall.SIGTERM, 10*time.Second) }

// Kill sends SIGKILL, as a power cut would stop the process, and waits for it to exit.
func (b *broker) Kill() { b.signal(syscall.SIGKILL, 10*time.Second) }

func (b *broker) signal(sig syscall.Signal, bound time.Duration) {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(bound):
		b.t.Errorf("broker did not exit within %v of %v; killing it", bound, sig)
		_ = cmd.Process.Kill()
		<-exited
	}
}

// start launches the process and waits until its port accepts connections. It fails with an
// error when the process exits first (a port taken by someone else, most likely).
func (b *broker) start() error {
	var cmd *exec.Cmd
	switch target {
	case targetOurs:
		cmd = exec.Command(brokerBin, b.serveArgs(b.Addr())...)
	default:
		conf := filepath.Join(b.dataDir, "reference.conf")
		if err := os.WriteFile(conf, []byte(b.opts.referenceConfig(b.t, b.port)), 0o600); err != nil {
			b.t.Fatal(err)
		}
		cmd = exec.Command(brokerBin, "-c", conf)
	}
	fmt.Fprintf(b.log, "=== start %s\n", strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("starting %s: %v", brokerBin, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(b.log, "=== exit: %v\n", err)
		close(exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			b.mu.Lock()
			b.cmd, b.exited = cmd, exited
			b.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			return errors.New("broker exited before accepting connections")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			b.t.Fatalf("broker not accepting connections on %s after 20 s", b.Addr())
		}
	}
}

// serveArgs are our broker's command-line arguments for serving on addr with b's data dir and
// options.
func (b *broker) serveArgs(addr string) []string {
	return append([]string{
		"--listen", addr,
		"--data-dir", b.dataDir,
		"--log-level", "debug",
	}, b.opts.args()...)
}

// Running reports whether the broker process is still alive.
func (b *broker) Running() bool {
	b.mu.Lock()
	exited := b.exited
	b.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// checkLog fails the test when the broker reported a data race or a panic.
func (b *broker) checkLog() {
	out := b.log.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(out, bad) {
			b.t.Errorf("broker log contains %q", bad)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// checkFor calls f every interval until it returns nil, failing t with f's last error when
// timeout passes first.
func checkFor(t *testing.T, timeout, every time.Duration, f func() error) {
	t.Helper()
	if err := poll(timeout, every, f); err != nil {
		t.Fatalf("after %v: %v", timeout, err)
	}
}

// poll calls f every interval until it returns nil or timeout passes, and returns f's last
// error: unlike checkFor it lets the test go on (t.Errorf), so that later measurements are
// still made and reported.
func poll(timeout, every time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writers of a child process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
