package session

import (
	"strings"
	"testing"
	"time"

	"edgebroker/codec"
)

// Only the broker writes under $SYS/: a client's publication there is refused (5.0: 0x87) or,
// from a 3.x client, acknowledged and dropped, as Mosquitto does; a will there is refused.
func TestClientsCannotPublishUnderSys(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	watcher, _ := connectClient(t, addr, codec.V311, "watcher", true)
	watcher.subscribe(1, "$SYS/#", 1)
	c5, _ := connectClient(t, addr, codec.V5, "c5", true)
	c5.send(&codec.Publish{PacketID: 1, Topic: "$SYS/broker/clients/connected", QoS: 1, Retain: true, Payload: []byte("9999")})
	if a := c5.next().(*codec.Ack); a.Reason != codec.NotAuthorized {
		t.Fatalf("PUBACK %v, want 0x87", a.Reason)
	}
	c3, _ := connectClient(t, addr, codec.V311, "c3", true)
	c3.publish(1, "$SYS/x", 1, "no") // acknowledged, dropped
	watcher.expectNothing(200 * time.Millisecond)
	w := dial(t, addr, codec.V5)
	cp := willConnect("w", true)
	cp.WillTopic = "$SYS/broker/fake"
	if ack := w.connect(cp); ack.Reason != codec.NotAuthorized {
		t.Fatalf("CONNACK %v for a will under $SYS, want 0x87", ack.Reason)
	}
}

// A will's Response Topic must be a topic name [MQTT-3.3.2-14]: the broker would otherwise
// forward a wildcard in it.
func TestWillResponseTopicWithAWildcard(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr, codec.V5)
	cp := willConnect("dev", true)
	cp.WillProps.Present.Set(codec.PropResponseTopic)
	cp.WillProps.ResponseTopic = "reply/#"
	if ack := c.connect(cp); ack.Reason != codec.ProtocolError {
		t.Fatalf("CONNACK %v, want 0x82", ack.Reason)
	}
}

// Per-client $SYS values go when the session ends (they are retained: they would stay for
// good), and a client id with a wildcard or a slash gets none (no valid topic name).
func TestPerClientSysValues(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) {
		o.SysInterval = 10 * time.Millisecond
		o.SysPerClient = true
	})
	gone, _ := connectClient(t, addr, codec.V311, "gone", true)
	odd, _ := connectClient(t, addr, codec.V311, "dev+1/x", true)
	watcher, _ := connectClient(t, addr, codec.V311, "watcher", true)
	watcher.subscribe(1, "$SYS/broker/clients/#", 0)
	seen := map[string]bool{}
	for n := 0; !seen["$SYS/broker/clients/gone/queued"]; n++ {
		if n == 1000 {
			t.Fatal("no value for client gone")
		}
		p := watcher.receive() // the test client fails on an invalid topic name
		seen[p.Topic] = true
	}
	for topic := range seen {
		if strings.Contains(topic, "dev") {
			t.Fatalf("value published for a client id that cannot name a topic: %s", topic)
		}
	}
	gone.send(&codec.Disconnect{})
	gone.expectClosed()
	odd.nc.Close()
	time.Sleep(50 * time.Millisecond) // several intervals
	late, _ := connectClient(t, addr, codec.V311, "late", true)
	late.subscribe(1, "$SYS/broker/clients/gone/#", 0)
	late.expectNothing(100 * time.Millisecond)
}

// A message dropped for the client's Maximum Packet Size is counted as dropped, per client
// and in total.
func TestOversizeDropIsCounted(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	sub := connectLimited(t, addr, "sub", 64, "t")
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "t", 1, strings.Repeat("x", 200))
	pub.publish(2, "t", 1, "fits")
	if p := sub.receive(); string(p.Payload) != "fits" {
		t.Fatalf("got %q", p.Payload)
	}
	s := b.session("sub")
	s.mu.Lock()
	dropped := s.dropped
	s.mu.Unlock()
	if total := b.Stats().MessagesDropped.Load(); dropped != 1 || total != 1 {
		t.Fatalf("dropped %d for the client, %d in total; want 1 and 1", dropped, total)
	}
}

// A second CONNECT is a protocol error whatever its protocol level [MQTT-3.1.0-2]: not 0x84,
// which no DISCONNECT may carry [MQTT-3.14.2-1].
func TestSecondConnectWithAnUnknownLevel(t *testing.T) {
	_, addr := startBroker(t, nil)
	c, _ := connectClient(t, addr, codec.V5, "c", true)
	c.nc.Write([]byte{0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00})
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ProtocolError {
		t.Fatalf("got %v, want DISCONNECT 0x82", got)
	}
}
