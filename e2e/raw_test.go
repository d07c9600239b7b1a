package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawConn is a TCP connection to the broker driven byte by byte, for input no client library
// would send and for reading exactly what the broker answers.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

// dialRaw opens a TCP connection to b and closes it when the test ends.
func dialRaw(t *testing.T, b *broker) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

// send writes the concatenation of parts.
func (c *rawConn) send(parts ...[]byte) {
	c.t.Helper()
	var buf []byte
	for _, p := range parts {
		buf = append(buf, p...)
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf); err != nil {
		c.t.Fatalf("write % x: %v", buf, err)
	}
}

// packet is one control packet read off the wire.
type packet struct {
	header byte // type in the high nibble, flags in the low one
	body   []byte
}

func (p packet) String() string { return fmt.Sprintf("packet %02x % x", p.header, p.body) }

// errClosed reports that the broker closed the connection (EOF or reset).
var errClosed = errors.New("connection closed by the broker")

// read reads one packet, waiting at most d; it returns errClosed when the broker closed the
// connection and a timeout error when nothing arrived.
func (c *rawConn) read(d time.Duration) (packet, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	h, err := c.r.ReadByte()
	if err != nil {
		return packet{}, classify(err)
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return packet{}, classify(err)
		}
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return packet{}, fmt.Errorf("broker sent a malformed remaining length after %02x", h)
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return packet{}, classify(err)
	}
	return packet{header: h, body: body}, nil
}

func classify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return fmt.Errorf("%w (%v)", errClosed, err)
}

// expect reads one packet and fails t unless it is exactly want (header and body).
func (c *rawConn) expect(want []byte) {
	c.t.Helper()
	p, err := c.read(waitLong)
	if err != nil {
		c.t.Fatalf("waiting for % x: %v", want, err)
	}
	got := append([]byte{p.header}, encodeLen(len(p.body))...)
	got = append(got, p.body...)
	if string(got) != string(want) {
		c.t.Fatalf("broker sent % x, want % x", got, want)
	}
}

// expectClosed fails t unless the broker closes the connection within waitLong without sending
// any further packet.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	p, err := c.read(waitLong)
	if err == nil {
		c.t.Fatalf("broker sent %v, want the connection closed", p)
	}
	if !errors.Is(err, errClosed) {
		c.t.Fatalf("connection still open after %v: %v", waitLong, err)
	}
}

// connect sends a CONNECT with client id id, clean start and the given protocol level
// (3: 3.1, 4: 3.1.1, 5: 5.0) and keep-alive, and checks that the CONNACK accepts it.
func (c *rawConn) connect(level byte, id string, keepAlive uint16) {
	c.t.Helper()
	c.send(connectPacket(level, id, keepAlive, nil))
	p, err := c.read(waitLong)
	if err != nil {
		c.t.Fatalf("waiting for CONNACK: %v", err)
	}
	if p.header != 0x20 || len(p.body) < 2 || p.body[1] != 0 {
		c.t.Fatalf("got %v, want a CONNACK accepting the connection", p)
	}
}

// connectPacket builds a CONNECT packet with clean start for protocol level 3, 4 or 5,
// optionally with a QoS 0 will (willTopic, payload "gone").
func connectPacket(level byte, id string, keepAlive uint16, will *string) []byte {
	name := "MQTT"
	if level == 3 {
		name = "MQIsdp"
	}
	flags := byte(0x02) // Clean Session / Clean Start
	var v []byte
	v = append(v, str(name)...) // protocol name
	v = append(v, level)        // protocol level
	if will != nil {            //
		flags |= 0x04 // Will Flag, Will QoS 0, no retain
	}
	v = append(v, flags)                               // connect flags
	v = append(v, byte(keepAlive>>8), byte(keepAlive)) // keep alive
	if level == 5 {                                    //
		v = append(v, 0x00) // properties length 0
	}
	v = append(v, str(id)...) // client identifier
	if will != nil {
		if level == 5 {
			v = append(v, 0x00) // will properties length 0
		}
		v = append(v, str(*will)...)  // will topic
		v = append(v, str("gone")...) // will payload (two-byte length, then bytes)
	}
	return append(append([]byte{0x10}, encodeLen(len(v))...), v...)
}

// str encodes s as an MQTT UTF-8 string: two-byte big-endian length, then the bytes.
func str(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// encodeLen encodes n as an MQTT variable byte integer.
func encodeLen(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// TestSplitPackets: packets that arrive one byte per TCP segment are decoded like whole ones.
// Real links (cellular, serial bridges) split packets anywhere, including inside the remaining
// length and the property length.
func TestSplitPackets(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	for _, level := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", level), func(t *testing.T) {
			c := dialRaw(t, b)
			trickle := func(p []byte) {
				for i := range p {
					c.send(p[i : i+1])
					time.Sleep(time.Millisecond) // force one segment per byte, not a wait
				}
			}
			trickle(connectPacket(level, fmt.Sprintf("split%d", level), 0, nil))
			p, err := c.read(waitLong)
			if err != nil || p.header != 0x20 || len(p.body) < 2 || p.body[1] != 0 {
				t.Fatalf("CONNACK: %v %v", p, err)
			}
			sub := []byte{
				0x82, 0x0a, // SUBSCRIBE, remaining length 10
				0x00, 0x07, // packet identifier 7
			}
			if level == 5 {
				sub[1]++
				sub = append(sub, 0x00) // properties length 0
			}
			sub = append(sub,
				0x00, 0x03, 's', '/', 't', // topic filter "s/t"
				0x01, // QoS 1
			)
			// Remaining length counts packet identifier, properties, filter and options.
			sub[1] = byte(len(sub) - 2)
			trickle(sub)
			p, err = c.read(waitLong)
			if err != nil || p.header != 0x90 || len(p.body) < 3 || p.body[0] != 0x00 || p.body[1] != 0x07 || p.body[len(p.body)-1] != 0x01 {
				t.Fatalf("SUBACK granting QoS 1 to packet 7: %v %v", p, err)
			}
		})
	}
}
