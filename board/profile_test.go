package board

import (
	"errors"
	"strings"
	"testing"
)

func TestProfiles(t *testing.T) {
	names := map[string]bool{}
	for _, p := range Profiles() {
		if names[p.Name] {
			t.Errorf("duplicate profile %s", p.Name)
		}
		names[p.Name] = true
		if p.Description == "" || p.MemoryLimit < minBudget || p.MaxQueued < 1 || p.MaxQueuedBytes < 1 ||
			p.MaxInflight < 1 || p.SegmentSize < 1*miB || p.GOMAXPROCS < 0 {
			t.Errorf("profile %+v has an empty or out-of-range field", p)
		}
		if p.Fsync != "always" {
			t.Errorf("profile %s: fsync %q, want always", p.Name, p.Fsync)
		}
		got, err := Lookup(p.Name)
		if err != nil || got != p {
			t.Errorf("Lookup(%s) = %+v, %v", p.Name, got, err)
		}
	}
	for _, want := range []string{"rpi-zero", "rpi3", "rpi4", "openwrt-64m", "openwrt-128m", "generic"} {
		if !names[want] {
			t.Errorf("no profile %s", want)
		}
	}
	// Fresh copies: changing one changes nothing else.
	ps := Profiles()
	ps[0].MemoryLimit = 1
	if Profiles()[0].MemoryLimit == 1 {
		t.Error("Profiles returned shared records")
	}
}

// TestProfileMemoryMatchesRule checks that each board profile's record agrees with the sizing
// rule for the RAM it describes, so --board=NAME and --board=auto agree on that board.
func TestProfileMemoryMatchesRule(t *testing.T) {
	ram := map[string]int64{"openwrt-64m": 64 * miB, "openwrt-128m": 128 * miB, "rpi-zero": 512 * miB,
		"rpi3": 1 * giB, "rpi4": 4 * giB}
	for name, r := range ram {
		p, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if b := BudgetFor(r); b != p.MemoryLimit {
			t.Errorf("%s: record %s, rule gives %s for %s", name, formatSize(p.MemoryLimit), formatSize(b), formatSize(r))
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("rpi9")
	if !errors.Is(err, ErrUnknownProfile) {
		t.Fatalf("Lookup(rpi9) = %v, want ErrUnknownProfile", err)
	}
	msg := err.Error()
	want := `board: unknown profile "rpi9" (valid: openwrt-64m, openwrt-128m, rpi-zero, rpi3, rpi4, generic)`
	if msg != want || strings.Contains(msg, "\n") {
		t.Errorf("error %q, want %q", msg, want)
	}
}

func TestBudgetFor(t *testing.T) {
	tests := []struct {
		memTotal int64
		nominal  int64
		budget   int64
	}{
		{0, 0, 0},
		{-1, 0, 0},
		{16 * miB, 16 * miB, 8 * miB},             // floor
		{30000 * kiB, 32 * miB, 8 * miB},          // not within 3/4 of 32 MiB
		{59712 * kiB, 64 * miB, 16 * miB},         // a 64 MB router: /4
		{122000 * kiB, 128 * miB, 32 * miB},       // a 128 MB router: /4
		{90 * miB, 90 * miB, 22 * miB},            // min(RAM/4, 32 MiB) still wins over RAM/8 = 25 MiB
		{256 * miB, 256 * miB, 32 * miB},          // the two terms meet
		{443116 * kiB, 512 * miB, 64 * miB},       // Pi Zero: /8
		{948000 * kiB, 1 * giB, 128 * miB},        // Pi 3
		{3000000 * kiB, 3000000 * kiB, 366 * miB}, // 1.9 GiB, not within 3/4 of 4 GiB: /8, rounded down
		{3884332 * kiB, 4 * giB, 512 * miB},       // Pi 4
		{8 * giB, 8 * giB, 1 * giB},               // ceiling reached
		{32617080 * kiB, 32 * giB, 1 * giB},       // ceiling
		{1 << 62, 1 << 62, 1 * giB},
		{1<<62 + 1, 1<<62 + 1, 1 * giB},
	}
	for _, tt := range tests {
		if n := NominalRAM(tt.memTotal); n != tt.nominal {
			t.Errorf("NominalRAM(%d) = %d, want %d", tt.memTotal, n, tt.nominal)
		}
		if b := BudgetFor(tt.memTotal); b != tt.budget {
			t.Errorf("BudgetFor(%d) = %s, want %s", tt.memTotal, formatSize(b), formatSize(tt.budget))
		}
	}
	// More RAM never gives less budget.
	prev := int64(0)
	for m := int64(1 * miB); m < 64*giB; m += m/64 + 1 {
		b := BudgetFor(m)
		if b < prev {
			t.Fatalf("BudgetFor(%d) = %d, less than %d for less RAM", m, b, prev)
		}
		prev = b
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1: "1", 1023: "1023", kiB: "1KiB", 1536: "1536",
		256 * kiB: "256KiB", miB: "1MiB", 3 * miB / 2: "1536KiB", giB: "1GiB", 5 * giB: "5GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
