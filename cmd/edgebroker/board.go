package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"edgebroker/board"
)

// profileNames lists the profiles --board accepts.
func profileNames() string {
	var names []string
	for _, p := range board.Profiles() {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

// resolveBoard picks the hardware profile --board asks for: detected from this machine for
// "auto", else by name.
func resolveBoard(name string) (board.Profile, string, error) {
	if name != "auto" {
		p, err := board.Lookup(name)
		return p, "named by --board", err
	}
	d, err := board.Detect("/")
	if err != nil {
		return board.Profile{}, "", fmt.Errorf("board detection: %w (name a profile with --board)", err)
	}
	return d.Profile, d.Reason, nil
}

// applyProfile fills the settings the user left unset from the profile.
func applyProfile(cfg *config, p board.Profile) {
	if !cfg.set["max-queued-messages"] {
		cfg.broker.MaxQueued = p.MaxQueued
	}
	if !cfg.set["max-inflight"] {
		cfg.broker.MaxInflight = p.MaxInflight
	}
	if !cfg.set["memory-limit"] {
		cfg.memoryLimit = uint64(p.MemoryLimit)
	}
	if !cfg.set["wal-segment-size"] {
		cfg.segmentSize = uint64(p.SegmentSize)
	}
	if !cfg.set["max-queued-bytes"] {
		cfg.maxQueuedBytes = uint64(p.MaxQueuedBytes)
	}
	cfg.broker.MaxQueuedBytes = int64(cfg.maxQueuedBytes)
	cfg.broker.MemoryLimit = int64(cfg.memoryLimit)
}

// setRuntimeLimit sets the Go runtime's soft memory limit board.RuntimeOverhead above the budget.
// The budget limits the heap (the watcher in session/pressure.go spills and refuses work as
// the heap nears it); the soft limit counts the runtime's own memory as well. Set at the
// budget or under it, it left the collector no room: during a drain it ran 250 times a
// second and took half the CPU.
func setRuntimeLimit(budget uint64) {
	if budget == 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(int64(budget) + board.RuntimeOverhead)
}

// tuneRuntime sets the Go runtime's soft memory limit from the memory budget, and GOMAXPROCS
// from the profile unless the environment sets it.
func tuneRuntime(cfg *config, p board.Profile) {
	setRuntimeLimit(cfg.memoryLimit)
	if p.GOMAXPROCS > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(p.GOMAXPROCS)
	}
}

// warnVolatileDataDir logs when the data dir lives in RAM (tmpfs, ramfs): a common OpenWrt
// mistake, since /tmp is RAM there, and nothing persisted survives a power cut.
func warnVolatileDataDir(log *slog.Logger, dir string) {
	st, err := board.CheckDataDir(dir)
	if err != nil {
		log.Warn("cannot tell what file system holds the data dir", "data_dir", dir, "err", err)
		return
	}
	if w := st.Warning(); w != "" {
		log.Warn(w, "data_dir", dir, "fs", st.FSType)
	}
}

// runBoard is the `edgebroker board` subcommand: what was detected and every default it implies.
func runBoard(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("board: unexpected argument %q", args[0])
	}
	d, err := board.Detect("/")
	if err != nil {
		return err
	}
	fmt.Print(d.Report())
	return nil
}
