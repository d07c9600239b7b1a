//go:build !linux

package idle

import "errors"

// epoll stands in for the Linux readiness set: New fails, and callers keep a reader
// goroutine per connection.
type epoll struct{}

func openEpoll() (epoll, error) {
	return epoll{}, errors.ErrUnsupported
}

func (epoll) add(int, int32) error               { return errors.ErrUnsupported }
func (epoll) arm(int, int32) error               { return errors.ErrUnsupported }
func (epoll) wait(keys []int32) ([]int32, error) { return keys, ErrClosed }
func (epoll) interrupt()                         {}
func (epoll) close() error                       { return nil }
