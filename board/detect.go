package board

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Files Detect reads, relative to its root. Any of them may be missing.
const (
	modelFile   = "proc/device-tree/model" // NUL-terminated board name on device-tree systems
	cpuinfoFile = "proc/cpuinfo"
	meminfoFile = "proc/meminfo"
	openwrtFile = "etc/openwrt_release"
)

// maxFileSize caps what Detect reads of one file; a 256-core server's cpuinfo fits.
const maxFileSize = 1 << 20

// maxTextLen caps a string taken from a file, in bytes.
const maxTextLen = 128

// Detection is what Detect found out about the machine, and the profile it chose. Fields that
// could not be found are empty or zero.
type Detection struct {
	// Root is the directory the files were read under: "/" in production.
	Root string
	// Model names the board: the device-tree model, else cpuinfo's Model or machine line.
	Model string
	// SoC names the system on chip: cpuinfo's "system type" (MIPS) or Hardware line (ARM).
	SoC string
	// CPU names the processor: cpuinfo's "model name", "cpu model" (MIPS), or the ARM core
	// from its part number.
	CPU string
	// Arch is a hint at the instruction set: armv6, armv7, armv8, mips, x86 or x86-64.
	Arch string
	// CPUs is the number of processors cpuinfo lists.
	CPUs int
	// MemTotal is the RAM in bytes from /proc/meminfo's MemTotal.
	MemTotal int64
	// OpenWrt is true when /etc/openwrt_release exists.
	OpenWrt bool
	// Release and Target are OpenWrt's DISTRIB_DESCRIPTION and DISTRIB_TARGET.
	Release, Target string
	// Profile is the chosen profile, its MemoryLimit sized from MemTotal with BudgetFor when
	// MemTotal is known.
	Profile Profile
	// Reason says why Profile was chosen.
	Reason string
	// Warnings lists files that exist but could not be read. They do not stop detection.
	Warnings []string
}

// Detect reads the board model, CPU, RAM and OpenWrt release from the files under root ("/" in
// production, a fixture directory in tests) and chooses a profile:
//
//   - a Raspberry Pi, by its model: rpi-zero (Zero, Zero 2, Pi 1), rpi3 (Pi 2, 3, CM3) or
//     rpi4 (Pi 4, 400, 5, CM4, CM5); another Pi model gets generic;
//   - otherwise an OpenWrt system or a MIPS CPU: openwrt-64m up to 64 MiB of RAM (or when
//     the RAM is unknown), openwrt-128m above;
//   - otherwise generic.
//
// The chosen profile's memory limit is then sized from RAM with BudgetFor. Missing files are
// normal and garbage in them is ignored; Detect fails only when root is not a readable
// directory.
func Detect(root string) (Detection, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return Detection{}, fmt.Errorf("board: detect: %w", err)
	}
	if !fi.IsDir() {
		return Detection{}, fmt.Errorf("board: detect: %s is not a directory", root)
	}
	d := Detection{Root: root}
	if b, ok := d.read(modelFile); ok {
		d.Model = cleanText(b)
	}
	if b, ok := d.read(cpuinfoFile); ok {
		d.parseCPUInfo(b)
	}
	if b, ok := d.read(meminfoFile); ok {
		d.MemTotal = parseMemTotal(b)
	}
	if b, ok := d.read(openwrtFile); ok {
		d.OpenWrt = true
		d.parseOpenWrt(b)
	}
	name, reason := d.choose()
	d.Profile, err = Lookup(name)
	if err != nil {
		return Detection{}, err
	}
	d.Reason = reason
	if d.MemTotal > 0 {
		d.Profile.MemoryLimit = BudgetFor(d.MemTotal)
	}
	return d, nil
}

// read returns the first maxFileSize bytes of the file at rel under d.Root, and whether the
// file exists. A missing file is not an error; a file that exists but cannot be read adds a
// warning and gives no bytes.
func (d *Detection) read(rel string) (b []byte, exists bool) {
	f, err := os.Open(filepath.Join(d.Root, rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(f, maxFileSize))
		f.Close()
	}
	if err != nil {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: %v", rel, err))
		return nil, true
	}
	return b, true
}

// cleanText turns bytes from a file into a printable one-line string: cut at the first NUL
// (device-tree strings end with one), invalid UTF-8 and control characters replaced, spaces
// trimmed, at most maxTextLen bytes.
func cleanText(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, string(b))
	s = strings.TrimSpace(s)
	if len(s) > maxTextLen {
		cut := maxTextLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = strings.TrimSpace(s[:cut])
	}
	return s
}

// armCores names ARM Ltd. cores (CPU implementer 0x41) by cpuinfo's CPU part, for the 64-bit
// kernels that print no model name.
var armCores = map[string]string{
	"0xb76": "ARM1176",
	"0xc07": "Cortex-A7",
	"0xd03": "Cortex-A53",
	"0xd08": "Cortex-A72",
	"0xd0b": "Cortex-A76",
}

