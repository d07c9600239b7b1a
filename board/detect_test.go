package board

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDetectFixtures(t *testing.T) {
	tests := []struct {
		fixture  string
		profile  string
		budget   int64
		model    string
		soc      string
		cpu      string
		arch     string
		cpus     int
		memTotal int64
		openwrt  bool
	}{
		{
			fixture: "rpi-zero", profile: "rpi-zero", budget: 64 * miB, // 433 MiB counts as 512 MiB: /8
			model: "Raspberry Pi Zero W Rev 1.1", soc: "BCM2835",
			cpu: "ARMv6-compatible processor rev 7 (v6l)", arch: "armv6", cpus: 1,
			memTotal: 443116 * kiB,
		},
		{
			fixture: "rpi4", profile: "rpi4", budget: 512 * miB, // 3.7 GiB counts as 4 GiB: /8
			model: "Raspberry Pi 4 Model B Rev 1.4", cpu: "Cortex-A72", arch: "armv8", cpus: 4,
			memTotal: 3884332 * kiB,
		},
		{
			fixture: "openwrt-mips", profile: "openwrt-64m", budget: 16 * miB, // 58 MiB counts as 64 MiB: /4
			model: "TP-Link TL-WR842N v3", soc: "Qualcomm Atheros QCA9533 ver 2 rev 0",
			cpu: "MIPS 24Kc V7.4", arch: "mips", cpus: 1, memTotal: 59712 * kiB, openwrt: true,
		},
		{
			fixture: "x86-server", profile: "generic", budget: 1 * giB, // 32 GiB /8 is 4 GiB: the ceiling
			cpu: "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz", arch: "x86-64", cpus: 4,
			memTotal: 32617080 * kiB,
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			d, err := Detect(filepath.Join("testdata", tt.fixture))
			if err != nil {
				t.Fatal(err)
			}
			if d.Profile.Name != tt.profile || d.Profile.MemoryLimit != tt.budget {
				t.Errorf("profile %s with budget %s, want %s with %s (reason: %s)", d.Profile.Name,
					formatSize(d.Profile.MemoryLimit), tt.profile, formatSize(tt.budget), d.Reason)
			}
			got := []any{d.Model, d.SoC, d.CPU, d.Arch, d.CPUs, d.MemTotal, d.OpenWrt}
			want := []any{tt.model, tt.soc, tt.cpu, tt.arch, tt.cpus, tt.memTotal, tt.openwrt}
			if !slices.Equal(got, want) {
				t.Errorf("model, SoC, CPU, arch, CPUs, MemTotal, OpenWrt:\n got %q\nwant %q", got, want)
			}
			if len(d.Warnings) != 0 {
				t.Errorf("warnings: %q", d.Warnings)
			}
			// Every other default is the profile's own.
			p, err := Lookup(tt.profile)
			if err != nil {
				t.Fatal(err)
			}
			p.MemoryLimit = tt.budget
			if d.Profile != p {
				t.Errorf("profile %+v, want %+v", d.Profile, p)
			}
		})
	}
}

