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
// disk use, recovery, memory, the ratios ours/mosquitto and the targets, then the notes
// and errors.
func report(w io.Writer, results []Result) error {
	flows := table{left: 3}
	flows.add("scenario", "broker", "status", "expected", "received", "lost", "dup", "out-of-order",
		"pub msgs/s", "recv msgs/s", "peak RSS")
	disk := table{left: 3}
	disk.add("disk", "broker", "status", "payload", "disk bytes", "bytes/msg", "limit", "syscw/s", "msgs/syscw",
		"fsyncs/s", "msgs/fsync")
	rec := table{left: 3}
	rec.add("recovery", "broker", "status", "published", "pub msgs/s", "stop", "to accept", "to CONNACK", "resumed",
		"expected", "received", "lost", "dup", "out-of-order", "peak RSS")
	mem := table{left: 3}
	mem.add("memory", "broker", "status", "idle RSS", "RSS per idle client", "peak RSS")
	for _, r := range results {
		name := label(r)
		switch {
		case r.Status == "not run" && r.Scenario == "idle":
			mem.add(name, r.Broker, r.Status)
		case r.Status == "not run" && r.Scenario == "recovery":
			rec.add(name, r.Broker, r.Status)
		case r.Status == "not run":
			flows.add(name, r.Broker, r.Status)
		case r.Scenario == "idle":
			mem.add(name, r.Broker, r.Status, mib(r.IdleRSS), kib(r.PerClientRSS), mib(r.PeakRSS))
		case r.Scenario == "recovery":
			rec.add(name, r.Broker, r.Status, u(r.Published), f(r.PubRate), secs(r.StopSecs),
				secs(r.ListenSecs), secs(r.RestartSecs), fmt.Sprintf("%d/%d", r.Resumed, r.Sampled), u(r.Expected), u(r.Received),
				u(r.Lost), u(r.Duplicates), u(r.OutOfOrder), mib(r.PeakRSS))
		default:
			flows.add(name, r.Broker, r.Status, u(r.Expected), u(r.Received), u(r.Lost), u(r.Duplicates),
				u(r.OutOfOrder), f(r.PubRate), f(r.RecvRate), mib(r.PeakRSS))
		}
		if r.Status != "not run" && r.DiskLimit > 0 {
			fsyncRate, perFsync := "", ""
			if r.Fsyncs > 0 {
				fsyncRate, perFsync = f(r.FsyncRate), ratio(float64(r.Received), float64(r.Fsyncs))
			}
			disk.add(name, r.Broker, r.Status, u(uint64(r.Payload)), u(r.DiskBytes), f(r.DiskPerMsg),
				u(r.DiskLimit), f(r.WriteCallRate), ratio(float64(r.Received), float64(r.WriteCalls)),
				fsyncRate, perFsync)
		}
	}
	ratios := table{left: 1}
	ratios.add("ours/mosquitto", "pub msgs/s", "recv msgs/s", "peak RSS", "idle RSS", "RSS per client", "restart")
	for _, p := range pairs(results) {
		ours, theirs := p[0], p[1]
		switch ours.Scenario {
		case "idle":
			ratios.add(label(ours), "", "", ratio(ours.PeakRSS, theirs.PeakRSS), ratio(ours.IdleRSS, theirs.IdleRSS),
				ratio(ours.PerClientRSS, theirs.PerClientRSS))
		case "recovery":
			ratios.add(label(ours), ratio(ours.PubRate, theirs.PubRate), ratio(ours.RecvRate, theirs.RecvRate),
				ratio(ours.PeakRSS, theirs.PeakRSS), "", "", ratio(ours.RestartSecs, theirs.RestartSecs))
		default:
			ratios.add(label(ours), ratio(ours.PubRate, theirs.PubRate), ratio(ours.RecvRate, theirs.RecvRate),
				ratio(ours.PeakRSS, theirs.PeakRSS))
		}
	}
	var b strings.Builder
	for _, t := range []table{flows, disk, rec, mem, ratios, targets(results)} {
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
	if len(disk.rows) > 1 {
		b.WriteString(diskNote)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// diskNote explains the disk table's columns.
const diskNote = `disk: bytes from /proc/PID/io (write_bytes - cancelled_write_bytes, counted per page dirtied) ` +
	`from the first PUBLISH to the end of the drain, per delivered message; limit = 2 x (payload + topic + 64). ` +
	`syscw counts every write-family call, sockets included. fsyncs are the broker's own count of its log's ` +
	`fsyncs ($SYS/broker/disk/fsyncs, edgebroker only), per second of the same span; msgs/fsync is delivered messages per fsync.
`

// targets checks the results against the targets, for the rows that ran to the end.
// With several rounds each measure is taken within each round (a ratio of two scenarios from
// the same round, run one after the other) and the median of the rounds is checked.
func targets(results []Result) table {
	t := table{left: 1}
	t.add("target", "measured", "bound", "met")
	var rounds []int
	for _, r := range results {
		if !slices.Contains(rounds, r.Round) {
			rounds = append(rounds, r.Round)
		}
	}
	type finder func(scenario, broker string) (Result, bool)
	check := func(name string, measure func(find finder) (float64, bool), bound float64, atLeast bool, format func(float64) string) {
		var vals []float64
		for _, round := range rounds {
			find := func(scenario, broker string) (Result, bool) {
				i := slices.IndexFunc(results, func(r Result) bool {
					return r.Scenario == scenario && r.Broker == broker && r.Round == round && r.Status == "ok"
				})
				if i < 0 {
					return Result{}, false
				}
				return results[i], true
			}
			if v, ok := measure(find); ok {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			return
		}
		measured := median(vals)
		switch {
		case len(vals) < len(rounds): // the others did not run to the end: said, not hidden
			name += fmt.Sprintf(" (median of %d of %d rounds)", len(vals), len(rounds))
		case len(vals) > 1:
			name += fmt.Sprintf(" (median of %d rounds)", len(vals))
		}
		met := measured <= bound
		if atLeast {
			met = measured >= bound
		}
		verdict := "NO"
		if met {
			verdict = "yes"
		}
		t.add(name, format(measured), format(bound), verdict)
	}
	two := func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
	check("edgebroker durable-qos1 / clean-qos1 recv msgs/s", func(find finder) (float64, bool) {
		durable, okD := find("durable-qos1", "edgebroker")
		clean, ok := find("clean-qos1", "edgebroker")
		return durable.RecvRate / clean.RecvRate, ok && okD && clean.RecvRate > 0
	}, 0.5, true, two)
	check("edgebroker / mosquitto (persistence on) durable-qos1 recv msgs/s", func(find finder) (float64, bool) {
		durable, okD := find("durable-qos1", "edgebroker")
		theirs, ok := find("durable-qos1", "mosquitto")
		return durable.RecvRate / theirs.RecvRate, ok && okD && theirs.RecvRate > 0
	}, 1, true, two)
	for _, scenario := range []string{"disk-bytes-64", "disk-bytes-1024"} {
		i := slices.IndexFunc(results, func(r Result) bool { return r.Scenario == scenario && r.Broker == "edgebroker" })
		if i < 0 {
			continue
		}
		check("edgebroker "+scenario+" disk bytes per message", func(find finder) (float64, bool) {
			r, ok := find(scenario, "edgebroker")
			return r.DiskPerMsg, ok && r.Received > 0
		}, float64(results[i].DiskLimit), false, f)
	}
	check("edgebroker recovery restart to CONNACK", func(find finder) (float64, bool) {
		r, ok := find("recovery", "edgebroker")
		return r.RestartSecs, ok
	}, 3, false, secs)
	return t
}

// median returns the middle of vals (the mean of the two middle ones for an even count).
func median(vals []float64) float64 {
	s := slices.Sorted(slices.Values(vals))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
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
			if a.Scenario == b.Scenario && a.Round == b.Round && a.Broker == "edgebroker" && b.Broker == "mosquitto" &&
				a.Status != "not run" && b.Status != "not run" {
				out = append(out, [2]Result{a, b})
			}
		}
	}
	return out
}

// label names a result's scenario in the tables, with its round when there are several.
func label(r Result) string {
	if r.Round > 0 {
		return r.Scenario + " #" + strconv.Itoa(r.Round)
	}
	return r.Scenario
}

// ratio formats a/b with two decimals, or "-" when b is zero.
func ratio[T uint64 | float64](a, b T) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(a)/float64(b), 'f', 2, 64)
}

func u(n uint64) string     { return strconv.FormatUint(n, 10) }
func f(x float64) string    { return strconv.FormatFloat(x, 'f', 0, 64) }
func mib(n uint64) string   { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func kib(n uint64) string   { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }
func secs(x float64) string { return fmt.Sprintf("%.2f s", x) }

// writeJSON writes the results to the file name, indented.
func writeJSON(name string, results []Result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}
