package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// report prints the results as aligned plain-text tables: deliveries per scenario and broker,
// memory, the ratios ours/mosquitto, then the notes and errors.
func report(w io.Writer, results []Result) error {
	flows := table{left: 3}
	flows.add("scenario", "broker", "status", "expected", "received", "lost", "dup", "out-of-order",
		"pub msgs/s", "recv msgs/s", "peak RSS")
	mem := table{left: 3}
	mem.add("memory", "broker", "status", "idle RSS", "RSS per idle client", "peak RSS")
	for _, r := range results {
		switch {
		case r.Status == "not run":
			if r.Scenario == "idle" {
				mem.add(r.Scenario, r.Broker, r.Status)
			} else {
				flows.add(r.Scenario, r.Broker, r.Status)
			}
		case r.Scenario == "idle":
			mem.add(r.Scenario, r.Broker, r.Status, mib(r.IdleRSS), kib(r.PerClientRSS), mib(r.PeakRSS))
		default:
			flows.add(r.Scenario, r.Broker, r.Status, u(r.Expected), u(r.Received), u(r.Lost), u(r.Duplicates),
				u(r.OutOfOrder), f(r.PubRate), f(r.RecvRate), mib(r.PeakRSS))
		}
	}
	ratios := table{left: 1}
	ratios.add("ours/mosquitto", "pub msgs/s", "recv msgs/s", "peak RSS", "idle RSS", "RSS per client")
	for _, p := range pairs(results) {
		ours, theirs := p[0], p[1]
		if ours.Scenario == "idle" {
			ratios.add("idle", "", "", ratio(ours.PeakRSS, theirs.PeakRSS), ratio(ours.IdleRSS, theirs.IdleRSS),
				ratio(ours.PerClientRSS, theirs.PerClientRSS))
			continue
		}
		ratios.add(ours.Scenario, ratio(ours.PubRate, theirs.PubRate), ratio(ours.RecvRate, theirs.RecvRate),
			ratio(ours.PeakRSS, theirs.PeakRSS))
	}
	var b strings.Builder
	for _, t := range []table{flows, mem, ratios} {
		if len(t.rows) > 1 {
			t.write(&b)
			b.WriteByte('\n')
		}
	}
	var said []string // each note once: a missing binary fails every scenario alike
	for _, r := range results {
		for _, s := range []string{r.Note, r.Error} {
			if line := r.Broker + ": " + s; s != "" && !slices.Contains(said, line) {
				said = append(said, line)
				fmt.Fprintf(&b, "%s, %s\n", r.Scenario, line)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// table is plain text in columns: the first left columns aligned left, the others right.
type table struct {
	left int
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	var width []int
	for _, row := range t.rows {
		for i, c := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(c))
		}
	}
	for _, row := range t.rows {
		var line strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len(c))
			if i > 0 {
				line.WriteString("  ")
			}
			if i < t.left {
				line.WriteString(c + pad)
			} else {
				line.WriteString(pad + c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// pairs returns, per scenario that both brokers ran, edgebroker's result and Mosquitto's.
func pairs(results []Result) [][2]Result {
	var out [][2]Result
	for _, a := range results {
		for _, b := range results {
			if a.Scenario == b.Scenario && a.Broker == "edgebroker" && b.Broker == "mosquitto" &&
				a.Status != "not run" && b.Status != "not run" {
				out = append(out, [2]Result{a, b})
			}
		}
	}
	return out
}

// ratio formats a/b with two decimals, or "-" when b is zero.
func ratio[T uint64 | float64](a, b T) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64)
}

func u(n uint64) string   { return strconv.FormatUint(n, 10) }
func f(x float64) string  { return strconv.FormatFloat(x, 'f', 0, 64) }
func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n uint64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }

// writeJSON writes the results to the file name, indented.
func writeJSON(name string, results []Result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}
