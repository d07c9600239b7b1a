package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyConfig keeps end-to-end runs to a fraction of a second.
func tinyConfig() config {
	return config{FanInMsgs: 200, FanOutMsgs: 100, BacklogSessions: 5, BacklogMsgs: 150, DrainWave: 2, IdleClients: 50,
		DurableMsgs: 50, DiskMsgs: 20, Window: 20, PayloadSize: 64, Timeout: 20 * time.Second,
		Quiet: 300 * time.Millisecond, Dialers: 4,
		Recovery: recoveryConfig{Sessions: 30, Msgs: 20, Payload: 256, Publishers: 4, Sample: 10, Timeout: 30 * time.Second}}
}

// named returns the scenario called name.
func named(t *testing.T, name string) scenario {
	t.Helper()
	sc, err := pick(scenarios(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sc[0]
}

// brokers returns the brokers the end-to-end test drives: edgebroker, built from this tree, and
// Mosquitto.
func brokers(t *testing.T) []brokerSpec {
	ours := filepath.Join(t.TempDir(), "edgebroker")
	out, err := exec.Command("go", "build", "-o", ours, "edgebroker/cmd/edgebroker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/edgebroker: %v\n%s", err, out)
	}
	return []brokerSpec{edgebrokerSpec(ours, nil), mosquitto(t)}
}

// mosquitto returns how to start Mosquitto, which the tests require (CI installs it).
func mosquitto(t *testing.T) brokerSpec {
	path := lookMosquitto()
	if path == "" {
		t.Fatal("mosquitto not found on PATH or in /usr/sbin: install Debian's mosquitto package")
	}
	return mosquittoSpec(path)
}

func TestEndToEnd(t *testing.T) {
	tiny := []scenario{
		{Name: "fan-in-qos1 2x200", run: flow(shape{pubs: 2, subs: 1, qos: 1, msgs: func(c config) int { return c.FanInMsgs }})},
		{Name: "fan-out-qos0 1x100", run: flow(shape{pubs: 1, subs: 3, qos: 0, msgs: func(c config) int { return c.FanOutMsgs }})},
		named(t, "backlog"),
		named(t, "idle"),
		named(t, "clean-qos1"),
		named(t, "durable-qos1"),
		named(t, "disk-bytes-1024"),
		named(t, "recovery"),
	}
	for _, spec := range brokers(t) {
		for _, sc := range tiny {
			t.Run(spec.Name+"/"+sc.Name, func(t *testing.T) {
				r := runScenario(context.Background(), spec, sc, tinyConfig(), t.TempDir())
				t.Logf("%+v", r)
				if r.Status != "ok" {
					t.Fatalf("status %s: %s", r.Status, r.Error)
				}
				if r.PeakRSS == 0 {
					t.Error("no peak RSS")
				}
				if r.Received+r.Lost != r.Expected || r.Duplicates != 0 || r.OutOfOrder != 0 || r.Malformed != 0 {
					t.Errorf("expected %d = received %d + lost %d, dup %d, out of order %d, malformed %d",
						r.Expected, r.Received, r.Lost, r.Duplicates, r.OutOfOrder, r.Malformed)
				}
				ours := spec.Name == "edgebroker"
				switch sc.Name {
				case "idle":
					if r.IdleRSS == 0 || r.PeakRSS < r.IdleRSS {
						t.Errorf("idle RSS %d, peak %d: want 0 < idle <= peak", r.IdleRSS, r.PeakRSS)
					}
				case "backlog":
					// 5 sessions x 150 into 100-message queues: exactly 100 each, 50 dropped by policy;
					// they come back in waves of 2.
					want := "5 of 5 sessions resumed, 2 at a time; 100 to 100 of 150 messages each delivered"
					if r.Published != 750 || r.Received != 500 || !strings.HasPrefix(r.Note, want) {
						t.Errorf("published %d, received %d, note %q; want 750, 500, %q", r.Published, r.Received, r.Note, want)
					}
				case "recovery":
					// 30 sessions x 20 messages; 10 of them reconnect after the restart.
					if r.Published != 600 || r.StopSecs <= 0 || r.ListenSecs <= 0 || r.RestartSecs < r.ListenSecs ||
						r.Sampled != 10 || r.Expected != 200 {
						t.Errorf("published %d, stop %.3fs, accept %.3fs, CONNACK %.3fs, sampled %d, expected %d; "+
							"want 600, > 0, > 0, >= accept, 10, 200",
							r.Published, r.StopSecs, r.ListenSecs, r.RestartSecs, r.Sampled, r.Expected)
					}
					if ours && (r.Resumed != 10 || r.Lost != 0) {
						t.Errorf("edgebroker after SIGKILL: %d of 10 sessions resumed, %d of 200 messages lost", r.Resumed, r.Lost)
					}
				case "fan-in-qos1 2x200", "clean-qos1", "durable-qos1", "disk-bytes-1024":
					// Our broker slows publishers instead of dropping acknowledged messages.
					if ours && r.Lost != 0 {
						t.Errorf("edgebroker lost %d of %d QoS 1 messages", r.Lost, r.Expected)
					}
					fallthrough
				default:
					if r.Published == 0 || r.Received == 0 || r.PubRate <= 0 || r.RecvRate <= 0 {
						t.Errorf("published %d received %d at %.0f/%.0f msgs/s: want all positive",
							r.Published, r.Received, r.PubRate, r.RecvRate)
					}
				}
				checkDisk(t, sc.Name, ours, r)
			})
		}
	}
}

// checkDisk checks the disk figures: present exactly for flows to persistent subscribers, and
// for our broker, which must write what it acknowledges, nonzero.
func checkDisk(t *testing.T, scenario string, ours bool, r Result) {
	t.Helper()
	persistent := scenario == "durable-qos1" || strings.HasPrefix(scenario, "disk-bytes-")
	if !persistent {
		if r.DiskLimit != 0 || r.Payload != 0 {
			t.Errorf("disk figures on a flow without persistent subscribers: limit %d, payload %d", r.DiskLimit, r.Payload)
		}
		return
	}
	// 16 publishers on topics like bench/3/15 (10 bytes).
	if want := uint64(2 * (r.Payload + 10 + 64)); r.DiskLimit != want || r.Payload == 0 {
		t.Errorf("payload %d, disk limit %d; want a payload and limit %d", r.Payload, r.DiskLimit, want)
	}
	if ours && (r.DiskBytes == 0 || r.DiskPerMsg <= 0 || r.WriteCalls == 0 || r.WriteCallRate <= 0) {
		t.Errorf("edgebroker wrote %d disk bytes (%.0f per message) in %d write calls (%.0f/s): want all positive",
			r.DiskBytes, r.DiskPerMsg, r.WriteCalls, r.WriteCallRate)
	}
	// Every PUBACK waited for an fsync, so there is at least one; group commit shares them,
	// so there are far fewer than messages.
	if ours && (r.Fsyncs == 0 || r.Fsyncs > r.Received || r.FsyncRate <= 0) {
		t.Errorf("edgebroker counted %d fsyncs (%.0f/s) for %d messages: want 1 to %d", r.Fsyncs, r.FsyncRate, r.Received, r.Received)
	}
	if !ours && (r.Fsyncs != 0 || r.FsyncRate != 0) {
		t.Errorf("mosquitto has fsync figures %d (%.0f/s): it publishes no such count", r.Fsyncs, r.FsyncRate)
	}
}

func TestNotRun(t *testing.T) {
	for _, path := range []string{"", t.TempDir() + "/missing"} {
		r := runScenario(context.Background(), mosquittoSpec(path), scenarios()[0], tinyConfig(), t.TempDir())
		if r.Status != "not run" || r.Received != 0 || r.PeakRSS != 0 {
			t.Errorf("path %q: %+v, want status not run and no numbers", path, r)
		}
	}
}

func TestReport(t *testing.T) {
	results := []Result{
		{Scenario: "fan-in-qos0", Broker: "edgebroker", Status: "ok", Expected: 10, Received: 10, PubRate: 300, RecvRate: 200, PeakRSS: 4 << 20},
		{Scenario: "fan-in-qos0", Broker: "mosquitto", Status: "ok", Expected: 10, Received: 7, Lost: 3, PubRate: 100, RecvRate: 100, PeakRSS: 8 << 20},
		{Scenario: "idle", Broker: "edgebroker", Status: "not run", Error: "edgebench: not run: no path"},
		{Scenario: "idle", Broker: "mosquitto", Status: "ok", IdleRSS: 1 << 20, PerClientRSS: 1536, PeakRSS: 2 << 20},
	}
	got := reportLacks(t, results,
		"fan-in-qos0  edgebroker  ok            10        10     0    0             0         300          200   4.0 MiB\n",
		"fan-in-qos0  mosquitto   ok            10         7     3    0             0         100          100   8.0 MiB\n",
		"idle    edgebroker  not run\n",
		"idle    mosquitto   ok        1.0 MiB              1.5 KiB   2.0 MiB\n",
		"fan-in-qos0           3.00         2.00      0.50\n",
		"idle, edgebroker: edgebench: not run: no path",
	)
	if strings.Contains(got, "disk") || strings.Contains(got, "recovery") || strings.Contains(got, "target") {
		t.Errorf("report has disk, recovery or target tables without such results:\n%s", got)
	}
}

func TestReportDurable(t *testing.T) {
	results := []Result{
		{Scenario: "clean-qos1", Broker: "edgebroker", Status: "ok", Expected: 10, Received: 10, RecvRate: 1000},
		{Scenario: "durable-qos1", Broker: "edgebroker", Status: "ok", Expected: 10, Received: 10, RecvRate: 400,
			Payload: 64, DiskBytes: 4096, DiskPerMsg: 409.6, DiskLimit: 276, WriteCalls: 4, WriteCallRate: 40,
			Fsyncs: 4, FsyncRate: 16},
		{Scenario: "durable-qos1", Broker: "mosquitto", Status: "ok", Expected: 10, Received: 9, Lost: 1, RecvRate: 200,
			Payload: 64, DiskLimit: 276, WriteCalls: 20, WriteCallRate: 200},
		{Scenario: "disk-bytes-1024", Broker: "edgebroker", Status: "ok", Expected: 10, Received: 10, RecvRate: 300,
			Payload: 1024, DiskBytes: 12288, DiskPerMsg: 1228.8, DiskLimit: 2196, WriteCalls: 3, WriteCallRate: 30},
		{Scenario: "recovery", Broker: "edgebroker", Status: "ok", Published: 1000, PubRate: 500, StopSecs: 0.01,
			ListenSecs: 0.5, RestartSecs: 1.5, Sampled: 2, Resumed: 2, Expected: 200, Received: 200, RecvRate: 100, PeakRSS: 3 << 20},
		{Scenario: "recovery", Broker: "mosquitto", Status: "ok", Published: 1000, PubRate: 1000, StopSecs: 2,
			ListenSecs: 2.5, RestartSecs: 3, Sampled: 2, Resumed: 1, Expected: 200, Received: 100, Lost: 100, RecvRate: 50, PeakRSS: 2 << 20},
	}
	reportLacks(t, results,
		"disk             broker      status  payload  disk bytes  bytes/msg  limit  syscw/s  msgs/syscw  fsyncs/s  msgs/fsync\n",
		"durable-qos1     edgebroker  ok           64        4096        410    276       40        2.50        16        2.50\n",
		"durable-qos1     mosquitto   ok           64           0          0    276      200        0.45\n",
		"disk-bytes-1024  edgebroker  ok         1024       12288       1229   2196       30        3.33\n",
		"recovery  edgebroker  ok           1000         500  0.01 s     0.50 s      1.50 s      2/2       200       200     0    0             0   3.0 MiB\n",
		"recovery  mosquitto   ok           1000        1000  2.00 s     2.50 s      3.00 s      1/2       200       100   100    0             0   2.0 MiB\n",
		"recovery              0.50         2.00      1.50                               0.50\n",
		"edgebroker durable-qos1 / clean-qos1 recv msgs/s                      0.40    0.50   NO\n",
		"edgebroker / mosquitto (persistence on) durable-qos1 recv msgs/s      2.00    1.00  yes\n",
		"edgebroker disk-bytes-1024 disk bytes per message                     1229    2196  yes\n",
		"edgebroker recovery restart to CONNACK                              1.50 s  3.00 s  yes\n",
		"fsyncs are the broker's own count",
	)
}

func TestTimeoutReportsPartialNumbers(t *testing.T) {
	cfg := tinyConfig()
	cfg.FanInMsgs, cfg.Timeout = 10_000_000, 500*time.Millisecond
	start := time.Now()
	r := runScenario(context.Background(), mosquitto(t), scenarios()[1], cfg, t.TempDir())
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("scenario with a %v timeout took %v", cfg.Timeout, took)
	}
	if r.Status != "timeout" || r.Published == 0 || r.Published >= 4*uint64(cfg.FanInMsgs) || r.PeakRSS == 0 {
		t.Errorf("%+v: want status timeout with partial numbers", r)
	}
}

