package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

// notifier speaks systemd's service notification protocol: datagrams such as "READY=1" sent to
// the socket named by NOTIFY_SOCKET (an abstract socket when it starts with '@'). Without
// NOTIFY_SOCKET (another init system, a terminal) it does nothing.
type notifier struct {
	conn *net.UnixConn
}

// newNotifier connects to the notification socket, if the service manager gave one.
func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{}
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return &notifier{}
	}
	return &notifier{conn: conn}
}

// send reports a state ("READY=1", "STOPPING=1", "WATCHDOG=1", "RELOADING=1"); errors are
// ignored, as a lost notification is the service manager's to time out on.
func (n *notifier) send(state string) {
	if n.conn != nil {
		n.conn.Write([]byte(state))
	}
}

// watchdog sends WATCHDOG=1 at half the interval the service manager expects (WATCHDOG_USEC,
// for this process per WATCHDOG_PID) until stop is closed.
func (n *notifier) watchdog(stop <-chan struct{}) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if n.conn == nil || err != nil || usec <= 0 {
		return
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return
	}
	t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.send("WATCHDOG=1")
		case <-stop:
			return
		}
	}
}

// close releases the socket.
func (n *notifier) close() {
	if n.conn != nil {
		n.conn.Close()
	}
}
