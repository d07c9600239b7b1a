package board

import (
	"fmt"
	"syscall"
)

// CheckDataDir reports which file system holds path, an existing directory or file, using
// statfs(2); see Storage.Warning for the warning to log when it is volatile.
func CheckDataDir(path string) (Storage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Storage{}, fmt.Errorf("board: statfs %s: %w", path, err)
	}
	s := Storage{Path: path}
	// f_type is int32, int64 or uint32 depending on the architecture; magic numbers are 32 bits.
	classify(&s, uint32(st.Type))
	bsize := int64(st.Bsize)
	s.Total = int64(st.Blocks) * bsize
	s.Available = int64(st.Bavail) * bsize
	return s, nil
}
