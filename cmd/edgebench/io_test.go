package main

import (
	"errors"
	"os"
	"testing"
)

// ioFixture is the /proc/PID/io of a broker that has written a little to disk.
const ioFixture = "rchar: 1093541\n" + // bytes read by any read-family call (ignored)
	"wchar: 20853326\n" + // bytes passed to write-family calls (ignored)
	"syscr: 5231\n" + // read-family calls (ignored)
	"syscw: 171230\n" + // write-family calls
	"read_bytes: 0\n" + // bytes fetched from storage (ignored)
	"write_bytes: 9437184\n" + // bytes sent to storage, counted when a page is dirtied
	"cancelled_write_bytes: 4096\n" // dirty pages dropped by truncate or unlink

func TestParseIO(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    IO
		wantErr bool
	}{
		{"full file", ioFixture, IO{SysCW: 171230, WriteBytes: 9437184, CancelledWriteBytes: 4096}, false},
		{"only the three, any order", "cancelled_write_bytes: 0\nwrite_bytes: 2\nsyscw: 1", IO{SysCW: 1, WriteBytes: 2}, false},
		{"largest value", "syscw: 18446744073709551615\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
			IO{SysCW: 1<<64 - 1}, false},
		{"syscw missing", "write_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"write_bytes missing", "syscw: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"cancelled missing", "syscw: 1\nwrite_bytes: 1\n", IO{}, true},
		{"twice", "syscw: 1\nsyscw: 2\nwrite_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"not a number", "syscw: many\nwrite_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"negative", "syscw: -1\nwrite_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"overflow", "syscw: 18446744073709551616\nwrite_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"unit", "syscw: 1 kB\nwrite_bytes: 1\ncancelled_write_bytes: 0\n", IO{}, true},
		{"empty", "", IO{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIO(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errIO) {
					t.Fatalf("err = %v, want %v", err, errIO)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseIO = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestIOArithmetic(t *testing.T) {
	before := IO{SysCW: 10, WriteBytes: 8192, CancelledWriteBytes: 0}
	after := IO{SysCW: 25, WriteBytes: 20480, CancelledWriteBytes: 4096}
	if got, want := after.Sub(before), (IO{SysCW: 15, WriteBytes: 12288, CancelledWriteBytes: 4096}); got != want {
		t.Errorf("Sub = %+v, want %+v", got, want)
	}
	if got := after.Sub(before).Disk(); got != 8192 {
		t.Errorf("Disk = %d, want 8192", got)
	}
	if got := before.Sub(after); got != (IO{}) {
		t.Errorf("shrinking counters gave %+v, want zeros", got)
	}
	if got := (IO{WriteBytes: 1, CancelledWriteBytes: 2}).Disk(); got != 0 {
		t.Errorf("Disk with more cancelled than written = %d, want 0", got)
	}
}

func TestReadIOSelf(t *testing.T) {
	before, err := readIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	name := t.TempDir() + "/f"
	if err := os.WriteFile(name, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := readIO(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.SysCW <= before.SysCW {
		t.Errorf("syscw %d -> %d after a write: want growth", before.SysCW, after.SysCW)
	}
}

func FuzzParseIO(f *testing.F) {
	f.Add(ioFixture)
	f.Add("cancelled_write_bytes: 0\nwrite_bytes: 2\nsyscw: 1")
	f.Add("syscw: 1\nsyscw: 2\nwrite_bytes: 1\ncancelled_write_bytes: 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseIO(s)
		if err != nil {
			if !errors.Is(err, errIO) {
				t.Fatalf("error %v does not wrap %v", err, errIO)
			}
			return
		}
		if o.Disk() > o.WriteBytes {
			t.Fatalf("%+v: Disk %d exceeds write_bytes", o, o.Disk())
		}
	})
}
