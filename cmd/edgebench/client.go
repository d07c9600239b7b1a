package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"edgebroker/codec"
)

// errProtocol is the prefix of errors about what a broker sent.
var errProtocol = errors.New("edgebench: unexpected reply")

// maxPacket bounds the size of packets the client accepts from a broker.
const maxPacket = 1 << 20

// client is a lean MQTT 3.1.1 connection for load generation: no reconnects, no retries, no
// keep-alive (it connects with Keep Alive 0). Its methods are not safe for concurrent use,
// except that one goroutine may read while another writes.
type client struct {
	conn    net.Conn
	br      *bufio.Reader
	rd      *codec.Reader
	bw      *bufio.Writer
	buf     []byte      // encoding scratch, reused
	release func() bool // stops the close-on-cancel hook
}

// dial connects to addr and completes the CONNECT/CONNACK exchange. The connection is closed
// as soon as ctx is done, so no read or write outlives it. It reports the Session Present flag.
func dial(ctx context.Context, addr, id string, clean bool) (*client, bool, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("edgebench: connect %s: %w", id, err)
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	c := &client{
		conn:    conn,
		br:      br,
		rd:      codec.NewReader(br, maxPacket),
		bw:      bufio.NewWriterSize(conn, 32<<10),
		release: context.AfterFunc(ctx, func() { conn.Close() }),
	}
	err = c.send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: clean, ClientID: id})
	if err == nil {
		err = c.flush()
	}
	var p codec.Packet
	if err == nil {
		p, err = c.read()
	}
	if err != nil {
		c.close()
		return nil, false, fmt.Errorf("edgebench: connect %s: %w", id, err)
	}
	ack, ok := p.(*codec.Connack)
	if !ok || ack.Reason != codec.Success {
		c.close()
		return nil, false, fmt.Errorf("%w: %s got %s instead of a successful CONNACK", errProtocol, id, describe(p))
	}
	return c, ack.SessionPresent, nil
}

// describe names a packet for error messages.
func describe(p codec.Packet) string {
	if ack, ok := p.(*codec.Connack); ok {
		return fmt.Sprintf("CONNACK with return code %d", ack.Reason)
	}
	return fmt.Sprintf("packet type %d", p.Type())
}

// send encodes p into the write buffer; it reaches the socket on flush or when the buffer fills.
func (c *client) send(p codec.Packet) error {
	b, err := p.Encode(c.buf[:0], codec.V311)
	if err != nil {
		return err
	}
	c.buf = b
	_, err = c.bw.Write(b)
	return err
}

// flush writes out everything sent so far.
func (c *client) flush() error { return c.bw.Flush() }

// read returns the next packet from the broker. The packet's slices may alias the reader's
// buffer: they stay valid only until the next read.
func (c *client) read() (codec.Packet, error) { return c.rd.ReadPacket() }

// buffered reports whether a read can proceed without waiting for the network, so that a
// reader knows when to flush its acknowledgements.
func (c *client) buffered() bool { return c.br.Buffered() > 0 }

// subscribe subscribes to filter and waits for the SUBACK. It must be called on a connection
// that has nothing queued for it yet (a fresh session), since it accepts only a SUBACK.
func (c *client) subscribe(filter string, qos byte) error {
	err := c.send(&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: filter, QoS: qos}}})
	if err == nil {
		err = c.flush()
	}
	var p codec.Packet
	if err == nil {
		p, err = c.read()
	}
	if err != nil {
		return fmt.Errorf("edgebench: subscribe %s: %w", filter, err)
	}
	ack, ok := p.(*codec.Suback)
	if !ok || ack.PacketID != 1 || len(ack.Reasons) != 1 || ack.Reasons[0] != codec.ReasonCode(qos) {
		return fmt.Errorf("%w: subscribe %s at QoS %d: got %s %+v", errProtocol, filter, qos, describe(p), p)
	}
	return nil
}

// ping sends PINGREQ and waits for PINGRESP. Since a broker handles a connection's packets in
// order, the answer means it has read everything sent before. Only for connections that are
// sent nothing else, such as publishers without subscriptions.
func (c *client) ping() error {
	err := c.send(&codec.Pingreq{})
	if err == nil {
		err = c.flush()
	}
	var p codec.Packet
	if err == nil {
		p, err = c.read()
	}
	if err != nil {
		return fmt.Errorf("edgebench: ping: %w", err)
	}
	if _, ok := p.(*codec.Pingresp); !ok {
		return fmt.Errorf("%w: ping got %s", errProtocol, describe(p))
	}
	return nil
}

// disconnect sends DISCONNECT and closes the connection.
func (c *client) disconnect() error {
	err := c.send(&codec.Disconnect{})
	if err == nil {
		err = c.flush()
	}
	c.close()
	return err
}

// parkWait bounds how long park waits for the broker to close the connection.
const parkWait = 10 * time.Second

// park leaves a persistent session offline: it sends DISCONNECT and waits for the broker to
// close the connection, which it does once the session is detached. What is published next
// is then queued for the session, not sent on this connection. No other goroutine may be
// reading.
func (c *client) park() error {
	err := c.send(&codec.Disconnect{})
	if err == nil {
		err = c.flush()
	}
	if err == nil {
		c.conn.SetReadDeadline(time.Now().Add(parkWait))
		if _, err = io.Copy(io.Discard, c.br); err != nil {
			err = fmt.Errorf("edgebench: the broker did not close the connection after DISCONNECT: %w", err)
		}
	}
	c.close()
	return err
}

// close closes the connection without a DISCONNECT.
func (c *client) close() {
	c.release()
	c.conn.Close()
}

// counterWait bounds how long readCounter waits for the retained value.
const counterWait = 5 * time.Second

// readCounter reads the number a broker keeps retained on topic (one of its $SYS counters)
// with a clean session of its own.
func readCounter(ctx context.Context, addr, topic string) (uint64, error) {
	c, _, err := dial(ctx, addr, "bench-counter", true)
	if err != nil {
		return 0, err
	}
	defer c.disconnect()
	if err := c.subscribe(topic, 0); err != nil {
		return 0, err
	}
	c.conn.SetReadDeadline(time.Now().Add(counterWait))
	for {
		p, err := c.read()
		if err != nil {
			return 0, fmt.Errorf("edgebench: read %s: %w", topic, err)
		}
		if pub, ok := p.(*codec.Publish); ok && pub.Topic == topic {
			v, err := strconv.ParseUint(string(pub.Payload), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: %s holds %q, not a count", errProtocol, topic, pub.Payload)
			}
			return v, nil
		}
	}
}
