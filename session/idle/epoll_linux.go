package idle

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// interruptKey marks the eventfd that Close writes to end a wait; connection keys are > 0.
const interruptKey = 0

// epoll is an epoll set whose entries carry connection keys, plus an eventfd to interrupt a
// wait. Entries are one-shot: each report disarms its entry until arm.
type epoll struct {
	fd     int
	wakeFD int
	events []unix.EpollEvent // wait's buffer: only the dispatch goroutine waits
}

func openEpoll() (epoll, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return epoll{}, fmt.Errorf("idle: epoll_create1: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return epoll{}, fmt.Errorf("idle: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: interruptKey}
	if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(wfd)
		unix.Close(fd)
		return epoll{}, fmt.Errorf("idle: epoll_ctl: %w", err)
	}
	return epoll{fd: fd, wakeFD: wfd, events: make([]unix.EpollEvent, 128)}, nil
}

// add registers fd under key, disarmed.
func (e *epoll) add(fd int, key int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: key}
	return unix.EpollCtl(e.fd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// arm reports fd once, when it is readable, at its end of stream or on an error. The entry is
// level-triggered: bytes that arrived before arm are reported at once.
func (e *epoll) arm(fd int, key int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: key}
	return unix.EpollCtl(e.fd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// wait blocks until entries are reported and appends their keys to keys; it fails once
// interrupt was called.
func (e *epoll) wait(keys []int32) ([]int32, error) {
	for {
		n, err := unix.EpollWait(e.fd, e.events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return keys, fmt.Errorf("idle: epoll_wait: %w", err)
		}
		for _, ev := range e.events[:n] {
			if ev.Fd == interruptKey {
				return keys, ErrClosed
			}
			keys = append(keys, ev.Fd)
		}
		return keys, nil
	}
}

// interrupt makes the current or next wait fail.
func (e *epoll) interrupt() {
	var one = [8]byte{1} // an eventfd takes an 8-byte counter in host order; 1 is non-zero either way
	unix.Write(e.wakeFD, one[:])
}

func (e *epoll) close() error {
	unix.Close(e.wakeFD)
	return unix.Close(e.fd)
}
