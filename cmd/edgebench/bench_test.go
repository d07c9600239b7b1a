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
	return config{FanInMsgs: 200, FanOutMsgs: 100, BacklogSessions: 5, BacklogMsgs: 150, IdleClients: 50,
		Window: 20, PayloadSize: 64, Timeout: 20 * time.Second, Quiet: 300 * time.Millisecond, Dialers: 4}
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
	all := scenarios()
	tiny := []scenario{
		{"fan-in-qos1 2x200", flow(2, 1, 1, func(c config) int { return c.FanInMsgs })},
		{"fan-out-qos0 1x100", flow(1, 3, 0, func(c config) int { return c.FanOutMsgs })},
		all[4], // backlog
		all[5], // idle
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
				switch sc.Name {
				case "idle":
					if r.IdleRSS == 0 || r.PeakRSS < r.IdleRSS {
						t.Errorf("idle RSS %d, peak %d: want 0 < idle <= peak", r.IdleRSS, r.PeakRSS)
					}
				case "backlog":
					// 5 sessions x 150 into 100-message queues: exactly 100 each, 50 dropped by policy.
					want := "5 of 5 sessions resumed; 100 to 100 of 150 messages each delivered"
					if r.Published != 750 || r.Received != 500 || !strings.HasPrefix(r.Note, want) {
						t.Errorf("published %d, received %d, note %q; want 750, 500, %q", r.Published, r.Received, r.Note, want)
					}
				case "fan-in-qos1 2x200":
					// Our broker slows publishers instead of dropping acknowledged messages.
					if spec.Name == "edgebroker" && r.Lost != 0 {
						t.Errorf("edgebroker lost %d of %d QoS 1 messages", r.Lost, r.Expected)
					}
					fallthrough
				default:
					if r.Published == 0 || r.Received == 0 || r.PubRate <= 0 || r.RecvRate <= 0 {
						t.Errorf("published %d received %d at %.0f/%.0f msgs/s: want all positive",
							r.Published, r.Received, r.PubRate, r.RecvRate)
					}
				}
			})
		}
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
	var b strings.Builder
	if err := report(&b, results); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"fan-in-qos0  edgebroker  ok            10        10     0    0             0         300          200   4.0 MiB\n",
		"fan-in-qos0  mosquitto   ok            10         7     3    0             0         100          100   8.0 MiB\n",
		"idle    edgebroker  not run\n",
		"idle    mosquitto   ok        1.0 MiB              1.5 KiB   2.0 MiB\n",
		"fan-in-qos0           3.00         2.00      0.50\n",
		"idle, edgebroker: edgebench: not run: no path",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
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
}

func TestValidate(t *testing.T) {
	if err := tinyConfig().validate(); err != nil {
		t.Errorf("tiny config rejected: %v", err)
	}
	for name, spoil := range map[string]func(*config){
		"no messages":   func(c *config) { c.FanInMsgs = 0 },
		"short payload": func(c *config) { c.PayloadSize = payloadHeader - 1 },
		"zero window":   func(c *config) { c.Window = 0 },
		"huge window":   func(c *config) { c.Window = 65536 },
		"no timeout":    func(c *config) { c.Timeout = 0 },
		"no idle":       func(c *config) { c.IdleClients = 0 },
	} {
		c := tinyConfig()
		spoil(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
