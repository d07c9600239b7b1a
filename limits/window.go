package limits

// Window counts a session's outstanding QoS 1 and QoS 2 messages in one direction against a
// maximum (--max-inflight, or the Receive Maximum a 5.0 peer announced).
//
// A Window is not safe for concurrent use: the session holds its lock around every call.
type Window struct {
	max int
	n   int
}

// NewWindow returns an empty window that allows n outstanding messages. A value below 1 is
// taken as 1, so that a session always makes progress (MQTT 5 forbids a Receive Maximum of 0).
func NewWindow(n int) *Window {
	w := &Window{}
	w.SetMax(n)
	return w
}

// Len returns the number of outstanding messages.
func (w *Window) Len() int { return w.n }

// Max returns the most outstanding messages allowed.
func (w *Window) Max() int { return w.max }

// SetMax changes the maximum (a value below 1 is taken as 1). Lowering it below Len takes
// nothing back: TryAcquire fails until enough messages have been released.
func (w *Window) SetMax(n int) { w.max = max(n, 1) }

// TryAcquire takes a slot for one more outstanding message and reports whether one was free.
func (w *Window) TryAcquire() bool {
	if w.n >= w.max {
		return false
	}
	w.n++
	return true
}

// Release frees the slot of one acknowledged message. Releasing an empty window does nothing:
// the protocol layer, not the window, decides whether an acknowledgement was expected.
func (w *Window) Release() {
	if w.n > 0 {
		w.n--
	}
}