func TestPick(t *testing.T) {
	all := scenarios()
	got, err := pick(all, "backlog,fan-in-qos0")
	if err != nil || len(got) != 2 || got[0].Name != "backlog" || got[1].Name != "fan-in-qos0" {
		t.Errorf("pick = %v, %v", got, err)
	}
	if got, err := pick(all, ""); err != nil || len(got) != len(all) {
		t.Errorf("pick of nothing = %d scenarios, %v; want all %d", len(got), err, len(all))
	}
	if _, err := pick(all, "fan-in-qos0,nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
	got, err = pick(all, "disk-bytes")
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := "disk-bytes-64 disk-bytes-1024"; err != nil || strings.Join(names, " ") != want {
		t.Errorf("pick of disk-bytes = %v, %v; want %s", names, err, want)
	}
	if got, err := pick(all, "disk-byte"); err == nil {
		t.Errorf("pick of disk-byte = %d scenarios; want an error: a prefix must end at a dash", len(got))
	}
	got, err = pick(all, "fan-in")
	if err != nil || len(got) != 2 || got[0].Name != "fan-in-qos0" || got[1].Name != "fan-in-qos1" {
		t.Errorf("pick of fan-in = %v, %v; want fan-in-qos0 and fan-in-qos1", got, err)
	}
}

func TestValidate(t *testing.T) {
	if err := tinyConfig().validate(); err != nil {
		t.Errorf("tiny config rejected: %v", err)
	}
	for name, spoil := range map[string]func(*config){
		"no messages":            func(c *config) { c.FanInMsgs = 0 },
		"short payload":          func(c *config) { c.PayloadSize = payloadHeader - 1 },
		"zero window":            func(c *config) { c.Window = 0 },
		"huge window":            func(c *config) { c.Window = 65536 },
		"no timeout":             func(c *config) { c.Timeout = 0 },
		"no idle":                func(c *config) { c.IdleClients = 0 },
		"no durable":             func(c *config) { c.DurableMsgs = 0 },
		"no disk":                func(c *config) { c.DiskMsgs = 0 },
		"no sessions":            func(c *config) { c.Recovery.Sessions = 0 },
		"no sample":              func(c *config) { c.Recovery.Sample = 0 },
		"short recovery payload": func(c *config) { c.Recovery.Payload = payloadHeader - 1 },
		"over the queue limit":   func(c *config) { c.Recovery.Msgs = queueLimit + 1 },
		"no recovery timeout":    func(c *config) { c.Recovery.Timeout = 0 },
	} {
		c := tinyConfig()
		spoil(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// With several rounds each row names its round, ours/mosquitto pairs rows of one round, and a
// target is checked on the median of the rounds' measures, each taken within its round.
func TestReportRounds(t *testing.T) {
	var results []Result
	for round, rates := range [][3]float64{{1000, 400, 100}, {800, 480, 200}, {1200, 660, 300}} {
		for i, sc := range []struct{ scenario, broker string }{
			{"clean-qos1", "edgebroker"}, {"durable-qos1", "edgebroker"}, {"durable-qos1", "mosquitto"},
		} {
			results = append(results, Result{Scenario: sc.scenario, Broker: sc.broker, Round: round + 1, Status: "ok",
				Expected: 10, Received: 10, RecvRate: rates[i]})
		}
	}
	got := reportLacks(t, results,
		"clean-qos1 #2    edgebroker  ok            10        10     0    0             0           0          800   0.0 MiB\n",
		"durable-qos1 #3  mosquitto   ok            10        10     0    0             0           0          300   0.0 MiB\n",
		"durable-qos1 #1           -         4.00         -\n",
		"durable-qos1 #3           -         2.20         -\n",
		// 0.40, 0.60 and 0.55: the median, not the ratio of any sums or of mixed rounds.
		"edgebroker durable-qos1 / clean-qos1 recv msgs/s (median of 3 rounds)                      0.55   0.50  yes\n",
		"edgebroker / mosquitto (persistence on) durable-qos1 recv msgs/s (median of 3 rounds)      2.40   1.00  yes\n",
	)
	if strings.Count(got, "durable-qos1 #") != 9 { // 6 flow rows, 3 ratio rows
		t.Errorf("want every round's rows once:\n%s", got)
	}
	// A round whose scenario did not run to the end is left out, and the target says so.
	results[4].Status = "timeout"
	reportLacks(t, results,
		"edgebroker durable-qos1 / clean-qos1 recv msgs/s (median of 2 of 3 rounds)                      0.48   0.50   NO\n")
}

// reportLacks reports results and fails the test for each wanted line the report lacks; it
// returns the report.
func reportLacks(t *testing.T, results []Result, want ...string) string {
	t.Helper()
	var b strings.Builder
	if err := report(&b, results); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("report lacks %q:\n%s", w, got)
		}
	}
	return got
}
