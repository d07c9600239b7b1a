package waltest_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"

	"edgebroker/wal/waltest"
)

func TestCrashKeepsSyncedAndAPrefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sawTorn, sawLostEntry := false, false
	for range 200 {
		m := waltest.NewMemFS()
		if err := m.MkdirAll("/d", 0o755); err != nil {
			t.Fatal(err)
		}
		// a: created, written, synced, directory synced; then more bytes, not synced.
		a, err := m.OpenFile("/d/a", os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		a.Write([]byte("synced|"))
		a.Sync()
		m.SyncDir("/d")
		a.Write([]byte("unsynced"))
		// b: created and synced, but its directory entry never was.
		b, _ := m.OpenFile("/d/b", os.O_WRONLY|os.O_CREATE, 0o644)
		b.Write([]byte("b"))
		b.Sync()
		m.Crash(rng)
		if _, err := a.Write([]byte("x")); !errors.Is(err, waltest.ErrStale) {
			t.Fatalf("write to a file opened before the crash: %v", err)
		}
		got := m.Snapshot("/d/a")
		if !bytes.HasPrefix([]byte("synced|unsynced"), got) || len(got) < len("synced|") {
			t.Fatalf("a after crash = %q", got)
		}
		sawTorn = sawTorn || (len(got) > len("synced|") && len(got) < len("synced|unsynced"))
		sawLostEntry = sawLostEntry || m.Snapshot("/d/b") == nil
	}
	if !sawTorn || !sawLostEntry {
		t.Fatalf("200 crashes never tore a write (%v) or lost an unsynced entry (%v)", sawTorn, sawLostEntry)
	}
}

func TestFaultFSFailsTheKthOperation(t *testing.T) {
	m := waltest.NewMemFS()
	m.MkdirAll("/d", 0o755)
	f := waltest.NewFaultFS(m)
	f.FailAt(2, syscall.ENOSPC, true)
	file, err := f.OpenFile("/d/a", os.O_WRONLY|os.O_CREATE, 0o644) // operation 1
	if err != nil {
		t.Fatal(err)
	}
	if n, err := file.Write([]byte("abcd")); n != 2 || !errors.Is(err, syscall.ENOSPC) { // 2
		t.Fatalf("Write = %d, %v; want half written and ENOSPC", n, err)
	}
	if err := file.Sync(); !errors.Is(err, syscall.ENOSPC) { // 3: sticky
		t.Fatalf("Sync after the fault: %v", err)
	}
	f.Heal()
	if _, err := file.Write([]byte("ef")); err != nil {
		t.Fatal(err)
	}
	if got := m.Snapshot("/d/a"); string(got) != "abef" {
		t.Fatalf("file = %q", got)
	}
}

func TestCopyDirKeepsFilesDurably(t *testing.T) {
	m := waltest.NewMemFS()
	if err := m.WriteFile("/a/x", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := m.CopyDir("/a", "/b"); err != nil {
		t.Fatal(err)
	}
	if err := m.CopyDir("/missing", "/c"); err != nil {
		t.Fatalf("a missing source is not an error: %v", err)
	}
	m.Crash(rand.New(rand.NewPCG(1, 2)))
	if got := string(m.Snapshot("/b/x")); got != "one" {
		t.Fatalf("copied file after a crash: %q", got)
	}
}
