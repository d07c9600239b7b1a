package e2e

import (
	"errors"
	"net"
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// Outbound flow control and topic aliases, read byte by byte off the socket.

// connectRaw5 sends a 5.0 CONNECT with Clean Start, client id id and the given CONNECT
// properties (already encoded), and checks that the CONNACK accepts it.
func (c *rawConn) connectRaw5(id string, props []byte) {
	c.t.Helper()
	v := append(str("MQTT"), // protocol name
		0x05,       // protocol level 5
		0x02,       // connect flags: Clean Start
		0x00, 0x3c) // keep alive 60 s
	v = append(v, encodeLen(len(props))...) // property length
	v = append(v, props...)                 // properties
	v = append(v, str(id)...)               // client identifier
	c.send(append(append([]byte{0x10}, encodeLen(len(v))...), v...))
	p, err := c.read(waitLong)
	if err != nil || p.header != 0x20 || len(p.body) < 2 || p.body[1] != 0 {
		c.t.Fatalf("CONNACK: %v %v", p, err)
	}
}

// subscribeRaw subscribes to filter at QoS 1 with packet identifier 1 and checks the SUBACK.
func (c *rawConn) subscribeRaw(filter string, v5 bool) {
	c.t.Helper()
	v := []byte{0x00, 0x01} // packet identifier 1
	if v5 {
		v = append(v, 0x00) // properties length 0
	}
	v = append(v, str(filter)...) // topic filter
	v = append(v, 0x01)           // QoS 1
	c.send(append(append([]byte{0x82}, encodeLen(len(v))...), v...))
	p, err := c.read(waitLong)
	if err != nil || p.header != 0x90 || p.body[len(p.body)-1] != 0x01 {
		c.t.Fatalf("SUBACK granting QoS 1: %v %v", p, err)
	}
}

// countPublishes reads PUBLISH packets until none arrives for the bounded waitAbsent and
// returns them; any other packet or a close fails t.
func (c *rawConn) countPublishes() []packet {
	c.t.Helper()
	var got []packet
	for {
		p, err := c.read(waitAbsent)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return got
		}
		if err != nil {
			c.t.Fatalf("after %d PUBLISH packets: %v", len(got), err)
		}
		if p.header&0xf0 != 0x30 {
			c.t.Fatalf("got %v, want PUBLISH", p)
		}
		got = append(got, p)
	}
}

// TestMaxInflight: with --max-inflight 5 a 3.1.1 subscriber that does not acknowledge gets 5 QoS 1
// messages and no more; each PUBACK lets exactly one more through.
func TestMaxInflight(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{maxInflight: 5})
	c := dialRaw(t, b)
	c.connect(4, "window", 60)
	c.subscribeRaw("win/t", false)
	pub := connect3(t, b, "window-pub", opts3{clean: true})
	pub.publishSeq(t, "win/t", 1, "m", 8)

	got := c.countPublishes()
	if len(got) != 5 {
		t.Fatalf("%d QoS 1 messages in flight, want --max-inflight 5", len(got))
	}
	// PUBLISH body: topic "win/t" (2+5 bytes), then the packet identifier.
	c.send([]byte{0x40, 0x02, got[0].body[7], got[0].body[8]}) // PUBACK for the first
	if more := c.countPublishes(); len(more) != 1 {
		t.Fatalf("one PUBACK released %d messages, want 1", len(more))
	}
}

// TestReceiveMaximum: a 5.0 client announcing Receive Maximum 2 never has more than 2 QoS 1
// messages in flight towards it, whatever --max-inflight says.
func TestReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := dialRaw(t, b)
	c.connectRaw5("recvmax", []byte{
		0x21, 0x00, 0x02, // Receive Maximum 2
	})
	c.subscribeRaw("rm/t", true)
	pub := connect3(t, b, "recvmax-pub", opts3{clean: true})
	pub.publishSeq(t, "rm/t", 1, "m", 5)
	if got := c.countPublishes(); len(got) != 2 {
		t.Fatalf("%d QoS 1 messages in flight, want Receive Maximum 2", len(got))
	}
}

// TestTopicAliasOutbound: to a 5.0 client that allows topic aliases, the broker sends a
// repeated topic as an alias: the first PUBLISH carries the topic and a Topic Alias, the next
// an empty topic and the same alias. The bytes saved matter on cellular links.
func TestTopicAliasOutbound(t *testing.T) {
	t.Parallel()
	onlyOurs(t, "it does not assign topic aliases to the messages it sends")
	b := startBroker(t, brokerOptions{})
	c := dialRaw(t, b)
	c.connectRaw5("alias-sub", []byte{
		0x22, 0x00, 0x0a, // Topic Alias Maximum 10
	})
	c.subscribeRaw("alias/long/topic/name", true)
	pub := connect3(t, b, "alias-pub", opts3{clean: true})
	pub.publishSeq(t, "alias/long/topic/name", 1, "m", 2)

	got := c.countPublishes()
	if len(got) != 2 {
		t.Fatalf("got %d PUBLISH packets, want 2", len(got))
	}
	first, firstAlias := splitAliasPublish(t, got[0])
	second, secondAlias := splitAliasPublish(t, got[1])
	if first != "alias/long/topic/name" || firstAlias == 0 {
		t.Fatalf("first PUBLISH: topic %q alias %d, want the topic and a new alias", first, firstAlias)
	}
	if second != "" || secondAlias != firstAlias {
		t.Fatalf("second PUBLISH: topic %q alias %d, want empty topic and alias %d", second, secondAlias, firstAlias)
	}
}

