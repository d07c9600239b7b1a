package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The command-line clients from Debian's mosquitto-clients package, driven as a user would.

// cliVersions are the -V values of the command-line clients.
var cliVersions = []string{"mqttv31", "mqttv311", "mqttv5"}

// cliArgs are the connection arguments every command-line client gets.
func cliArgs(b *broker, version string, extra ...string) []string {
	return append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.port), "-V", version}, extra...)
}

// cliSub is a running subscriber, its output in out. Lines of received messages start with "MSG ".
type cliSub struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startSub starts the command-line subscriber with args, with debug output on so that the test
// can see which packets it received.
func startSub(t *testing.T, b *broker, version string, args ...string) *cliSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	s := &cliSub{out: &syncBuffer{}, done: make(chan error, 1)}
	args = append(cliArgs(b, version, "-d", "-F", "MSG %p"), args...)
	// The subscriber fully buffers its output into a pipe; stdbuf makes it line-buffered so
	// the test sees the SUBACK as it happens.
	s.cmd = exec.CommandContext(ctx, "stdbuf", append([]string{"-oL", "mosquitto_sub"}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto_sub %s output:\n%s", strings.Join(args, " "), s.out.String())
		}
	})
	return s
}

// subscribed waits until the subscriber has received its SUBACK.
func (s *cliSub) subscribed(t *testing.T) *cliSub {
	t.Helper()
	checkFor(t, waitLong, pollEvery, func() error {
		if !strings.Contains(s.out.String(), "received SUBACK") {
			return errors.New("subscription not acknowledged yet")
		}
		return nil
	})
	return s
}

// wait waits for the subscriber to exit successfully and returns the payloads it printed.
func (s *cliSub) wait(t *testing.T) []string {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("mosquitto_sub: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mosquitto_sub did not exit")
	}
	var got []string
	for line := range strings.Lines(s.out.String()) {
		if p, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "MSG "); ok {
			got = append(got, p)
		}
	}
	return got
}

// cliPub publishes each of msgs with the command-line publisher (one message per stdin line).
func cliPub(t *testing.T, b *broker, version, topic string, qos int, msgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_pub",
		cliArgs(b, version, "-t", topic, "-q", strconv.Itoa(qos), "-l")...)
	cmd.Stdin = strings.NewReader(strings.Join(msgs, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
}

// TestCLIRoundTrip: publish and subscribe with the command-line clients in each protocol version.
func TestCLIRoundTrip(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	for _, v := range cliVersions {
		t.Run(v, func(t *testing.T) {
			topic := "cli/rt/" + v
			want := seq(v, 0, 3)
			sub := startSub(t, b, v, "-t", topic, "-q", "1", "-C", "3", "-W", "20").subscribed(t)
			cliPub(t, b, v, topic, 1, want...)
			equalStrings(t, "received", sub.wait(t), want)
		})
	}
}

// TestCLIPersistentSession: `mosquitto_sub -c -i ID -q 1` subscribes and leaves; messages
// published meanwhile arrive when it comes back with the same id.
func TestCLIPersistentSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	for _, v := range cliVersions {
		t.Run(v, func(t *testing.T) {
			id := "cli-" + v
			topic := "cli/persist/" + v
			session := []string{"-c", "-i", id, "-q", "1", "-t", topic}
			if v == "mqttv5" {
				session = append(session, "-x", "60") // session expiry interval
			}
			// -E: exit as soon as the subscription is acknowledged.
			startSub(t, b, v, append(session, "-E")...).wait(t)
			want := seq(v, 0, 20)
			cliPub(t, b, v, topic, 1, want...)
			got := startSub(t, b, v, append(session, "-C", fmt.Sprint(len(want)), "-W", "20")...).wait(t)
			equalStrings(t, "queued for the offline session", got, want)
		})
	}
}
