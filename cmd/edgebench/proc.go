package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errNotRun marks a broker that was not configured or whose binary is missing.
var errNotRun = errors.New("edgebench: not run")

// stopGrace is how long a broker may take to exit after SIGTERM before it gets SIGKILL.
const stopGrace = 5 * time.Second

// queueLimit is the per-session queue limit both brokers are given.
const queueLimit = 100

// brokerSpec says how to start one kind of broker.
type brokerSpec struct {
	Name string
	Path string
	// Crash is the signal the recovery scenario stops the broker with: SIGKILL when its
	// persistence is meant to survive a crash, SIGTERM when it saves only on shutdown.
	Crash syscall.Signal
	// Args returns the command line arguments to serve on addr, with dir as a private scratch
	// directory (for data and generated configuration). persist asks for the broker's
	// persistence to be on, for scenarios about persistent sessions.
	Args func(addr, dir string, persist bool) ([]string, error)
	// CounterArgs make the broker publish its $SYS counters every sysInterval, for scenarios
	// that read them, and FsyncTopic is the retained topic of its count of log fsyncs; both
	// empty when the broker has no such count.
	CounterArgs []string
	FsyncTopic  string
}

// sysInterval is how often our broker is asked to publish its $SYS counters: often enough that
// a value read a few intervals after the load stopped counts all of it.
const sysInterval = 100 * time.Millisecond

// edgebrokerSpec starts our broker with Mosquitto's queue limit plus extra (which carries the
// fsync policy: see the -edgebroker-args flag). Its persistence is always on.
func edgebrokerSpec(path string, extra []string) brokerSpec {
	return brokerSpec{Name: "edgebroker", Path: path, Crash: syscall.SIGKILL, Args: func(addr, dir string, _ bool) ([]string, error) {
		args := []string{"--listen", addr, "--data-dir", filepath.Join(dir, "data"),
			"--max-queued-messages", strconv.Itoa(queueLimit)}
		return append(args, extra...), nil
	}, CounterArgs: []string{"--sys-interval", sysInterval.String()}, FsyncTopic: "$SYS/broker/disk/fsyncs"}
}

// mosquittoSpec starts Mosquitto with a generated configuration matching our broker's limits.
// With persist its persistence is on, saving to dir/mosquitto.db at the default autosave
// interval and at shutdown.
func mosquittoSpec(path string) brokerSpec {
	return brokerSpec{Name: "mosquitto", Path: path, Crash: syscall.SIGTERM, Args: func(addr, dir string, persist bool) ([]string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("listener %s %s\nallow_anonymous true\nmax_queued_messages %d\n"+
			"max_inflight_messages 20\n", port, host, queueLimit)
		if persist {
			conf += fmt.Sprintf("persistence true\npersistence_location %s/\n", dir)
			if os.Geteuid() == 0 { // else it would switch to its own user, who cannot write in dir
				conf += "user root\n"
			}
		} else {
			conf += "persistence false\n"
		}
		name := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(name, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		return []string{"-c", name}, nil
	}}
}

// available reports errNotRun when the broker has no path or its binary does not exist.
func (s brokerSpec) available() error {
	if s.Path == "" {
		return fmt.Errorf("%w: no path given for %s", errNotRun, s.Name)
	}
	if _, err := os.Stat(s.Path); err != nil {
		return fmt.Errorf("%w: %s: %w", errNotRun, s.Name, err)
	}
	return nil
}

// proc is one running broker process that this program started. restart replaces the process
// in place: the fields below dir then describe the new one.
type proc struct {
	Name       string
	Addr       string // host:port it listens on
	dir        string
	path       string
	args       []string
	crash      syscall.Signal // see brokerSpec.Crash
	fsyncTopic string         // see brokerSpec.FsyncTopic
	PID        int
	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	err        error         // Wait's result, valid after done is closed
}

// startBroker starts the broker on a free loopback port in a fresh scratch directory under base
// and returns once it accepts TCP connections. Its output goes to broker.log in that directory.
func startBroker(ctx context.Context, s brokerSpec, base string, persist, counters bool) (*proc, error) {
	if err := s.available(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, s.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("edgebench: scratch dir: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args, err := s.Args(addr, dir, persist)
	if err != nil {
		return nil, fmt.Errorf("edgebench: %s arguments: %w", s.Name, err)
	}
	p := &proc{Name: s.Name, Addr: addr, dir: dir, path: s.Path, args: args, crash: s.Crash}
	if counters { // after the extra arguments, which must not make the counters stale
		p.args, p.fsyncTopic = append(p.args, s.CounterArgs...), s.FsyncTopic
	}
	if err := p.exec(); err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 10*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// exec starts the broker process, appending its output to broker.log in its directory.
func (p *proc) exec() error {
	logf, err := os.OpenFile(filepath.Join(p.dir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("edgebench: broker log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, p.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("edgebench: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.PID, p.cmd, p.done, p.err = cmd.Process.Pid, cmd, done, nil
	go func() { p.err = cmd.Wait(); close(done) }()
	return nil
}

// restart ends the broker with sig (SIGKILL after grace) and starts it again with the same
// arguments, directory and address. It returns as soon as the new process exists, with the
// time the old one took to exit and the time just before the new one was started.
func (p *proc) restart(sig syscall.Signal, grace time.Duration) (time.Duration, time.Time, error) {
	t0 := time.Now()
	p.end(sig, grace)
	start := time.Now()
	return start.Sub(t0), start, p.exec()
}

// waitReady polls until the broker accepts a TCP connection, exits, or the timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.Addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("edgebench: %s exited before accepting connections (%v): %s",
				p.Name, p.err, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("edgebench: %s not accepting connections on %s: %w", p.Name, p.Addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the broker's output, for error messages (the scratch
// directory holding the log is removed when the broker stops).
func (p *proc) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, "broker.log"))
	if err != nil {
		return err.Error()
	}
	const max = 600
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return strings.TrimSpace(string(b))
}

// mem reads the broker's memory counters.
func (p *proc) mem() (Mem, error) { return readMem(p.PID) }

// alive reports an error if the broker has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("edgebench: %s (pid %d) exited (%v): %s", p.Name, p.PID, p.err, p.logTail())
	default:
		return nil
	}
}

// io reads the broker's I/O counters.
func (p *proc) io() (IO, error) { return readIO(p.PID) }

// fsyncs returns how many fsyncs the broker has counted, once everything before the call is
// in the count (false when the broker publishes no such count).
func (p *proc) fsyncs(ctx context.Context) (uint64, bool, error) {
	if p.fsyncTopic == "" {
		return 0, false, nil
	}
	select { // the next publications of the counter include what came before the call
	case <-time.After(5 * sysInterval / 2):
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	v, err := readCounter(ctx, p.Addr, p.fsyncTopic)
	return v, err == nil, err
}

// end signals the broker by its PID with sig, waits up to grace for it to exit, then sends
// SIGKILL and waits for that.
func (p *proc) end(sig syscall.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop ends the broker (SIGTERM, then SIGKILL after stopGrace) and removes its scratch
// directory.
func (p *proc) stop() {
	p.end(syscall.SIGTERM, stopGrace)
	_ = os.RemoveAll(p.dir)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("edgebench: find a free port: %w", err)
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}
