package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	ours := flag.String("edgebroker", "", "path of the edgebroker binary (empty: not run)")
	oursArgs := flag.String("edgebroker-args", "--fsync=always", "extra arguments for edgebroker, space separated")
	mosq := flag.String("mosquitto", lookMosquitto(), "path of the mosquitto binary (empty: not run)")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (default all)")
	jsonOut := flag.String("json", "", "also write the results to this JSON file")
	rounds := flag.Int("rounds", 1, "times the chosen scenarios run, one round after the other; the targets take the median of the rounds")
	var cfg config
	flag.IntVar(&cfg.FanInMsgs, "fan-in-msgs", 50000, "messages per fan-in publisher")
	flag.IntVar(&cfg.FanOutMsgs, "fan-out-msgs", 20000, "messages of the fan-out publisher")
	flag.IntVar(&cfg.BacklogSessions, "backlog-sessions", 1000, "persistent sessions in the backlog scenario")
	flag.IntVar(&cfg.BacklogMsgs, "backlog-msgs", 150, "messages queued for each offline session")
	flag.IntVar(&cfg.DrainWave, "drain-wave", 0, "backlog sessions reconnecting at a time, each wave draining before the next (0: all at once)")
	flag.IntVar(&cfg.IdleClients, "idle-clients", 1000, "idle connections for the RSS-per-client measurement")
	flag.IntVar(&cfg.DurableMsgs, "durable-msgs", 5000, "messages per publisher in durable-qos1 and clean-qos1 (16 publishers)")
	flag.IntVar(&cfg.DiskMsgs, "disk-msgs", 2000, "messages per publisher in disk-bytes-64 and disk-bytes-1024 (16 publishers)")
	flag.IntVar(&cfg.Recovery.Sessions, "recovery-sessions", 10000, "persistent sessions in the recovery scenario")
	flag.IntVar(&cfg.Recovery.Msgs, "recovery-msgs", queueLimit, "messages queued for each of them (at most the queue limit)")
	flag.IntVar(&cfg.Recovery.Payload, "recovery-payload", 256, "payload size in the recovery scenario")
	flag.IntVar(&cfg.Recovery.Publishers, "recovery-publishers", 16, "publishers filling the recovery scenario's queues")
	flag.IntVar(&cfg.Recovery.Sample, "recovery-sample", 100, "sessions reconnected after the restart to check their messages")
	flag.DurationVar(&cfg.Recovery.Timeout, "recovery-timeout", 5*time.Minute, "wall-time bound of the recovery scenario")
	flag.IntVar(&cfg.Window, "window", 20, "QoS 1 messages a publisher keeps in flight")
	flag.IntVar(&cfg.PayloadSize, "payload", 64, "payload size in bytes (at least 12)")
	flag.IntVar(&cfg.Dialers, "dialers", 32, "connections set up at once")
	flag.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "wall-time bound of each scenario")
	flag.DurationVar(&cfg.Quiet, "quiet", time.Second, "silence after publishing that ends a scenario")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("edgebench: unexpected arguments %q", flag.Args())
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	if *rounds < 1 {
		return fmt.Errorf("edgebench: -rounds %d: want at least 1", *rounds)
	}
	chosen, err := pick(scenarios(), *only)
	if err != nil {
		return err
	}
	raiseFileLimit()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	base, err := os.MkdirTemp("", "edgebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)

	var results []Result
	for round := 1; round <= *rounds; round++ {
		for _, spec := range []brokerSpec{edgebrokerSpec(*ours, strings.Fields(*oursArgs)), mosquittoSpec(*mosq)} {
			for _, sc := range chosen {
				fmt.Fprintf(os.Stderr, "edgebench: %s %s ... ", spec.Name, sc.Name)
				t0 := time.Now()
				r := runScenario(ctx, spec, sc, cfg, base)
				fmt.Fprintf(os.Stderr, "%s in %.1fs\n", r.Status, time.Since(t0).Seconds())
				if *rounds > 1 {
					r.Round = round
				}
				results = append(results, r)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
	}
	if err := report(os.Stdout, results); err != nil {
		return err
	}
	if *jsonOut != "" {
		return writeJSON(*jsonOut, results)
	}
	return nil
}

// validate rejects sizes the scenarios cannot run with.
func (c config) validate() error {
	for _, v := range []struct {
		name string
		n    int
		min  int
	}{
		{"fan-in-msgs", c.FanInMsgs, 1}, {"fan-out-msgs", c.FanOutMsgs, 1},
		{"backlog-sessions", c.BacklogSessions, 1}, {"backlog-msgs", c.BacklogMsgs, 1}, {"drain-wave", c.DrainWave, 0},
		{"idle-clients", c.IdleClients, 1}, {"window", c.Window, 1}, {"payload", c.PayloadSize, payloadHeader},
		{"dialers", c.Dialers, 1}, {"durable-msgs", c.DurableMsgs, 1}, {"disk-msgs", c.DiskMsgs, 1},
		{"recovery-sessions", c.Recovery.Sessions, 1}, {"recovery-msgs", c.Recovery.Msgs, 1},
		{"recovery-payload", c.Recovery.Payload, payloadHeader}, {"recovery-publishers", c.Recovery.Publishers, 1},
		{"recovery-sample", c.Recovery.Sample, 1},
	} {
		if v.n < v.min {
			return fmt.Errorf("edgebench: -%s must be at least %d", v.name, v.min)
		}
	}
	if c.Window > 65535 {
		return errors.New("edgebench: -window must be at most 65535")
	}
	if c.Recovery.Msgs > queueLimit {
		return fmt.Errorf("edgebench: -recovery-msgs must be at most the queue limit %d", queueLimit)
	}
	if c.Timeout <= 0 || c.Quiet <= 0 || c.Recovery.Timeout <= 0 {
		return errors.New("edgebench: -timeout, -quiet and -recovery-timeout must be positive")
	}
	return nil
}

// pick returns the scenarios named in the comma-separated list, or all of them if it is empty.
// A name also selects every scenario whose name starts with it and a dash: disk-bytes selects
// disk-bytes-64 and disk-bytes-1024.
func pick(all []scenario, list string) ([]scenario, error) {
	if list == "" {
		return all, nil
	}
	var out []scenario
	for name := range strings.SplitSeq(list, ",") {
		n := len(out)
		for _, s := range all {
			if s.Name == name || strings.HasPrefix(s.Name, name+"-") {
				out = append(out, s)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("edgebench: unknown scenario %q", name)
		}
	}
	return out, nil
}

// lookMosquitto finds mosquitto on PATH or where Debian's package installs it; "" if neither.
func lookMosquitto() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	return ""
}

// raiseFileLimit lifts the soft limit on open files to the hard limit, for this process and the
// brokers it starts: the scenarios hold a thousand connections open. Failure only means the
// scenarios may hit the old limit, which they report.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
