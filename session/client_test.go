package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"edgebroker/codec"
)

// startBroker runs a broker on a free loopback port for the length of the test.
func startBroker(t *testing.T, tweak func(*Options)) (*Broker, string) {
	t.Helper()
	opts := DefaultOptions()
	if tweak != nil {
		tweak(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b, ln.Addr().String()
}

// client is a raw MQTT client on the codec package: it sends exactly what a test says and
// returns every packet the broker sends.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *codec.Reader
	v  codec.Version
}

func dial(t *testing.T, addr string, v codec.Version) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := codec.NewReader(nc, 1<<24)
	r.SetVersion(v)
	return &client{t: t, nc: nc, r: r, v: v}
}

func (c *client) send(p codec.Packet) {
	c.t.Helper()
	buf, err := p.Encode(nil, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.t.Fatalf("write %T: %v", p, err)
	}
}

// next reads the next packet, failing the test after a bound.
func (c *client) next() codec.Packet {
	c.t.Helper()
	p, err := c.tryNext(5 * time.Second)
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	return p
}

func (c *client) tryNext(wait time.Duration) (codec.Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(wait))
	return c.r.ReadPacket()
}

// ackUntilQuiet acknowledges each QoS 1 PUBLISH it reads and hands its payload to got, until
// nothing arrives for wait. It reports with Errorf, so that a goroutine may run it.
func (c *client) ackUntilQuiet(wait time.Duration, got func(payload string)) {
	for {
		p, err := c.tryNext(wait)
		if err != nil {
			return
		}
		pp, ok := p.(*codec.Publish)
		if !ok {
			c.t.Errorf("got %T, want PUBLISH", p)
			return
		}
		c.send(&codec.Ack{Kind: codec.PUBACK, PacketID: pp.PacketID})
		got(string(pp.Payload))
	}
}

// expectNothing asserts that the broker sends nothing for a short while.
func (c *client) expectNothing(wait time.Duration) {
	c.t.Helper()
	if p, err := c.tryNext(wait); err == nil {
		c.t.Fatalf("unexpected %T %+v", p, p)
	}
}

// expectClosed asserts the broker closes the connection, returning what it sent before.
func (c *client) expectClosed() []codec.Packet {
	c.t.Helper()
	var got []codec.Packet
	for {
		p, err := c.tryNext(5 * time.Second)
		if err == nil {
			got = append(got, p)
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return got
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection not closed; got %v", got)
		}
		return got // reset by peer and the like
	}
}

func (c *client) connect(p *codec.Connect) *codec.Connack {
	c.t.Helper()
	p.Version = c.v
	p.ProtocolName = "MQTT"
	if c.v == codec.V31 {
		p.ProtocolName = "MQIsdp"
	}
	c.send(p)
	ack, ok := c.next().(*codec.Connack)
	if !ok {
		c.t.Fatalf("want CONNACK")
	}
	return ack
}

// connectClient dials and connects with the given id and clean flag; it fails unless accepted.
func connectClient(t *testing.T, addr string, v codec.Version, id string, clean bool) (*client, *codec.Connack) {
	t.Helper()
	c := dial(t, addr, v)
	cp := &codec.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60}
	if v == codec.V5 && !clean {
		cp.Props.Present.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = 3600
	}
	ack := c.connect(cp)
	if ack.Reason != codec.Success {
		t.Fatalf("connect %s: %v", id, ack.Reason)
	}
	return c, ack
}

func (c *client) subscribe(id uint16, filter string, qos byte) {
	c.t.Helper()
	c.send(&codec.Subscribe{PacketID: id, Subs: []codec.Subscription{{Filter: filter, QoS: qos}}})
	sa, ok := c.next().(*codec.Suback)
	if !ok || sa.PacketID != id || len(sa.Reasons) != 1 || sa.Reasons[0] != codec.ReasonCode(qos) {
		c.t.Fatalf("bad SUBACK %+v", sa)
	}
}

// parkSubscriber leaves a persistent session subscribed to filter and offline.
func parkSubscriber(t *testing.T, addr string, v codec.Version, id, filter string, qos byte) {
	t.Helper()
	c, _ := connectClient(t, addr, v, id, false)
	c.subscribe(1, filter, qos)
	c.send(&codec.Disconnect{})
	c.expectClosed()
}

// resumeWithReceiveMaximum connects the 5.0 client id to its persistent session (kept an hour
// after a disconnection) with a Receive Maximum of receiveMax, and fails the test unless the
// session was there (Session Present).
func resumeWithReceiveMaximum(t *testing.T, addr, id string, receiveMax uint16) *client {
	t.Helper()
	c := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: id, KeepAlive: 60}
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 3600
	cp.Props.Present.Set(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = receiveMax
	if ack := c.connect(cp); !ack.SessionPresent {
		t.Fatalf("%s: Session Present = 0, want its session back", id)
	}
	return c
}

// connectLimited connects a clean 5.0 client id with a Maximum Packet Size of maxPacket and
// subscribes it to filter at QoS 1.
func connectLimited(t *testing.T, addr, id string, maxPacket uint32, filter string) *client {
	t.Helper()
	c := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: id, CleanStart: true}
	cp.Props.Present.Set(codec.PropMaximumPacketSize)
	cp.Props.MaximumPacketSize = maxPacket
	c.connect(cp)
	c.subscribe(1, filter, 1)
	return c
}

// publish sends a PUBLISH and, for QoS 1, waits for its PUBACK.
func (c *client) publish(id uint16, topic string, qos byte, payload string) {
	c.t.Helper()
	c.send(&codec.Publish{PacketID: id, Topic: topic, QoS: qos, Payload: []byte(payload)})
	if qos == 1 {
		a, ok := c.next().(*codec.Ack)
		if !ok || a.Kind != codec.PUBACK || a.PacketID != id {
			c.t.Fatalf("want PUBACK %d, got %+v", id, a)
		}
	}
}

// receive reads one PUBLISH and completes its acknowledgement: PUBACK for QoS 1, and for QoS 2
// PUBREC, the broker's PUBREL, PUBCOMP. The window must allow no other PUBLISH in between.
func (c *client) receive() *codec.Publish {
	c.t.Helper()
	p, ok := c.next().(*codec.Publish)
	if !ok {
		c.t.Fatalf("want PUBLISH, got %T", p)
	}
	switch p.QoS {
	case 1:
		c.send(&codec.Ack{Kind: codec.PUBACK, PacketID: p.PacketID})
	case 2:
		c.send(&codec.Ack{Kind: codec.PUBREC, PacketID: p.PacketID})
		if rel, ok := c.next().(*codec.Ack); !ok || rel.Kind != codec.PUBREL || rel.PacketID != p.PacketID {
			c.t.Fatalf("want PUBREL %d, got %+v", p.PacketID, rel)
		}
		c.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: p.PacketID})
	}
	return p
}

// checkFor polls f until it returns nil or the timeout passes.
func checkFor(t *testing.T, timeout, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(every)
	}
}

func payloads(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
