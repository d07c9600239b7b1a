package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// waitLong bounds every wait for something that must happen; waitAbsent is the bounded wait
// used only to observe that something does NOT happen.
const (
	waitLong   = 15 * time.Second
	waitAbsent = 500 * time.Millisecond
	pollEvery  = 10 * time.Millisecond
)

// message is one PUBLISH as a client received it.
type message struct {
	topic    string
	payload  string
	qos      byte
	retained bool
	dup      bool
	props    *paho.PublishProperties // 5.0 only
}

func (m message) String() string {
	return fmt.Sprintf("{%s %q qos=%d retain=%v dup=%v}", m.topic, m.payload, m.qos, m.retained, m.dup)
}

// inbox records the messages a client receives, in order.
type inbox struct {
	mu   sync.Mutex
	msgs []message
}

func (in *inbox) add(m message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
}

// all returns a copy of what arrived so far.
func (in *inbox) all() []message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]message(nil), in.msgs...)
}

// waitN waits until at least n messages arrived and returns all of them.
func (in *inbox) waitN(t *testing.T, n int) []message {
	t.Helper()
	checkFor(t, waitLong, pollEvery, func() error {
		if got := len(in.all()); got < n {
			return fmt.Errorf("received %d messages, want %d", got, n)
		}
		return nil
	})
	return in.all()
}

// waitExactly waits for n messages and then, for the bounded waitAbsent, for more that must not
// come; it returns what arrived.
func (in *inbox) waitExactly(t *testing.T, n int) []message {
	t.Helper()
	if n > 0 {
		in.waitN(t, n)
	}
	time.Sleep(waitAbsent) // bounded wait to observe that nothing more arrives
	got := in.all()
	if len(got) != n {
		t.Fatalf("received %d messages, want exactly %d: %v", len(got), n, got)
	}
	return got
}

// payloads lists the payloads of msgs, for assertions and failure messages.
func payloads(msgs []message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.payload
	}
	return out
}

// seq returns the payloads prefix-0 … prefix-(n-1), the shape published by publishSeq3.
func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// equalStrings fails t when got and want differ, showing both.
func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
		t.Fatalf("%s:\n got %d %q\nwant %d %q", what, len(got), got, len(want), want)
	}
}

// client3 is a 3.1 or 3.1.1 client (the 3.x Go client library) recording what it receives.
type client3 struct {
	mqtt3.Client
	in             inbox
	sessionPresent bool
}

// opts3 are the CONNECT settings of a 3.x client.
type opts3 struct {
	version   uint   // 3 or 4; 0 means 4 (3.1.1)
	clean     bool   // Clean Session
	keepAlive uint16 // seconds; 0 means 30
	will      *message
	// conn, when set, receives the client's TCP connection, so a test can cut it abruptly
	// (closing it directly bypasses the gracefulConn the client library is given).
	conn *net.Conn
}

