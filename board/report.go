package board

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report returns a human-readable, multi-line account of what was detected, which profile was
// chosen and why, and every default that profile implies, in the flag syntax the broker
// accepts. `edgebroker board` prints it.
func (d Detection) Report() string {
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	line := func(cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")) }

	line("detected under " + d.Root)
	line("  board model", unknown(d.Model))
	line("  system on chip", unknown(d.SoC))
	cpu := unknown(d.CPU)
	if d.CPUs > 0 {
		cpu += fmt.Sprintf(", %d processor(s)", d.CPUs)
	}
	line("  CPU", cpu)
	line("  instruction set", unknown(d.Arch))
	ram := "unknown (no MemTotal in /proc/meminfo)"
	if d.MemTotal > 0 {
		ram = ramSize(d.MemTotal) + " reported"
		if n := NominalRAM(d.MemTotal); n != d.MemTotal {
			ram += ", counted as " + ramSize(n)
		}
	}
	line("  RAM", ram)
	openwrt := "no"
	if d.OpenWrt {
		openwrt = "yes: " + unknown(d.Release)
		if d.Target != "" {
			openwrt += " (" + d.Target + ")"
		}
	}
	line("  OpenWrt", openwrt)

	p := d.Profile
	line("profile " + p.Name + ": " + p.Description)
	line("  chosen because " + d.Reason)
	line("defaults it implies (flags and the config file override each one)")
	budget := "the profile's value: the RAM is unknown"
	if d.MemTotal > 0 {
		budget = "max(min(RAM/4, 32MiB), RAM/8) of " + ramSize(NominalRAM(d.MemTotal)) +
			", within 8MiB..1GiB; the Go runtime's soft memory limit is " +
			formatSize(RuntimeOverhead) + " above it"
	}
	line("  --memory-limit", formatSize(p.MemoryLimit), budget)
	line("  --max-queued-messages", strconv.Itoa(p.MaxQueued))
	line("  --max-queued-bytes", formatSize(p.MaxQueuedBytes))
	line("  --max-inflight", strconv.Itoa(p.MaxInflight))
	line("  --wal-segment-size", formatSize(p.SegmentSize))
	line("  --fsync", p.Fsync, "acknowledged messages are on disk first and survive a power cut")
	procs := "left to the Go runtime (one per CPU)"
	if p.GOMAXPROCS > 0 {
		procs = strconv.Itoa(p.GOMAXPROCS)
	}
	line("  GOMAXPROCS", procs)
	for _, warn := range d.Warnings {
		line("warning: could not read " + warn)
	}
	w.Flush()
	return sb.String()
}

// unknown returns s, or "unknown" when s is empty.
func unknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ramSize writes a RAM size in whole units when it has them (512MiB), else in MiB with one
// decimal (433.0 MiB).
func ramSize(n int64) string {
	if n%miB == 0 {
		return formatSize(n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/miB)
}

// formatSize writes a byte count the way size flags accept it: with the largest binary unit
// (KiB, MiB, GiB) that divides it exactly, else in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{giB, "GiB"}, {miB, "MiB"}, {kiB, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
