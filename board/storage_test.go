package board

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		magic    uint32
		fsType   string
		volatile bool
	}{
		{0x01021994, "tmpfs", true},
		{0x858458f6, "ramfs", true},
		{0xef53, "ext2/ext3/ext4", false},
		{0x72b6, "jffs2", false},
		{0x24051905, "ubifs", false},
		{0x794c7630, "overlay", false},
		{0x12345678, "0x12345678", false},
		{0, "0x00000000", false},
	}
	for _, tt := range tests {
		var s Storage
		classify(&s, tt.magic)
		if s.FSType != tt.fsType || s.Volatile != tt.volatile || s.Magic != tt.magic {
			t.Errorf("classify(%#x) = %q volatile %v magic %#x, want %q %v", tt.magic, s.FSType, s.Volatile, s.Magic, tt.fsType, tt.volatile)
		}
	}
}

func TestStorageWarning(t *testing.T) {
	s := Storage{Path: "/tmp/edgebroker", FSType: "tmpfs", Volatile: true}
	w := s.Warning()
	if !strings.HasPrefix(w, "board: data directory /tmp/edgebroker is on tmpfs") || strings.Contains(w, "\n") {
		t.Errorf("warning %q", w)
	}
	if w := (Storage{Path: "/var/lib/edgebroker", FSType: "ext2/ext3/ext4"}).Warning(); w != "" {
		t.Errorf("warning %q on a persistent file system", w)
	}
}
