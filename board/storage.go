package board

import "fmt"

// Storage describes the file system holding the data directory.
type Storage struct {
	// Path is the directory that was examined.
	Path string
	// FSType names the file system (ext4, tmpfs, ubifs, ...), or gives its magic number in hex
	// when this package does not know it, or "unknown" where statfs is not supported.
	FSType string
	// Magic is statfs's f_type, the file system's magic number; 0 when unknown.
	Magic uint32
	// Volatile is true on tmpfs and ramfs, whose contents live in RAM: nothing the broker
	// persists there survives a reboot or a power cut.
	Volatile bool
	// Total and Available are the file system's size and the bytes an unprivileged writer may
	// still use; 0 when unknown.
	Total, Available int64
}

// Warning returns the line the broker logs at start when the data directory cannot keep its
// promise of durability, or "" when there is nothing to warn about.
func (s Storage) Warning() string {
	if !s.Volatile {
		return ""
	}
	return fmt.Sprintf("board: data directory %s is on %s, which lives in RAM: persistent sessions and acknowledged messages will not survive a reboot or power cut", s.Path, s.FSType)
}

// fsTypes names the statfs magic numbers of file systems met on gateways and servers; the
// values are those of the Linux kernel's include/uapi/linux/magic.h.
var fsTypes = map[uint32]struct {
	name     string
	volatile bool
}{
	0x01021994: {"tmpfs", true}, // TMPFS_MAGIC: OpenWrt's /tmp, /dev/shm, /run
	0x858458f6: {"ramfs", true}, // RAMFS_MAGIC
	0x0000ef53: {"ext2/ext3/ext4", false},
	0x9123683e: {"btrfs", false},
	0x58465342: {"xfs", false},
	0xf2f52010: {"f2fs", false},
	0x000072b6: {"jffs2", false}, // raw NOR flash
	0x24051905: {"ubifs", false}, // raw NAND flash
	0x73717368: {"squashfs", false},
	0x794c7630: {"overlay", false}, // OpenWrt's root: squashfs below, jffs2 or ubifs above
	0x00004d44: {"vfat", false},
	0x2011bab0: {"exfat", false},
	0x00006969: {"nfs", false},
	0x65735546: {"fuse", false},
	0xff534d42: {"cifs", false},
	0xfe534d42: {"smb2", false},
}

// classify fills in FSType and Volatile from the magic number.
func classify(s *Storage, magic uint32) {
	s.Magic = magic
	t, ok := fsTypes[magic]
	if !ok {
		s.FSType = fmt.Sprintf("0x%08x", magic)
		return
	}
	s.FSType, s.Volatile = t.name, t.volatile
}
