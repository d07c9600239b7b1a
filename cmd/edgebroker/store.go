package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"edgebroker/session/store"
	"edgebroker/wal"
)

// minCheckpointBytes is the least log a checkpoint waits for: smaller ones would rewrite the
// same bbolt pages over and over.
const minCheckpointBytes = 256 << 10

// leanBelow is the memory budget up to which the store keeps checkpoint.db out of the page
// cache (store.Options.Lean): routers and the smaller Pis.
const leanBelow = 128 << 20

// minCheckpointOps is the least number of operations a checkpoint transaction may apply.
const minCheckpointOps = 128

// storeOptions builds the store's options from the configuration.
func storeOptions(cfg *config, log *slog.Logger) store.Options {
	o := store.DefaultOptions(cfg.dataDir)
	o.WAL.Sync = cfg.fsync
	o.WAL.SyncInterval = cfg.fsyncEvery
	if cfg.segmentSize > 0 {
		o.WAL.SegmentSize = int64(cfg.segmentSize)
	}
	o.WAL.Logger = log
	o.Logger = log
	if cfg.memoryLimit > 0 {
		// A checkpoint holds what it applies in memory (twice, while bbolt writes it): keep it
		// a small part of the budget.
		o.CheckpointBytes = max(min(o.CheckpointBytes, int64(cfg.memoryLimit/32)), minCheckpointBytes)
		// bbolt holds every page a transaction touches, about a page per operation, and
		// writes them out again at commit: a sixty-fourth of the budget at most.
		o.CheckpointOps = max(int(cfg.memoryLimit/(64<<10)), minCheckpointOps)
		o.Lean = cfg.memoryLimit <= leanBelow
	}
	return o
}

// durabilityNote is the startup log's statement of the guarantee in force.
func durabilityNote(cfg *config) string {
	switch cfg.fsync {
	case wal.SyncAlways:
		return "fsync=always: a message is acknowledged only once it is on disk; nothing acknowledged is lost in a power cut"
	case wal.SyncInterval:
		return fmt.Sprintf("fsync=interval: acknowledgements do not wait for the disk; a power cut may lose up to %v of acknowledged messages", cfg.fsyncEvery)
	default:
		return "fsync=never (UNSAFE): acknowledgements do not wait for the disk; a power cut may lose any acknowledged message the OS had not written"
	}
}

// lockDataDir takes an exclusive lock on the data dir for the life of the process: two
// brokers on one log would corrupt it.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w (choose another with --data-dir)", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another edgebroker (stop it, or choose another --data-dir)", dir)
		}
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	return f, nil
}

// runInspect is `edgebroker inspect --data-dir DIR`: a read-only report of the store, safe
// beside a running broker or on a copied data dir.
func runInspect(args []string) error {
	dir, err := dataDirArg("inspect", args)
	if err != nil {
		return err
	}
	r, err := store.Inspect(dir)
	if err != nil {
		return err
	}
	fmt.Print(r.String())
	return nil
}

// runRepair is `edgebroker repair --data-dir DIR`: moves a damaged part of the log aside
// (as .broken files, never deleted) so that the broker starts again.
func runRepair(args []string) error {
	dir, err := dataDirArg("repair", args)
	if err != nil {
		return err
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	what, err := store.Repair(store.DefaultOptions(dir))
	if err != nil {
		return err
	}
	fmt.Println(what)
	return nil
}

// dataDirArg parses the --data-dir flag of a subcommand.
func dataDirArg(cmd string, args []string) (string, error) {
	cfg := &config{dataDir: "/var/lib/edgebroker"}
	fs := flagSetFor(cmd)
	fs.StringVar(&cfg.dataDir, "data-dir", cfg.dataDir, "`directory` of the broker's persistent state")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if _, err := os.Stat(cfg.dataDir); err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	return cfg.dataDir, nil
}
