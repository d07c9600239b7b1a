package board

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMagicNumbers checks the table against the kernel's constants as the unix package has
// them, so that a typo in a magic number cannot hide.
func TestMagicNumbers(t *testing.T) {
	for magic, want := range map[uint32]string{
		unix.TMPFS_MAGIC: "tmpfs", unix.RAMFS_MAGIC: "ramfs", unix.EXT4_SUPER_MAGIC: "ext2/ext3/ext4",
		unix.BTRFS_SUPER_MAGIC: "btrfs", unix.XFS_SUPER_MAGIC: "xfs", unix.F2FS_SUPER_MAGIC: "f2fs",
		unix.JFFS2_SUPER_MAGIC: "jffs2", unix.SQUASHFS_MAGIC: "squashfs",
		unix.OVERLAYFS_SUPER_MAGIC: "overlay", unix.MSDOS_SUPER_MAGIC: "vfat",
		unix.EXFAT_SUPER_MAGIC: "exfat", unix.NFS_SUPER_MAGIC: "nfs", unix.FUSE_SUPER_MAGIC: "fuse",
		unix.CIFS_SUPER_MAGIC: "cifs", unix.SMB2_SUPER_MAGIC: "smb2",
	} {
		if got := fsTypes[magic].name; got != want {
			t.Errorf("magic %#x: %q, want %q", magic, got, want)
		}
	}
}

// mountFSType returns the type of the file system mounted nearest above path according to
// /proc/self/mountinfo, an independent source to check statfs against.
func mountFSType(t *testing.T, path string) (string, bool) {
	t.Helper()
	path, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("no mountinfo: %v", err)
		return "", false
	}
	defer f.Close()
	best, fsType := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		left, right, ok := strings.Cut(sc.Text(), " - ")
		fields, after := strings.Fields(left), strings.Fields(right)
		if !ok || len(fields) < 5 || len(after) < 1 {
			continue
		}
		point, err := strconv.Unquote(`"` + strings.ReplaceAll(fields[4], `"`, `\"`) + `"`) // \040 escapes
		if err != nil {
			point = fields[4]
		}
		under := point == "/" || path == point || strings.HasPrefix(path, point+"/")
		if under && len(point) >= best { // later mounts hide earlier ones on the same point
			best, fsType = len(point), after[0]
		}
	}
	return fsType, best >= 0
}

func TestCheckDataDirTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := CheckDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s (magic %#x), %d of %d bytes available", dir, s.FSType, s.Magic, s.Available, s.Total)
	if s.Path != dir || s.Magic == 0 || s.FSType == "" || s.Total <= 0 || s.Available < 0 || s.Available > s.Total {
		t.Errorf("CheckDataDir(%s) = %+v", dir, s)
	}
	mounted, ok := mountFSType(t, dir)
	wantVolatile := ok && (mounted == "tmpfs" || mounted == "ramfs")
	t.Logf("mountinfo says %q (found %v), so volatile should be %v", mounted, ok, wantVolatile)
	if s.Volatile != wantVolatile {
		t.Errorf("Volatile %v on %s, mounted as %q", s.Volatile, s.FSType, mounted)
	}
	if wantVolatile && s.FSType != mounted {
		t.Errorf("FSType %q, mounted as %q", s.FSType, mounted)
	}
}

func TestCheckDataDirShm(t *testing.T) {
	const shm = "/dev/shm"
	_, statErr := os.Stat(shm)
	s, err := CheckDataDir(shm)
	if errors.Is(statErr, fs.ErrNotExist) {
		t.Logf("branch: %s is absent", shm)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("CheckDataDir(%s) = %+v, %v; want fs.ErrNotExist", shm, s, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("CheckDataDir(%s): %v", shm, err)
	}
	mounted, _ := mountFSType(t, shm)
	if mounted == "tmpfs" {
		t.Logf("branch: %s is tmpfs", shm)
		if !s.Volatile || s.FSType != "tmpfs" || s.Warning() == "" {
			t.Errorf("CheckDataDir(%s) = %+v, want volatile tmpfs with a warning", shm, s)
		}
		return
	}
	t.Logf("branch: %s is %q (statfs: %s)", shm, mounted, s.FSType)
	if s.Volatile != (mounted == "ramfs") {
		t.Errorf("CheckDataDir(%s) = %+v, mounted as %q", shm, s, mounted)
	}
}

func TestCheckDataDirMissing(t *testing.T) {
	_, err := CheckDataDir(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "board: statfs ") {
		t.Errorf("missing directory: %v, want a board: error wrapping fs.ErrNotExist", err)
	}
}