func TestDetectOpenWrtRelease(t *testing.T) {
	d, err := Detect(filepath.Join("testdata", "openwrt-mips"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Release != "OpenWrt 23.05.3 r23809-234f1a2efa" || d.Target != "ath79/generic" {
		t.Errorf("release %q, target %q", d.Release, d.Target)
	}
}

// writeTree creates the files under a temporary root and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectTrees(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		profile string
		budget  int64
		model   string
		arch    string
	}{
		{name: "nothing there", profile: "generic", budget: 64 * miB},
		{
			name:    "RAM only",
			files:   map[string]string{meminfoFile: "MemTotal: 3000000 kB\n"},
			profile: "generic", budget: 366 * miB, // 2.9 GiB is under 3/4 of 4 GiB: /8 of itself
		},
		{
			name:    "MemTotal in bytes",
			files:   map[string]string{meminfoFile: "MemTotal: 1073741824\n"},
			profile: "generic", budget: 128 * miB,
		},
		{
			name: "garbage",
			files: map[string]string{
				modelFile:   "\x00\xff\xfe",
				cpuinfoFile: "\x01\x02:\x03\n::::\nprocessor\n: :\n" + strings.Repeat("x", 70000),
				meminfoFile: "MemTotal: lots kB\nMemTotal: 5 kB\n",
			},
			profile: "generic", budget: 64 * miB,
		},
		{
			name:    "MemTotal overflows",
			files:   map[string]string{meminfoFile: "MemTotal: 99999999999999999 kB\n"},
			profile: "generic", budget: 64 * miB,
		},
		{
			name:    "MemTotal negative",
			files:   map[string]string{meminfoFile: "MemTotal: -5 kB\n"},
			profile: "generic", budget: 64 * miB,
		},
		{
			name:    "MemTotal with an unknown unit",
			files:   map[string]string{meminfoFile: "MemTotal: 5 MB\n"},
			profile: "generic", budget: 64 * miB,
		},
		{
			name:    "empty OpenWrt release, RAM unknown",
			files:   map[string]string{openwrtFile: ""},
			profile: "openwrt-64m", budget: 16 * miB,
		},
		{
			name:    "OpenWrt with 128 MB",
			files:   map[string]string{openwrtFile: "DISTRIB_ARCH='mipsel_24kc'\n", meminfoFile: "MemTotal: 122000 kB\n"},
			profile: "openwrt-128m", budget: 32 * miB, arch: "mips",
		},
		{
			name:    "OpenWrt with 256 MB",
			files:   map[string]string{openwrtFile: "DISTRIB_ARCH=\"aarch64_cortex-a53\"\n", meminfoFile: "MemTotal: 246000 kB\n"},
			profile: "openwrt-128m", budget: 32 * miB, arch: "armv8",
		},
		{
			name:    "MIPS without OpenWrt",
			files:   map[string]string{cpuinfoFile: "cpu model\t: MIPS 1004Kc V2.15\n", meminfoFile: "MemTotal: 30000 kB\n"},
			profile: "openwrt-64m", budget: 8 * miB, arch: "mips", // 29 MiB counts as 32 MiB: /4
		},
		{
			name:    "Pi 1 with an old kernel: model in cpuinfo only",
			files:   map[string]string{cpuinfoFile: "Processor\t: ARMv6-compatible processor rev 7 (v6l)\nModel\t: Raspberry Pi Model B Rev 2\n", meminfoFile: "MemTotal: 220000 kB\n"},
			profile: "rpi-zero", budget: 32 * miB, model: "Raspberry Pi Model B Rev 2", arch: "armv6",
		},
		{
			name:    "Pi Zero 2",
			files:   map[string]string{modelFile: "Raspberry Pi Zero 2 W Rev 1.0\x00", meminfoFile: "MemTotal: 437000 kB\n"},
			profile: "rpi-zero", budget: 64 * miB, model: "Raspberry Pi Zero 2 W Rev 1.0",
		},
		{
			name:    "Pi 3 B+",
			files:   map[string]string{modelFile: "Raspberry Pi 3 Model B Plus Rev 1.3\x00", meminfoFile: "MemTotal: 948000 kB\n"},
			profile: "rpi3", budget: 128 * miB, model: "Raspberry Pi 3 Model B Plus Rev 1.3",
		},
		{
			name:    "Compute Module 3+",
			files:   map[string]string{modelFile: "Raspberry Pi Compute Module 3 Plus Rev 1.0\x00"},
			profile: "rpi3", budget: 128 * miB, model: "Raspberry Pi Compute Module 3 Plus Rev 1.0",
		},
		{
			name:    "Compute Module 1",
			files:   map[string]string{modelFile: "Raspberry Pi Compute Module Rev 1.0\x00"},
			profile: "rpi-zero", budget: 64 * miB, model: "Raspberry Pi Compute Module Rev 1.0",
		},
		{
			name:    "Pi 5 with 8 GB",
			files:   map[string]string{modelFile: "Raspberry Pi 5 Model B Rev 1.0\x00", meminfoFile: "MemTotal: 8245000 kB\n"},
			profile: "rpi4", budget: 1 * giB, model: "Raspberry Pi 5 Model B Rev 1.0",
		},
		{
			name:    "Pi 400",
			files:   map[string]string{modelFile: "Raspberry Pi 400 Rev 1.0\x00"},
			profile: "rpi4", budget: 512 * miB, model: "Raspberry Pi 400 Rev 1.0",
		},
		{
			name:    "unknown Pi",
			files:   map[string]string{modelFile: "Raspberry Pi 9 Model Q\x00", meminfoFile: "MemTotal: 16000000 kB\n"},
			profile: "generic", budget: 1 * giB, model: "Raspberry Pi 9 Model Q",
		},
		{
			name:    "device tree wins over cpuinfo",
			files:   map[string]string{modelFile: "Raspberry Pi 4 Model B Rev 1.1\x00junk", cpuinfoFile: "Model\t: Raspberry Pi Zero W Rev 1.1\n"},
			profile: "rpi4", budget: 512 * miB, model: "Raspberry Pi 4 Model B Rev 1.1",
		},
		{
			name:    "control characters and long names",
			files:   map[string]string{modelFile: "Board\twith\nnewlines " + strings.Repeat("é", 100)},
			profile: "generic", budget: 64 * miB,
			model: "Board with newlines " + strings.Repeat("é", 54), // cut at 128 bytes on a rune boundary
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Detect(writeTree(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if d.Profile.Name != tt.profile || d.Profile.MemoryLimit != tt.budget {
				t.Errorf("profile %s with budget %s, want %s with %s (reason: %s)", d.Profile.Name,
					formatSize(d.Profile.MemoryLimit), tt.profile, formatSize(tt.budget), d.Reason)
			}
			if d.Model != tt.model || d.Arch != tt.arch {
				t.Errorf("model %q arch %q, want %q %q", d.Model, d.Arch, tt.model, tt.arch)
			}
			if len(d.Warnings) != 0 {
				t.Errorf("warnings: %q", d.Warnings)
			}
			if r := d.Report(); !strings.Contains(r, "profile "+tt.profile+": ") {
				t.Errorf("report does not name profile %s:\n%s", tt.profile, r)
			}
		})
	}
}

func TestDetectUnreadable(t *testing.T) {
	// A directory where a file should be cannot be read, even by root.
	root := writeTree(t, map[string]string{meminfoFile + "/x": "", openwrtFile + "/x": ""})
	d, err := Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Warnings) != 2 || !strings.HasPrefix(d.Warnings[0], meminfoFile+": ") {
		t.Errorf("warnings %q, want one each for %s and %s", d.Warnings, meminfoFile, openwrtFile)
	}
	if !d.OpenWrt || d.Profile.Name != "openwrt-64m" {
		t.Errorf("OpenWrt %v, profile %s: an unreadable release file still marks OpenWrt", d.OpenWrt, d.Profile.Name)
	}
	if r := d.Report(); !strings.Contains(r, "warning: could not read "+meminfoFile) {
		t.Errorf("report lacks the warning:\n%s", r)
	}
}

