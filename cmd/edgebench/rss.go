package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// errStatus is the prefix of every error about /proc/PID/status.
var errStatus = errors.New("edgebench: bad /proc status")

// Mem is a process's resident memory as the kernel reports it, in bytes.
type Mem struct {
	RSS  uint64 // VmRSS: resident now
	Peak uint64 // VmHWM: the high-water mark of VmRSS over the process's life
}

// readMem reads the memory counters of process pid from /proc/PID/status.
func readMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("edgebench: read memory of pid %d: %w", pid, err)
	}
	return parseStatus(string(b))
}

// parseStatus extracts VmRSS and VmHWM from the text of a /proc/PID/status file.
func parseStatus(s string) (Mem, error) {
	var m Mem
	var haveRSS, havePeak bool
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		n, err := parseKB(value)
		if err != nil {
			return Mem{}, fmt.Errorf("%w: %s: %w", errStatus, name, err)
		}
		if name == "VmRSS" {
			m.RSS, haveRSS = n, true
		} else {
			m.Peak, havePeak = n, true
		}
	}
	if !haveRSS || !havePeak {
		return Mem{}, fmt.Errorf("%w: VmRSS or VmHWM missing", errStatus)
	}
	return m, nil
}

// parseKB parses a status value such as "   1234 kB" into bytes.
func parseKB(v string) (uint64, error) {
	f := strings.Fields(v)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("want \"N kB\", got %q", strings.TrimSpace(v))
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<64-1)/1024 {
		return 0, fmt.Errorf("%d kB overflows", n)
	}
	return n * 1024, nil
}
