package session

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"edgebroker/session/store"
)

// Overflow names what happens when a message meets a full session queue that may not block its
// publisher (an offline session, a QoS 0 message, or a subscriber that made no progress for
// SlowConsumerTimeout).
type Overflow string

// Overflow policies.
const (
	DropNew    Overflow = "drop-new"    // keep what is queued, drop the arriving message (Mosquitto's behaviour)
	DropOldest Overflow = "drop-oldest" // evict the oldest queued message to make room
)

// ParseOverflow checks a --queue-overflow value.
func ParseOverflow(s string) (Overflow, error) {
	switch o := Overflow(s); o {
	case DropNew, DropOldest:
		return o, nil
	}
	return "", fmt.Errorf("session: unknown queue overflow policy %q (want drop-new or drop-oldest)", s)
}

// Options configures a Broker. Get one from DefaultOptions and change what you need.
type Options struct {
	// MaxQueued is the capacity of each session's ring queue of messages waiting for delivery
	// (not counting the in-flight window).
	MaxQueued int
	// MaxQueuedBytes bounds the bytes of message bodies (topic and payload) in each session's
	// queue; zero means no byte limit. The overflow policy applies to it as to MaxQueued.
	MaxQueuedBytes int64
	// MemoryLimit is the broker's memory budget in bytes, compared with the live Go heap (see
	// pressure.go); zero turns the protection off.
	MemoryLimit int64
	// Overflow is applied when a queue is full and the publisher may not be slowed down.
	Overflow Overflow
	// QueueQoS0 queues QoS 0 messages for offline persistent sessions too. Off by default, as
	// the specification allows and Mosquitto does.
	QueueQoS0 bool
	// MaxInflight bounds unacknowledged QoS 1/2 messages per connection in each direction; it
	// is advertised to 5.0 clients as Receive Maximum.
	MaxInflight int
	// MaxPacketSize is the largest packet accepted from a client, checked before any buffer
	// for it is allocated; advertised to 5.0 clients as Maximum Packet Size.
	MaxPacketSize uint32
	// SessionExpiryMax caps the Session Expiry Interval a 5.0 client may ask for, and is the
	// lifetime of an MQTT 3 persistent session after disconnect. Zero means no limit: MQTT 3
	// persistent sessions never expire.
	SessionExpiryMax time.Duration
	// SlowConsumerTimeout is how long a connected subscriber may make no progress before its
	// full queue stops slowing publishers down and the Overflow policy applies instead.
	SlowConsumerTimeout time.Duration
	// MaxKeepAlive caps the keep-alive a 5.0 client may use (sent back as Server Keep Alive);
	// zero means no cap. A 5.0 client asking for 0 (no keep-alive) gets this value.
	MaxKeepAlive uint16
	// ConnectTimeout closes a socket that does not send CONNECT in time.
	ConnectTimeout time.Duration
	// TopicAliasMax is the number of topic aliases a 5.0 client may set towards the broker.
	TopicAliasMax uint16
	// Store persists sessions and retained messages; nil keeps everything in memory only.
	// With a store, acknowledgements wait for what they confirm to be durable.
	Store *store.Store
	// StoreRetry is how often a failed store is reopened (a full disk, say) until it takes
	// writes again.
	StoreRetry time.Duration
	// SysInterval is how often the broker publishes its counters under $SYS/broker/; zero
	// turns them off.
	SysInterval time.Duration
	// SysPerClient adds $SYS/broker/clients/<id>/{queued,inflight,dropped} for every session.
	SysPerClient bool
	// Version is the broker version reported in $SYS/broker/version.
	Version string
	// MaxConnections refuses connections beyond this many at once; zero means no limit.
	MaxConnections int
	// MaxTopicLength and MaxTopicLevels bound topic names and filters a client may use;
	// zero means the protocol's own limits only.
	MaxTopicLength int
	MaxTopicLevels int
	// MaxSubscriptions bounds the subscriptions of one session; zero means no limit.
	MaxSubscriptions int
	// PublishRate limits each client to this many PUBLISH packets a second (bursts of
	// PublishRate), by not reading from its socket while it is over; zero means no limit.
	PublishRate float64
	// Auth decides who may connect and what clients may publish, subscribe to and receive;
	// nil lets everybody do everything.
	Auth Authorizer
	// CertAsUsername takes the user name from the TLS client certificate's common name, as
	// PeerName reports it.
	CertAsUsername bool
	// PeerName returns the common name of a connection's verified client certificate. The
	// command provides it, so that the engine does not link TLS into builds without it.
	PeerName func(net.Conn) (string, bool)
	// Logger receives the engine's log lines; nil discards them.
	Logger *slog.Logger
	// Now returns the current time of the protocol's clocks (expiry, will delays); nil means
	// time.Now. Tests may replace it. Socket deadlines always follow the wall clock.
	Now func() time.Time
}

// DefaultOptions returns a fresh Options with the broker's defaults.
func DefaultOptions() Options {
	return Options{
		MaxQueued:           100,
		Overflow:            DropNew,
		MaxInflight:         20,
		MaxPacketSize:       1 << 20,
		SlowConsumerTimeout: 5 * time.Second,
		ConnectTimeout:      10 * time.Second,
		TopicAliasMax:       16,
		StoreRetry:          5 * time.Second,
		SysInterval:         10 * time.Second,
		MaxTopicLevels:      64,
		MaxSubscriptions:    1000,
	}
}

// validate rejects settings the engine cannot run with.
func (o *Options) validate() error {
	switch {
	case o.MaxQueued < 1:
		return fmt.Errorf("session: max queued messages must be at least 1, got %d", o.MaxQueued)
	case o.MaxInflight < 1 || o.MaxInflight > 65535:
		return fmt.Errorf("session: max in-flight must be between 1 and 65535, got %d", o.MaxInflight)
	case o.MaxPacketSize < 64:
		return fmt.Errorf("session: max packet size must be at least 64 bytes, got %d", o.MaxPacketSize)
	case o.SlowConsumerTimeout <= 0:
		return fmt.Errorf("session: slow consumer timeout must be positive, got %v", o.SlowConsumerTimeout)
	case o.ConnectTimeout <= 0:
		return fmt.Errorf("session: connect timeout must be positive, got %v", o.ConnectTimeout)
	case o.MaxQueuedBytes < 0 || o.MemoryLimit < 0:
		return fmt.Errorf("session: byte limits cannot be negative")
	case o.MaxConnections < 0 || o.MaxTopicLength < 0 || o.MaxTopicLevels < 0 || o.MaxSubscriptions < 0 || o.PublishRate < 0:
		return fmt.Errorf("session: connection, topic, subscription and rate limits cannot be negative")
	case o.Store != nil && o.StoreRetry <= 0:
		return fmt.Errorf("session: store retry interval must be positive, got %v", o.StoreRetry)
	}
	if _, err := ParseOverflow(string(o.Overflow)); err != nil {
		return err
	}
	return nil
}
