package main

import (
	"errors"
	"os"
	"testing"
)

// statusFixture is an abridged /proc/PID/status of a running mosquitto.
const statusFixture = `Name:	mosquitto
Umask:	0022
State:	S (sleeping)
Tgid:	4242
Pid:	4242
VmPeak:	   12016 kB
VmSize:	   11960 kB
VmLck:	       0 kB
VmHWM:	    6128 kB
VmRSS:	    5904 kB
RssAnon:	     780 kB
Threads:	1
`

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Mem
		wantErr bool
	}{
		{"full file", statusFixture, Mem{RSS: 5904 * 1024, Peak: 6128 * 1024}, false},
		{"order does not matter", "VmRSS:\t1 kB\nVmHWM:\t2 kB\n", Mem{RSS: 1024, Peak: 2048}, false},
		{"no trailing newline", "VmHWM: 0 kB\nVmRSS: 0 kB", Mem{}, false},
		{"VmRSS missing", "VmHWM:\t6128 kB\n", Mem{}, true},
		{"VmHWM missing", "VmRSS:\t5904 kB\n", Mem{}, true},
		{"unit missing", "VmHWM:\t6128\nVmRSS:\t5904 kB\n", Mem{}, true},
		{"wrong unit", "VmHWM:\t6128 MB\nVmRSS:\t5904 kB\n", Mem{}, true},
		{"not a number", "VmHWM:\tlots kB\nVmRSS:\t5904 kB\n", Mem{}, true},
		{"negative", "VmHWM:\t-1 kB\nVmRSS:\t5904 kB\n", Mem{}, true},
		{"overflow", "VmHWM:\t18014398509481984 kB\nVmRSS:\t1 kB\n", Mem{}, true},
		{"empty", "", Mem{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errStatus) {
					t.Fatalf("err = %v, want %v", err, errStatus)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseStatus = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReadMemSelf(t *testing.T) {
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS == 0 || m.Peak < m.RSS {
		t.Errorf("own memory = %+v: want 0 < RSS <= Peak", m)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add(statusFixture)
	f.Add("VmRSS:\t1 kB\nVmHWM:\t2 kB\n")
	f.Add("VmHWM:\t18014398509481984 kB\nVmRSS:\t1 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseStatus(s)
		if err != nil {
			if !errors.Is(err, errStatus) {
				t.Fatalf("error %v does not wrap %v", err, errStatus)
			}
			return
		}
		if m.RSS%1024 != 0 || m.Peak%1024 != 0 {
			t.Fatalf("%+v: kB values must give whole KiB", m)
		}
	})
}