// connect3 connects a 3.x client with client id id and registers its disconnection.
// Every message it receives, whatever the subscription, lands in its inbox.
func connect3(t *testing.T, b *broker, id string, o opts3) *client3 {
	t.Helper()
	c, err := dial3(b, id, o)
	if err != nil {
		t.Fatalf("connect %q: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// dial3 is connect3 returning the error instead of failing.
func dial3(b *broker, id string, o opts3) (*client3, error) {
	c := &client3{}
	version := o.version
	if version == 0 {
		version = 4
	}
	keepAlive := int64(o.keepAlive)
	if keepAlive == 0 {
		keepAlive = 30
	}
	mo := mqtt3.NewClientOptions().
		AddBroker(b.URL()).
		SetClientID(id).
		SetProtocolVersion(version).
		SetCleanSession(o.clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(time.Duration(keepAlive) * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
			c.in.add(message{topic: m.Topic(), payload: string(m.Payload()), qos: m.Qos(), retained: m.Retained(), dup: m.Duplicate()})
		})
	if o.will != nil {
		mo.SetBinaryWill(o.will.topic, []byte(o.will.payload), o.will.qos, o.will.retained)
	}
	mo.SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
		conn, err := net.DialTimeout("tcp", uri.Host, 5*time.Second)
		if err != nil {
			return nil, err
		}
		if o.conn != nil {
			*o.conn = conn
		}
		return &gracefulConn{Conn: conn}, nil
	})
	c.Client = mqtt3.NewClient(mo)
	tok := c.Connect()
	if !tok.WaitTimeout(waitLong) {
		return nil, fmt.Errorf("no CONNACK within %v", waitLong)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	c.sessionPresent = tok.(*mqtt3.ConnectToken).SessionPresent()
	return c, nil
}

// subscribe3 subscribes c to filter at qos and waits for the SUBACK.
func (c *client3) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("no SUBACK for %q within %v", filter, waitLong)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
}

// publish publishes one message and waits for its acknowledgement (for QoS 0, for the write).
func (c *client3) publish(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(waitLong) {
		t.Fatalf("publish %q not acknowledged within %v", topic, waitLong)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// publishSeq publishes prefix-0 … prefix-(n-1) to topic in order, waiting for each acknowledgement.
func (c *client3) publishSeq(t *testing.T, topic string, qos byte, prefix string, n int) {
	t.Helper()
	for _, p := range seq(prefix, 0, n) {
		c.publish(t, topic, qos, false, p)
	}
}

// disconnect sends DISCONNECT and closes the connection.
func (c *client3) disconnect() { c.Disconnect(100) }

// client5 is a 5.0 client (the 5.0 Go client library) recording what it receives.
type client5 struct {
	*paho.Client
	conn    net.Conn // the TCP connection; closing it directly cuts it abruptly
	connack *paho.Connack
	in      inbox
	// serverDisconnect receives the DISCONNECT the server sent, if any.
	serverDisconnect chan *paho.Disconnect
	// closed is closed when the client has shut down, for whatever reason.
	closed <-chan struct{}
}

// connect5 connects a 5.0 client with the given CONNECT and registers its disconnection.
// It fails t unless the CONNACK reason code is Success.
func connect5(t *testing.T, b *broker, cp *paho.Connect) *client5 {
	t.Helper()
	c, err := dial5(b, cp)
	if err != nil {
		t.Fatalf("connect %q: %v", cp.ClientID, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// dial5 is connect5 returning the error instead of failing. On a refused connection the
// error is returned along with the client, whose connack holds the reason code.
func dial5(b *broker, cp *paho.Connect) (*client5, error) {
	conn, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client5{conn: conn, serverDisconnect: make(chan *paho.Disconnect, 1)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: &gracefulConn{Conn: conn},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				p := pr.Packet
				c.in.add(message{topic: p.Topic, payload: string(p.Payload), qos: p.QoS, retained: p.Retain, props: p.Properties})
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.serverDisconnect <- d:
			default:
			}
		},
		OnClientError: func(error) {},
		PacketTimeout: 10 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.connack = ca
	if err != nil {
		conn.Close()
		return c, err
	}
	c.closed = c.Done()
	return c, nil
}

// subscribe subscribes c with the given options and subscription identifier (0: none) and
// waits for the SUBACK, failing t unless every reason code is a granted QoS.
func (c *client5) subscribe(t *testing.T, subID int, subs ...paho.SubscribeOptions) {
	t.Helper()
	s := &paho.Subscribe{Subscriptions: subs}
	if subID > 0 {
		s.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &subID}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	sa, err := c.Subscribe(ctx, s)
	if err != nil {
		t.Fatalf("subscribe %v: %v", subs, err)
	}
	for i, r := range sa.Reasons {
		if r >= 0x80 {
			t.Fatalf("subscribe %q refused with reason 0x%02x", subs[i].Topic, r)
		}
	}
}

// publish publishes p and waits for its acknowledgement, failing t on an error reason.
func (c *client5) publish(t *testing.T, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r, err := c.Publish(ctx, p)
	if err != nil {
		t.Fatalf("publish %q: %v", p.Topic, err)
	}
	if r != nil && r.ReasonCode >= 0x80 {
		t.Fatalf("publish %q refused with reason 0x%02x", p.Topic, r.ReasonCode)
	}
}

// waitClosed waits until the client's connection has been shut down.
func (c *client5) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(waitLong):
		t.Fatalf("connection of %q still open after %v", c.ClientID(), waitLong)
	}
}

// uint32p makes the pointer the 5.0 library uses for an optional property.
func uint32p(v uint32) *uint32 { return &v }

// gracefulConn is the connection the client libraries are given. Its Close half-closes and then
// waits (at most 5 s) for the broker to close its side, so that when a client's Disconnect
// returns, the broker has processed the DISCONNECT: a test reconnecting right after it then
// resumes the session rather than racing with the old connection (a takeover).
//
// Its embedded Mutex makes it a sync.Locker, which the 5.0 library takes around each packet it
// writes: through a wrapper its packets take several Write calls, and without the lock its
// pinger's PINGREQ could land between them.
type gracefulConn struct {
	net.Conn
	sync.Mutex
	once sync.Once
	err  error
}

func (g *gracefulConn) Close() error {
	g.once.Do(func() {
		if tc, ok := g.Conn.(*net.TCPConn); ok && tc.CloseWrite() == nil {
			_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, tc)
		}
		g.err = g.Conn.Close()
	})
	return g.err
}
