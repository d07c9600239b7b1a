package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// errIO is the prefix of every error about /proc/PID/io.
var errIO = errors.New("edgebench: bad /proc io")

// IO is a process's I/O accounting as the kernel reports it in /proc/PID/io, summed over all
// its threads since it started.
type IO struct {
	SysCW      uint64 // syscw: write-family system calls (files and sockets alike)
	WriteBytes uint64 // write_bytes: bytes the process caused to be sent to storage
	// CancelledWriteBytes is cancelled_write_bytes: dirty page cache the process truncated or
	// deleted before it reached storage, already counted in WriteBytes.
	CancelledWriteBytes uint64
}

// Disk returns the bytes that reached, or will reach, storage: write_bytes less what was
// cancelled, as the kernel's documentation prescribes.
func (o IO) Disk() uint64 { return o.WriteBytes - min(o.WriteBytes, o.CancelledWriteBytes) }

// Sub returns the growth of each counter from before to o, or 0 for a counter that did not grow.
func (o IO) Sub(before IO) IO {
	return IO{
		SysCW:               o.SysCW - min(o.SysCW, before.SysCW),
		WriteBytes:          o.WriteBytes - min(o.WriteBytes, before.WriteBytes),
		CancelledWriteBytes: o.CancelledWriteBytes - min(o.CancelledWriteBytes, before.CancelledWriteBytes),
	}
}

// readIO reads the I/O counters of process pid from /proc/PID/io. Only the process's owner may
// read that file.
func readIO(pid int) (IO, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return IO{}, fmt.Errorf("edgebench: read I/O counters of pid %d: %w", pid, err)
	}
	return parseIO(string(b))
}

// parseIO extracts syscw, write_bytes and cancelled_write_bytes from the text of a /proc/PID/io
// file: lines of "name: decimal". Other lines are ignored; each of the three must appear once.
func parseIO(s string) (IO, error) {
	var o IO
	fields := map[string]*uint64{"syscw": &o.SysCW, "write_bytes": &o.WriteBytes,
		"cancelled_write_bytes": &o.CancelledWriteBytes}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		if seen[name] {
			return IO{}, fmt.Errorf("%w: %s twice", errIO, name)
		}
		seen[name] = true
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("%w: %s: %w", errIO, name, err)
		}
		*dst = n
	}
	if err := sc.Err(); err != nil {
		return IO{}, fmt.Errorf("%w: %w", errIO, err)
	}
	if len(seen) != len(fields) {
		return IO{}, fmt.Errorf("%w: syscw, write_bytes or cancelled_write_bytes missing", errIO)
	}
	return o, nil
}