func TestDetectBadRoot(t *testing.T) {
	if _, err := Detect(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing root: %v, want fs.ErrNotExist", err)
	}
	file := filepath.Join("testdata", "rpi4", meminfoFile)
	if _, err := Detect(file); err == nil || !strings.HasPrefix(err.Error(), "board: ") {
		t.Errorf("root that is a file: %v, want a board: error", err)
	}
}

func TestReport(t *testing.T) {
	d, err := Detect(filepath.Join("testdata", "openwrt-mips"))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Report()
	t.Logf("\n%s", r)
	r = spaces.ReplaceAllString(r, " ") // the column widths are tabwriter's business
	for _, want := range []string{
		"board model TP-Link TL-WR842N v3\n",
		"system on chip Qualcomm Atheros QCA9533 ver 2 rev 0\n",
		"CPU MIPS 24Kc V7.4, 1 processor(s)\n",
		"instruction set mips\n",
		"RAM 58.3 MiB reported, counted as 64MiB\n",
		"OpenWrt yes: OpenWrt 23.05.3 r23809-234f1a2efa (ath79/generic)\n",
		"profile openwrt-64m: ",
		"chosen because an OpenWrt release file and 64 MiB of RAM or less\n",
		"--memory-limit 16MiB max(min(RAM/4, 32MiB), RAM/8) of 64MiB, within 8MiB..1GiB; the Go runtime's soft memory limit is 8MiB above it\n",
		"--max-queued-messages 100\n",
		"--max-queued-bytes 256KiB\n",
		"--max-inflight 20\n",
		"--wal-segment-size 1MiB\n",
		"--fsync always ",
		"GOMAXPROCS 1\n",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(r, "warning") {
		t.Error("report has a warning")
	}

	d, err = Detect(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r = spaces.ReplaceAllString(d.Report(), " ")
	for _, want := range []string{
		"board model unknown\n",
		"RAM unknown (no MemTotal in /proc/meminfo)\n",
		"OpenWrt no\n",
		"profile generic: ",
		"chosen because no known board\n",
		"--memory-limit 64MiB the profile's value: the RAM is unknown\n",
		"GOMAXPROCS left to the Go runtime (one per CPU)\n",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("report of an empty root lacks %q:\n%s", want, r)
		}
	}
	d, err = Detect(writeTree(t, map[string]string{meminfoFile: "MemTotal: 3000000 kB\n"}))
	if err != nil {
		t.Fatal(err)
	}
	r = spaces.ReplaceAllString(d.Report(), " ")
	for _, want := range []string{"RAM 2929.7 MiB reported\n", "--memory-limit 366MiB max(min(RAM/4, 32MiB), RAM/8) of 2929.7 MiB,"} {
		if !strings.Contains(r, want) {
			t.Errorf("report of 3000000 kB lacks %q:\n%s", want, r)
		}
	}
}

// FuzzParsers feeds arbitrary bytes to every file parser: none may panic, and what they return
// must stay printable and in range.
func FuzzParsers(f *testing.F) {
	for _, fixture := range []string{"rpi-zero", "rpi4", "openwrt-mips", "x86-server"} {
		for _, name := range []string{modelFile, cpuinfoFile, meminfoFile, openwrtFile} {
			if b, err := os.ReadFile(filepath.Join("testdata", fixture, name)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Detection{Model: cleanText(b)}
		d.parseCPUInfo(b)
		d.parseOpenWrt(b)
		if m := parseMemTotal(b); m < 0 {
			t.Errorf("MemTotal %d", m)
		}
		for _, s := range []string{d.Model, d.SoC, d.CPU, d.Arch, d.Release, d.Target} {
			if len(s) > maxTextLen || strings.ContainsAny(s, "\x00\n\r\t") || !utf8.ValidString(s) {
				t.Errorf("unclean text %q", s)
			}
		}
		if d.CPUs < 0 {
			t.Errorf("CPUs %d", d.CPUs)
		}
	})
}

var spaces = regexp.MustCompile(` +`)