// parseCPUInfo reads the "key : value" lines of /proc/cpuinfo. The keys differ between
// architectures and kernel versions; unknown ones are ignored.
func (d *Detection) parseCPUInfo(b []byte) {
	var model, machine, archNum, implementer, part, isa string
	x86, lm := false, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFileSize)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if key == "flags" { // long: test it before cleanText cuts it
			lm = lm || slices.Contains(strings.Fields(value), "lm")
			continue
		}
		value = cleanText([]byte(value))
		setOnce := func(dst *string) {
			if *dst == "" {
				*dst = value
			}
		}
		switch key {
		case "processor":
			if _, err := strconv.Atoi(value); err == nil {
				d.CPUs++
			} else {
				setOnce(&d.CPU) // old ARM kernels: "Processor : ARMv6-compatible processor"
			}
		case "model name", "cpu model":
			setOnce(&d.CPU)
		case "model":
			// Raspberry Pi kernels print the board here; x86 prints a number.
			if _, err := strconv.Atoi(value); err != nil {
				setOnce(&model)
			}
		case "machine":
			setOnce(&machine)
		case "system type", "hardware":
			setOnce(&d.SoC)
		case "cpu architecture":
			setOnce(&archNum)
		case "cpu implementer":
			setOnce(&implementer)
		case "cpu part":
			setOnce(&part)
		case "isa":
			setOnce(&isa)
		case "vendor_id":
			x86 = true
		}
	}
	if d.Model == "" {
		d.Model = cmp.Or(model, machine)
	}
	if d.CPU == "" && implementer == "0x41" {
		d.CPU = armCores[part]
	}
	cpu := strings.ToLower(d.CPU)
	switch {
	case strings.Contains(cpu, "armv6") || strings.Contains(cpu, "(v6l)") || strings.Contains(cpu, "arm1176"):
		d.Arch = "armv6" // ARM1176 reports "CPU architecture: 7"
	case archNum == "8" || strings.EqualFold(archNum, "AArch64"):
		d.Arch = "armv8"
	case archNum != "" && archNum[0] >= '5' && archNum[0] <= '7':
		d.Arch = "armv" + archNum[:1]
	case strings.Contains(cpu, "mips") || strings.Contains(isa, "mips"):
		d.Arch = "mips"
	case x86 && lm:
		d.Arch = "x86-64"
	case x86:
		d.Arch = "x86"
	}
}

// parseMemTotal returns MemTotal from /proc/meminfo in bytes, or 0 if it is missing or
// garbled.
func parseMemTotal(b []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFileSize)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "MemTotal:" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		switch {
		case len(f) == 2:
			return n
		case f[2] == "kB" && n <= 1<<52:
			return n * kiB
		}
		return 0
	}
	return 0
}

// parseOpenWrt reads the shell assignments of /etc/openwrt_release, such as
// DISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'.
func (d *Detection) parseOpenWrt(b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxFileSize)
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		if len(value) >= 2 && (value[0] == '\'' || value[0] == '"') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		value = cleanText([]byte(value))
		switch key {
		case "DISTRIB_DESCRIPTION":
			d.Release = value
		case "DISTRIB_TARGET":
			d.Target = value
		case "DISTRIB_ARCH":
			if d.Arch == "" {
				d.Arch = archFromPackageArch(value)
			}
		}
	}
}

// archFromPackageArch maps OpenWrt's package architecture (mipsel_24kc, arm_cortex-a7_neon-
// vfpv4, aarch64_cortex-a53, x86_64) to an Arch hint.
func archFromPackageArch(a string) string {
	switch {
	case strings.HasPrefix(a, "mips"):
		return "mips"
	case strings.HasPrefix(a, "aarch64"):
		return "armv8"
	case strings.HasPrefix(a, "arm_arm1176"):
		return "armv6"
	case strings.HasPrefix(a, "arm_"):
		return "armv7"
	case strings.HasPrefix(a, "x86_64"):
		return "x86-64"
	case strings.HasPrefix(a, "i386"):
		return "x86"
	}
	return ""
}

// choose returns the name of the profile for d and the reason for it.
func (d *Detection) choose() (name, reason string) {
	if rest, ok := strings.CutPrefix(strings.ToLower(d.Model), "raspberry pi "); ok {
		f := append(strings.Fields(rest), "", "", "")
		if f[0] == "compute" && f[1] == "module" { // "Compute Module 4 Rev 1.0"; CM1 has no number
			f = append([]string{"cm" + f[2]}, f[3:]...)
		}
		switch f[0] {
		case "zero", "model", "cmrev":
			return "rpi-zero", "the board model names a Raspberry Pi Zero or Pi 1"
		case "2", "3", "cm3", "cm3+":
			return "rpi3", "the board model names a Raspberry Pi 2 or 3"
		case "4", "400", "5", "500", "cm4", "cm4s", "cm5":
			return "rpi4", "the board model names a Raspberry Pi 4 or 5"
		}
		return "generic", "the board model names a Raspberry Pi this version does not know"
	}
	if d.OpenWrt || d.Arch == "mips" {
		what := "an OpenWrt release file"
		if !d.OpenWrt {
			what = "a MIPS CPU"
		}
		switch ram := NominalRAM(d.MemTotal); {
		case ram == 0:
			return "openwrt-64m", what + " and unknown RAM (the smallest router profile is the safe choice)"
		case ram <= 64*miB:
			return "openwrt-64m", what + " and 64 MiB of RAM or less"
		}
		return "openwrt-128m", what + " and more than 64 MiB of RAM"
	}
	return "generic", "no known board"
}
