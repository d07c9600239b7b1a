package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The tests in this file run the binary's data-dir tooling and its refusals to start.

// runBinary runs our broker binary with args, bounded by timeout, and returns its stdout, its
// stderr and its exit code. A process still running at the timeout fails t: every use here
// expects it to exit by itself.
func runBinary(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokerBin, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("edgebroker %s still running after %v; output:\n%s%s", strings.Join(args, " "), timeout, out.String(), errOut.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("edgebroker %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// refusal runs a second broker process on b's data dir (on another port) that must refuse to
// start: it returns the one line of its error, failing t unless the process exits non-zero with
// exactly one line that is not a log record.
func refusal(t *testing.T, b *broker) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	stdout, stderr, code := runBinary(t, 20*time.Second, b.serveArgs(addr)...)
	if code == 0 {
		t.Fatalf("broker started (exit 0), want a refusal; output:\n%s%s", stdout, stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stdout+stderr), "\n") {
		if !strings.HasPrefix(l, "time=") { // slog records before the error are fine
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "edgebroker: ") {
		t.Fatalf("exit %d with %d lines besides log records, want one 'edgebroker: ' error line:\n%s", code, len(lines), strings.Join(lines, "\n"))
	}
	return lines[0]
}

// TestTwoBrokersOneDataDir: a second broker on a data dir in use refuses to start with a one-line
// error naming the directory, and the first keeps serving.
func TestTwoBrokersOneDataDir(t *testing.T) {
	onlyOurs(t, "our data dir lock")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	line := refusal(t, b)
	if !strings.Contains(line, b.dataDir) || !strings.Contains(line, "in use") {
		t.Fatalf("error %q does not say that %s is in use", line, b.dataDir)
	}
	c := connect3(t, b, "still-serving", opts3{clean: true})
	c.publish(t, "lock/t", 1, false, "ok")
}

// inspect runs `edgebroker inspect --data-dir dir`, which must succeed, and returns its report.
func inspect(t *testing.T, dir string) string {
	t.Helper()
	stdout, stderr, code := runBinary(t, 20*time.Second, "inspect", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("inspect exited %d:\n%s%s", code, stdout, stderr)
	}
	return stdout
}

// mustContain fails t unless report contains every one of want.
func mustContain(t *testing.T, what, report string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(report, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, report)
		}
	}
}

// TestInspectDataDir: `edgebroker inspect` on a stopped broker's data dir and beside a running
// broker names the sessions with their queue depths; beside the running broker it says it read
// a copy, and counts the log written since the checkpoint.
func TestInspectDataDir(t *testing.T) {
	onlyOurs(t, "our data dir and its inspect command")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	a := connect3(t, b, "insp-a", opts3{})
	a.subscribe(t, "insp/#", 1)
	a.disconnect()
	five := connect5(t, b, &paho.Connect{ClientID: "insp-b", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(600)}})
	five.subscribe(t, 0, paho.SubscribeOptions{Topic: "insp/only-b", QoS: 1})
	if err := five.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	pub := connect3(t, b, "insp-pub", opts3{clean: true})
	pub.publishSeq(t, "insp/x", 1, "x", 3)      // to insp-a only
	pub.publishSeq(t, "insp/only-b", 1, "b", 2) // to both
	pub.disconnect()

	b.Stop() // a graceful stop checkpoints
	stopped := inspect(t, b.dataDir)
	sessions := []string{
		`session "insp-a": v4, disconnected `,
		`never expires, 1 subs, 5 queued (0 awaiting PUBCOMP)`,
		`session "insp-b": v5, disconnected `,
		`expiry 10m0s, 1 subs, 2 queued (0 awaiting PUBCOMP)`,
		"checkpointed: 2 sessions, 7 queued entries, 5 messages",
	}
	mustContain(t, "report on the stopped broker", stopped, sessions...)
	if strings.Contains(stopped, "insp-pub") {
		t.Errorf("report names the clean session insp-pub:\n%s", stopped)
	}

	b.Start()
	pub = connect3(t, b, "insp-pub", opts3{clean: true})
	pub.publishSeq(t, "insp/x", 1, "y", 2) // logged, not checkpointed yet
	live := inspect(t, b.dataDir)
	mustContain(t, "report beside the running broker", live, append(sessions, "locked by a running broker: read from a copy")...)
	after := regexp.MustCompile(`(\d+) after the checkpoint`).FindStringSubmatch(live)
	if after == nil || after[1] == "0" {
		t.Errorf("report beside the running broker counts no log records after the checkpoint:\n%s", live)
	}
}

