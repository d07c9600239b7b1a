//go:build !linux

package board

import (
	"errors"
	"fmt"
	"os"
)

// CheckDataDir reports which file system holds path. Only Linux is supported: elsewhere it
// checks that path exists and returns a Storage of type "unknown" with an error wrapping
// errors.ErrUnsupported, which the caller may treat as "nothing to warn about".
func CheckDataDir(path string) (Storage, error) {
	if _, err := os.Stat(path); err != nil {
		return Storage{}, fmt.Errorf("board: statfs %s: %w", path, err)
	}
	return Storage{Path: path, FSType: "unknown"}, fmt.Errorf("board: statfs %s: %w", path, errors.ErrUnsupported)
}
