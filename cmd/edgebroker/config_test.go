package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"edgebroker/session"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"512", 512, true},
		{"64KiB", 64 << 10, true},
		{"16MiB", 16 << 20, true},
		{"1GiB", 1 << 30, true},
		{"2MB", 2e6, true},
		{"3 M", 3 << 20, true},
		{"", 0, false},
		{"-1", 0, false},
		{"12XB", 0, false},
		{"1.5MiB", 0, false},
		{"99999999999999999999GiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseConfigFlags(t *testing.T) {
	cfg, err := parseConfig([]string{"--listen", "127.0.0.1:1", "--listen", "127.0.0.1:2",
		"--max-queued-messages", "7", "--queue-overflow", "drop-oldest", "--max-packet-size", "64KiB",
		"--session-expiry-max", "1h", "--max-keepalive", "30", "--queue-qos0"})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.broker
	if strings.Join(cfg.listen, ",") != "127.0.0.1:1,127.0.0.1:2" || o.MaxQueued != 7 || o.Overflow != session.DropOldest ||
		o.MaxPacketSize != 64<<10 || o.SessionExpiryMax != time.Hour || o.MaxKeepAlive != 30 || !o.QueueQoS0 {
		t.Fatalf("parsed %+v %+v", cfg, o)
	}
	if !cfg.set["max-queued-messages"] || cfg.set["max-inflight"] {
		t.Fatalf("set = %v", cfg.set)
	}
}

func TestParseConfigRejectsBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--queue-overflow", "drop-all"},
		{"--max-packet-size", "1TiB"},
		{"--max-keepalive", "70000"},
		{"--log-format", "xml"},
		{"--log-level", "loud"},
		{"--no-such-flag"},
		{"stray"},
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%v accepted", args)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error is not one line: %q", args, err)
		}
	}
}

func TestConfigFileAndFlagPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "edgebroker.conf")
	os.WriteFile(file, []byte("# comment\n\nmax-queued-messages 42\n--max-inflight 9\nqueue-overflow drop-oldest\n"), 0o600)
	cfg, err := parseConfig([]string{"--config", file, "--max-inflight", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.broker.MaxQueued != 42 || cfg.broker.MaxInflight != 3 || cfg.broker.Overflow != session.DropOldest {
		t.Fatalf("got queued %d inflight %d overflow %s", cfg.broker.MaxQueued, cfg.broker.MaxInflight, cfg.broker.Overflow)
	}
	if !cfg.set["max-queued-messages"] {
		t.Fatal("a setting from the file is not marked set, so a board profile would override it")
	}
	os.WriteFile(file, []byte("max-queued-messages lots\n"), 0o600)
	if _, err := parseConfig([]string{"--config", file}); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad file value: %v", err)
	}
	os.WriteFile(file, []byte("colour blue\n"), 0o600)
	if _, err := parseConfig([]string{"--config", file}); err == nil || !strings.Contains(err.Error(), "unknown setting") {
		t.Fatalf("unknown setting: %v", err)
	}
}

func TestApplyProfileKeepsUserSettings(t *testing.T) {
	cfg, err := parseConfig([]string{"--max-queued-messages", "5"})
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := resolveBoard("openwrt-64m")
	if err != nil {
		t.Fatal(err)
	}
	applyProfile(cfg, p)
	if cfg.broker.MaxQueued != 5 || cfg.broker.MaxInflight != p.MaxInflight || cfg.memoryLimit != uint64(p.MemoryLimit) {
		t.Fatalf("queued %d inflight %d memory %d", cfg.broker.MaxQueued, cfg.broker.MaxInflight, cfg.memoryLimit)
	}
}

// The runtime's soft limit sits board.RuntimeOverhead above the budget, and is off without one.
func TestRuntimeLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, tt := range []struct {
		budget uint64
		want   int64
	}{
		{16 << 20, 24 << 20},
		{64 << 20, 72 << 20},
		{0, math.MaxInt64},
	} {
		setRuntimeLimit(tt.budget)
		if got := debug.SetMemoryLimit(-1); got != tt.want {
			t.Errorf("budget %d: soft limit %d, want %d", tt.budget, got, tt.want)
		}
	}
}
