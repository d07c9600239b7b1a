package session

import "math"

// Memory accounting (DESIGN.md section 4). The broker's budget (Broker.mem, a limits.Budget
// whose limit is Options.MemoryLimit) is charged for everything that grows with load, at the
// estimated sizes below:
//   - a connection, from the moment it is accepted; once its CONNECT is read, a client that
//     does not fit is refused (CONNACK 0x97, 3.x: server unavailable) unless it has a session
//     here: its returning client is what drains the memory the session holds. Past the
//     budget at most maxHandshakesOver connections wait for their CONNECT; more are closed
//     at once. Plus its write buffer while it holds one;
//   - a publication, from the moment it is read until it is routed; one that does not fit
//     meets the pressure rules (pressure.go): QoS 0 dropped, 5.0 QoS 1/2 refused with 0x97,
//     a 3.x publisher not read from until there is room;
//   - a new subscription (refused with 0x97, or 0x80 for 3.x, when it does not fit), each
//     session, will and retained message;
//   - each delivery held in RAM by a queue or an in-flight table, with its body, until it is
//     spilled, sent or acknowledged.
//
// What cannot be refused once admitted (a routed delivery, a recovered session) is charged
// with limits.Budget.Charge and may take the account past the limit; refusable work then waits
// until enough is released. A body shared by several queues is charged to each of them, so
// the account errs on the high side. The heap is still sampled (pressure.go): the account is
// exact about what it counts and sees it at once, the heap sample catches what it misses.
const (
	// connCost is a connection's state (the conn, its decoder, the socket's own), whether
	// its reader runs or not; readerCost is its reader goroutine's stack and its read buffer,
	// charged while the reader runs (a quiet client's connection is parked without them:
	// session/idle). An idle client with a reader measured 10 KiB of RSS.
	connCost   = 2 << 10
	readerCost = 6<<10 + readBufferSize
	// maxHandshakesOver is how many connections may wait for their CONNECT past the budget,
	// so that a returning client can always get in, while a flood of sockets that send
	// nothing costs at most this many connections beyond it.
	maxHandshakesOver = 64
	// sessionCost is a session's own state: the Session value, its in-flight maps and timers.
	sessionCost = 640
	// subscriptionCost is one subscription in the topic tree, besides its filter.
	subscriptionCost = 160
	// messageCost is a Message besides its topic and payload.
	messageCost = 112
	// deliveryCost is a queue slot or in-flight table entry and its delivery, besides the body.
	deliveryCost = 128
	// unlimited is the budget's limit when Options.MemoryLimit is 0: accounting goes on (for
	// $SYS), nothing is refused.
	unlimited = math.MaxInt64
)

// budgetLimit returns the budget's limit for the memory limit option (0: none).
func budgetLimit(memoryLimit int64) int64 {
	if memoryLimit <= 0 {
		return unlimited
	}
	return memoryLimit
}

// admit reports whether a client may connect as far as memory goes: while the account is
// within the budget, or, past it, when clientID has a session (resuming or ending it is what
// frees memory). The connection's own cost is charged already.
func (b *Broker) admit(clientID string) bool {
	return b.mem.Used() <= b.mem.Limit() || b.session(clientID) != nil
}

// messageSize is what a message is charged: its topic, payload and properties.
func messageSize(m *Message) int64 {
	n := messageCost + int64(len(m.Topic)+len(m.Payload)+len(m.From))
	if p := m.Props; p != nil {
		n += int64(len(p.ContentType) + len(p.ResponseTopic) + len(p.CorrelationData))
		for _, u := range p.User {
			n += int64(len(u.Key) + len(u.Value))
		}
	}
	return n
}

// subscriptionSize is what a subscription is charged.
func subscriptionSize(group, filter string) int64 {
	return subscriptionCost + int64(len(group)+len(filter))
}

// deliverySize is what a delivery held in a queue or in flight is charged: its entry and its
// message's topic and payload (the weight the queue's byte limit counts too).
func deliverySize(d *delivery) int64 { return deliveryCost + weight(d) }

// holdLocked charges n bytes to the budget on behalf of s (a negative n releases -n) and keeps
// the sum in s.held, which the session's end releases whole. s.mu is held. An ended session is
// charged nothing more: everything it held was released when it ended.
func (s *Session) holdLocked(n int64) {
	if s.ended {
		return
	}
	s.held += n
	if n > 0 {
		s.b.mem.Charge(n)
	} else {
		s.b.mem.Release(-n)
	}
}

// reserveLocked reserves n bytes for s if the budget has room, and reports whether it did.
// s.mu is held.
func (s *Session) reserveLocked(n int64) bool {
	if s.ended || !s.b.mem.TryReserve(n) {
		return false
	}
	s.held += n
	return true
}

// releaseAllLocked returns everything s holds to the budget, once it has ended. s.mu is held.
func (s *Session) releaseAllLocked() {
	s.b.mem.Release(s.held)
	s.held = 0
}

// setWillLocked replaces the session's will, moving the charge from the old one to w (nil
// for none). s.mu is held.
func (s *Session) setWillLocked(w *Message) {
	if s.will != nil {
		s.holdLocked(-messageSize(s.will))
	}
	s.will = w
	if w != nil {
		s.holdLocked(messageSize(w))
	}
}

// setRetained stores m as the retained message of its topic, moving the charge from the one
// it replaces.
func (b *Broker) setRetained(m *Message) {
	b.mem.Charge(messageSize(m))
	if old, ok := b.retained.Set(m.Topic, m); ok {
		b.mem.Release(messageSize(old))
	}
}

// deleteRetained removes the retained message of name, if any, and releases its charge.
func (b *Broker) deleteRetained(name string) {
	if old, ok := b.retained.Delete(name); ok {
		b.mem.Release(messageSize(old))
	}
}
