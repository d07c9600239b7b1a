package board

import (
	"errors"
	"fmt"
	"strings"
)

// Sizes in bytes.
const (
	kiB = 1 << 10
	miB = 1 << 20
	giB = 1 << 30
)

// ErrUnknownProfile is returned, wrapped with the name and the valid names, by Lookup.
var ErrUnknownProfile = errors.New("board: unknown profile")

// Profile is the set of defaults the broker takes for one class of hardware. Flags given on the
// command line or in the config file override each field.
type Profile struct {
	// Name is what --board accepts: rpi-zero, rpi3, rpi4, openwrt-64m, openwrt-128m, generic.
	Name string
	// Description says which hardware the profile is for.
	Description string
	// MemoryLimit is the default --memory-limit in bytes: the broker's whole memory budget. In
	// a Detection it is sized from the RAM found (see BudgetFor); the record here is the value
	// for the profile's typical RAM, used when --board names the profile.
	MemoryLimit int64
	// MaxQueued is the default --max-queued-messages: the capacity of each session's queue.
	MaxQueued int
	// MaxQueuedBytes is the default --max-queued-bytes: the bytes of message bodies one
	// session's queue may hold.
	MaxQueuedBytes int64
	// MaxInflight is the default --max-inflight: unacknowledged QoS 1/2 messages per
	// connection and direction.
	MaxInflight int
	// SegmentSize is the default --wal-segment-size. Smaller segments are deleted sooner after a
	// checkpoint, which matters on a router's few MiB of flash, and replay faster.
	SegmentSize int64
	// Fsync is the default --fsync policy. It is "always" in every profile: the broker exists
	// to acknowledge only what survives a power cut (DESIGN.md section 3), and group commit
	// already keeps the cost to one flush per batch, not per message. Trading that guarantee
	// for speed or flash wear is the user's explicit choice (--fsync=interval or never), never
	// a silent consequence of the hardware detected.
	Fsync string
	// GOMAXPROCS is the value to set at start; 0 leaves the runtime's choice (one per CPU).
	// The 64 MB router profile sets 1: each extra P costs memory for its own caches and
	// buffers, and those routers have a single core anyway.
	GOMAXPROCS int
}

// Profiles returns every profile, smallest hardware first. The slice and the records are
// fresh on every call: changing them changes nothing else.
func Profiles() []Profile {
	return []Profile{
		{
			Name:           "openwrt-64m",
			Description:    "OpenWrt or other MIPS/ARM router with 64 MB of RAM and raw flash",
			MemoryLimit:    16 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 256 * kiB,
			MaxInflight:    20,
			SegmentSize:    1 * miB,
			Fsync:          "always",
			GOMAXPROCS:     1,
		},
		{
			Name:           "openwrt-128m",
			Description:    "OpenWrt or other MIPS/ARM router with 128 MB of RAM or more",
			MemoryLimit:    32 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 512 * kiB,
			MaxInflight:    20,
			SegmentSize:    2 * miB,
			Fsync:          "always",
		},
		{
			Name:           "rpi-zero",
			Description:    "Raspberry Pi Zero, Zero W, Zero 2 W and Pi 1: 512 MB, SD card",
			MemoryLimit:    64 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 1 * miB,
			MaxInflight:    20,
			SegmentSize:    4 * miB,
			Fsync:          "always",
		},
		{
			Name:           "rpi3",
			Description:    "Raspberry Pi 2, 3 and Compute Module 3: 1 GB, SD card or eMMC",
			MemoryLimit:    128 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 4 * miB,
			MaxInflight:    20,
			SegmentSize:    4 * miB,
			Fsync:          "always",
		},
		{
			Name:           "rpi4",
			Description:    "Raspberry Pi 4, 400, 5 and Compute Modules 4 and 5: 1 to 8 GB, SD card, eMMC or SSD",
			MemoryLimit:    512 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 8 * miB,
			MaxInflight:    20,
			SegmentSize:    8 * miB,
			Fsync:          "always",
		},
		{
			Name:           "generic",
			Description:    "any other machine; the memory limit is sized from its RAM",
			MemoryLimit:    64 * miB,
			MaxQueued:      100,
			MaxQueuedBytes: 8 * miB,
			MaxInflight:    20,
			SegmentSize:    8 * miB,
			Fsync:          "always",
		},
	}
}

// Lookup returns the profile with the given name, or an error wrapping ErrUnknownProfile that
// lists the valid names on one line.
func Lookup(name string) (Profile, error) {
	profiles := Profiles()
	names := make([]string, len(profiles))
	for i, p := range profiles {
		if p.Name == name {
			return p, nil
		}
		names[i] = p.Name
	}
	return Profile{}, fmt.Errorf("%w %q (valid: %s)", ErrUnknownProfile, name, strings.Join(names, ", "))
}

// Bounds of the memory budget BudgetFor gives.
const (
	minBudget = 8 * miB
	maxBudget = 1 * giB
)

// RuntimeOverhead is the room the Go runtime's soft memory limit leaves above the budget for
// the runtime's own memory: goroutine stacks, the collector's metadata, free spans not yet
// handed back. Beside the heap of a 16 MiB budget they measured about 6 MB; with 4 MiB of room
// the collector ran back to back while 2,000 clients drained (a third slower, for 0.5 MiB less
// peak RSS).
const RuntimeOverhead = 8 * miB

// BudgetFor returns the memory budget, in bytes, for a machine whose /proc/meminfo reports
// memTotal bytes of RAM, or 0 when memTotal is not positive (unknown).
//
// The rule, on the nominal RAM (see NominalRAM):
//
//	budget = max(min(RAM/4, 32 MiB), RAM/8), rounded down to a MiB, within [8 MiB, 1 GiB]
//
// A quarter of a small router's RAM (64 MB: 16 MiB; 128 MB: 32 MiB) leaves the rest to the
// kernel, the other daemons and the Go runtime's headroom above its soft limit. From 256 MB up,
// an eighth (512 MB: 64 MiB; 1 GB: 128 MiB; 4 GB: 512 MiB) leaves a gateway room for the
// applications it exists to run. Both terms grow with RAM, so more RAM never gives a smaller
// budget. The ceiling is what a 32-bit process can sensibly address and more than an edge
// broker needs; the floor is the least the broker runs in.
func BudgetFor(memTotal int64) int64 {
	ram := NominalRAM(memTotal)
	if ram <= 0 {
		return 0
	}
	budget := max(min(ram/4, 32*miB), ram/8)
	budget = budget / miB * miB
	return min(max(budget, minBudget), maxBudget)
}

// NominalRAM returns the RAM size a board is sold with, from the smaller MemTotal the kernel
// reports after its own and the GPU's reservations: MemTotal rounded up to a power of two when
// it is at least three quarters of it (a Pi Zero's 433 MiB counts as 512 MiB, a router's
// 58 MiB as 64 MiB), MemTotal itself otherwise. It returns 0 when memTotal is not positive.
func NominalRAM(memTotal int64) int64 {
	if memTotal <= 0 {
		return 0
	}
	if memTotal > 1<<62 {
		return memTotal
	}
	p := int64(1)
	for p < memTotal {
		p <<= 1
	}
	if memTotal >= p/4*3 {
		return p
	}
	return memTotal
}