// TestRepairDamagedLog: a byte flipped in the middle of an early log segment (not a torn tail)
// makes the broker refuse to start with a one-line error that names the segment and the repair
// command; `edgebroker repair` moves the damaged part aside as .broken, and the broker starts
// with the messages logged before the damage, in order.
func TestRepairDamagedLog(t *testing.T) {
	onlyOurs(t, "our write-ahead log and its repair command")
	t.Parallel()
	// The offline session must hold all n messages: no overflow policy in the way.
	b := startBroker(t, brokerOptions{walSegmentSize: "64KiB", maxQueued: 1000})
	sub := connect3(t, b, "rep-sub", opts3{})
	sub.subscribe(t, "rep/t", 1)
	sub.disconnect()
	pub := connect3(t, b, "rep-pub", opts3{clean: true})
	const n = 300
	pad := strings.Repeat("p", 1024) // 300 KiB of bodies: several 64 KiB segments
	for i := range n {
		pub.publish(t, "rep/t", 1, false, strconv.Itoa(i)+pad)
	}
	pub.disconnect()
	b.Kill() // no checkpoint: the whole history is in the log

	segments, err := filepath.Glob(filepath.Join(b.dataDir, "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segments)
	if len(segments) < 3 {
		t.Fatalf("%d log segments %v, want at least 3 to damage an early one", len(segments), segments)
	}
	damaged := segments[1]
	data, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(damaged, data, 0o600); err != nil {
		t.Fatal(err)
	}

	line := refusal(t, b)
	t.Logf("refused: %s", line)
	mustContain(t, "refusal", line, filepath.Base(damaged), "edgebroker repair")

	stdout, stderr, code := runBinary(t, 20*time.Second, "repair", "--data-dir", b.dataDir)
	if code != 0 {
		t.Fatalf("repair exited %d:\n%s%s", code, stdout, stderr)
	}
	broken, _ := filepath.Glob(filepath.Join(b.dataDir, "wal", "*.broken"))
	if !slices.Contains(broken, damaged+".broken") {
		t.Fatalf("after repair the .broken files are %v, want %s.broken; repair said:\n%s", broken, damaged, stdout)
	}
	t.Logf("repair: %s", stdout)

	b.Start()
	// The recovery checkpointed what is left; inspect tells how much, and exactly that arrives.
	depth := regexp.MustCompile(`session "rep-sub": .*, (\d+) queued`).FindStringSubmatch(inspect(t, b.dataDir))
	if depth == nil {
		t.Fatal("inspect after the repair does not name the session rep-sub")
	}
	k, _ := strconv.Atoi(depth[1])
	if k == 0 || k >= n {
		t.Fatalf("%d messages queued after the repair, want the part logged before the damage (1 to %d)", k, n-1)
	}
	sub = connect3(t, b, "rep-sub", opts3{})
	if !sub.sessionPresent {
		t.Fatal("Session Present = 0: the session was logged before the damage")
	}
	for i, m := range sub.in.waitExactly(t, k) {
		if m.payload != strconv.Itoa(i)+pad {
			t.Fatalf("message %d is %.10q…, want the messages before the damage in order", i, m.payload)
		}
	}
	t.Logf("%d of %d messages logged before the damage in %s", k, n, filepath.Base(damaged))
}
