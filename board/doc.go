// Package board knows the hardware the broker runs on: a small set of profiles, plain records
// of defaults for one class of board (memory budget, queue sizes, in-flight window, log segment
// size, fsync policy, GOMAXPROCS), and the detection that picks one for --board=auto.
//
// # Detection
//
// Detect reads, under a root directory ("/" in production, testdata/<fixture> in tests):
//
//   - proc/device-tree/model: the board name, NUL-terminated, on Raspberry Pis and other
//     device-tree systems (most ARM boards and many MIPS routers);
//   - proc/cpuinfo: Model (Raspberry Pi kernels), machine and "system type" (MIPS routers),
//     Hardware, "model name" or "cpu model", "CPU architecture", the processor count;
//   - proc/meminfo: MemTotal, which sizes the memory budget;
//   - etc/openwrt_release: its presence means OpenWrt.
//
// Any of them may be missing, and garbage in them is ignored; detection never fails because of
// their content. The profile chosen, and the rule that sizes the budget from RAM (BudgetFor),
// are documented on Detect and BudgetFor; Detection.Report prints both with every default they
// imply, for `edgebroker board`.
//
// # Storage
//
// CheckDataDir calls statfs(2) on the data directory and names its file system from the magic
// number. tmpfs and ramfs are volatile: the broker warns at start (Storage.Warning) that what
// it persists there will not survive a power cut, the classic mistake being a data directory
// under OpenWrt's /tmp. The Linux call lives in storage_linux.go; other systems build with a
// fallback that reports errors.ErrUnsupported.
//
// Profiles returns fresh records on every call: there is no package-level mutable state, so
// callers may change what they get.
package board
