// Package session is the broker engine: it takes network connections from listeners, speaks
// MQTT 3.1, 3.1.1 and 5.0 over them with the codec package, and owns every session, the
// subscription tree, retained messages and wills.
//
// # Goroutines
//
// Each connection has a reader goroutine (decodes packets, handles CONNECT, acknowledgements,
// SUBSCRIBE and the rest), a router goroutine started at its first PUBLISH (routes publications
// in arrival order and sends PUBACK/PUBREC once a message is queued for every matching session)
// and a delivery goroutine (moves the session's queue onto the wire within the in-flight window).
// Routing in its own goroutine keeps acknowledgements flowing while a publication waits for
// room in a subscriber's queue. A reply goroutine, also started on demand, sends the PUBRELs
// and PUBCOMPs that must wait for a store record, many per fsync.
//
// With a store (Options.Store) only persistent sessions and retained messages are written;
// persist.go states the ordering rules. The acknowledgement of anything stored waits until it
// is durable.
//
// # Flow control
//
// Each session queues messages in a fixed-size ring (Options.MaxQueued). When a QoS 1/2 message
// meets a full queue of a connected subscriber that has taken a message off its queue within
// Options.SlowConsumerTimeout, the publisher's router waits for room, so its PUBACK/PUBREC and,
// through the bounded inbox, its socket reads wait too: acknowledged messages are not dropped
// because a reader is slower than its writers. QoS 0 waits the same way, but only while the
// subscriber made progress within the last 1 s, so a stuck subscriber never holds QoS 0
// traffic up for more than a moment. An offline session, or a subscriber that made no progress
// for that long, meets Options.Overflow instead, and the drop is counted.
//
// # Sessions
//
// A session is persistent when CONNECT asked for it (Clean Session 0 in 3.x, a Session Expiry
// Interval above 0 in 5.0). A persistent session keeps its subscriptions, queue, in-flight
// messages (resent with DUP on reconnect) and inbound QoS 2 packet ids after its connection
// closes, until it expires (Options.SessionExpiryMax for 3.x). A new connection with the same
// client identifier takes the session over and the old connection is closed.
//
// # Lock order
//
// Broker.mu, then Session.mu, then conn.wmu. The topic tree and the retained index have their own
// locks and never call back into the engine while holding them, except Retained.Match, whose
// callback takes Session.mu. No lock is held while writing to a socket except conn.wmu, and no
// lock while waiting for the store's log except Broker.mu in rewriteStore (store recovery).
// The delivery loop reads a spilled queue back from the store's checkpoint without Session.mu
// (queue.planRead, then applyRead under the lock); other reads back hold it (spill.go).
package session