// splitAliasPublish returns the topic and the Topic Alias (0: none) of a 5.0 QoS 1 PUBLISH.
func splitAliasPublish(t *testing.T, p packet) (string, uint16) {
	t.Helper()
	b := p.body
	n := int(b[0])<<8 | int(b[1])
	topic := string(b[2 : 2+n])
	b = b[2+n+2:] // skip topic and packet identifier
	propLen, i := 0, 0
	for mult := 1; ; mult *= 128 {
		propLen += int(b[i]&0x7f) * mult
		i++
		if b[i-1] < 0x80 {
			break
		}
	}
	props := b[i : i+propLen]
	for len(props) > 0 {
		id := props[0]
		switch id {
		case 0x23: // Topic Alias, two bytes
			return topic, uint16(props[1])<<8 | uint16(props[2])
		case 0x01: // Payload Format Indicator, one byte
			props = props[2:]
		case 0x02: // Message Expiry Interval, four bytes
			props = props[5:]
		case 0x0b: // Subscription Identifier, variable byte integer
			j := 1
			for props[j] >= 0x80 {
				j++
			}
			props = props[j+1:]
		default:
			t.Fatalf("unexpected property %02x in % x", id, p.body)
		}
	}
	return topic, 0
}

// TestTopicAliasInbound: a 5.0 publisher that sets a Topic Alias with its first PUBLISH can
// send the next with an empty topic and that alias; subscribers see the full topic both times.
func TestTopicAliasInbound(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect3(t, b, "inalias-sub", opts3{clean: true})
	sub.subscribe(t, "in/alias", 1)
	c := dialRaw(t, b)
	c.connectRaw5("inalias-pub", nil)
	c.send([]byte{
		0x32, 0x11, // PUBLISH QoS 1, remaining length 17
		0x00, 0x08, 'i', 'n', '/', 'a', 'l', 'i', 'a', 's', // topic "in/alias"
		0x00, 0x01, // packet identifier 1
		0x03,             // property length 3
		0x23, 0x00, 0x01, // Topic Alias 1
		'a', // payload
	})
	c.expectPuback5(1)
	c.send([]byte{
		0x32, 0x09, // PUBLISH QoS 1, remaining length 9
		0x00, 0x00, // topic: empty, the alias stands for it
		0x00, 0x02, // packet identifier 2
		0x03,             // property length 3
		0x23, 0x00, 0x01, // Topic Alias 1
		'b', // payload
	})
	c.expectPuback5(2)
	got := sub.in.waitExactly(t, 2)
	for _, m := range got {
		if m.topic != "in/alias" {
			t.Fatalf("subscriber got topic %q, want in/alias", m.topic)
		}
	}
}

// expectPuback5 reads a 5.0 PUBACK for packet identifier id and fails t unless it reports
// success. The reason code and properties may be left out when the reason is success.
func (c *rawConn) expectPuback5(id uint16) {
	c.t.Helper()
	p, err := c.read(waitLong)
	if err != nil || p.header != 0x40 || len(p.body) < 2 || p.body[0] != byte(id>>8) || p.body[1] != byte(id) ||
		(len(p.body) > 2 && p.body[2] >= 0x80) {
		c.t.Fatalf("want a successful PUBACK for packet %d, got %v %v", id, p, err)
	}
}

// TestSharedRedelivery: QoS 1 messages in flight to a shared-subscription member that leaves
// without acknowledging them go to the remaining member: nothing is lost and nothing doubled.
func TestSharedRedelivery(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	stays := connect5Clean(t, b, "shared-stays")
	stays.subscribe(t, 0, paho.SubscribeOptions{Topic: "$share/g/red/t", QoS: 1})
	leaves := dialRaw(t, b)
	leaves.connectRaw5("shared-leaves", nil)
	leaves.subscribeRaw("$share/g/red/t", true)

	pub := connect5Clean(t, b, "shared-red-pub")
	const n = 10
	for _, p := range seq("m", 0, n) {
		pub.publish(t, &paho.Publish{Topic: "red/t", QoS: 1, Payload: []byte(p)})
	}
	if got := leaves.countPublishes(); len(got) == 0 {
		t.Fatal("the leaving member got no message: distribution is not fair")
	}
	leaves.Close() // leaves without acknowledging anything

	got := payloads(stays.in.waitExactly(t, n))
	slices.Sort(got)
	want := seq("m", 0, n)
	slices.Sort(want)
	equalStrings(t, "messages the remaining member got", got, want)
}
