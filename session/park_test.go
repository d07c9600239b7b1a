package session

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"edgebroker/codec"
)

// parkedConns counts the connections whose reader is parked (no goroutine, no read buffer).
func parkedConns(b *Broker) (parked, all int) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for c := range b.conns {
		if !c.reading.Load() {
			parked++
		}
	}
	return parked, len(b.conns)
}

// TestQuietConnectionsAreParked: connected clients that send nothing hold no reader goroutine
// and no read buffer, and are charged only their state; each is read again as soon as it
// speaks, and its messages flow as before.
func TestQuietConnectionsAreParked(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	const n = 40
	before := runtime.NumGoroutine()
	clients := make([]*client, n)
	for i := range clients {
		c, _ := connectClient(t, addr, codec.V311, fmt.Sprint("quiet", i), false)
		c.subscribe(1, fmt.Sprint("quiet/", i), 1)
		clients[i] = c
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if parked, all := parkedConns(b); parked != n || all != n {
			return fmt.Errorf("%d of %d connections parked, want all %d", parked, all, n)
		}
		return nil
	})
	// The test's own side holds no goroutine per client (its reads are synchronous): what
	// grew with the clients would be the broker's readers.
	if grown := runtime.NumGoroutine() - before; grown >= n/2 {
		t.Fatalf("%d goroutines more with %d quiet clients connected, want fewer than %d", grown, n, n/2)
	}
	if used, want := b.mem.Used(), int64(n)*connCost+int64(n)*(sessionCost+subscriptionCost); used < want || used >= want+int64(n)*readerCost {
		t.Fatalf("budget used %d with %d parked clients, want about %d: their state without readers", used, n, want)
	}
	expectBalanced(t, b)

	// Each speaks: it is read at once, and parks again afterwards.
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i, c := range clients {
		c.send(&codec.Pingreq{})
		if p := c.next(); p.Type() != codec.PINGRESP {
			t.Fatalf("client %d: got %T to PINGREQ, want PINGRESP", i, p)
		}
		pub.publish(uint16(i+1), fmt.Sprint("quiet/", i), 1, fmt.Sprint("m", i)) // and its PUBACK
		got := c.receive()
		if string(got.Payload) != fmt.Sprint("m", i) {
			t.Fatalf("client %d got %q", i, got.Payload)
		}
		c.send(&codec.Ack{Kind: codec.PUBACK, PacketID: got.PacketID})
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if parked, all := parkedConns(b); parked != all {
			return fmt.Errorf("%d of %d connections parked after they spoke, want all", parked, all)
		}
		return nil
	})
	expectBalanced(t, b)
}

// TestParkedConnectionTakenOverAndClosed: a parked connection is woken to end, by a takeover
// and by the broker's shutdown.
func TestParkedConnectionTakenOverAndClosed(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	old, _ := connectClient(t, addr, codec.V5, "dev", false)
	other, _ := connectClient(t, addr, codec.V5, "other", false)
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if parked, all := parkedConns(b); parked != 2 || all != 2 {
			return fmt.Errorf("%d of %d connections parked, want 2 of 2", parked, all)
		}
		return nil
	})
	_, ack := connectClient(t, addr, codec.V5, "dev", false)
	if !ack.SessionPresent {
		t.Fatal("takeover did not resume the session")
	}
	if got := old.expectClosed(); len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.SessionTakenOver {
		t.Fatalf("parked connection taken over got %v, want DISCONNECT 0x8E", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("close with parked connections: %v", err)
	}
	if got := other.expectClosed(); len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ServerShuttingDown {
		t.Fatalf("parked connection at shutdown got %v, want DISCONNECT 0x8B", got)
	}
}

// TestPacketsBehindConnectAreRead: a client that sends SUBSCRIBE and PINGREQ in the same
// write as its CONNECT, without waiting for CONNACK, has them answered: bytes already
// buffered are read before the connection parks.
func TestPacketsBehindConnectAreRead(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	c := dial(t, addr, codec.V311)
	var burst []byte
	for _, p := range []codec.Packet{
		&codec.Connect{Version: codec.V311, ProtocolName: "MQTT", ClientID: "eager", CleanStart: true, KeepAlive: 60},
		&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: "eager/#", QoS: 1}}},
		&codec.Pingreq{},
	} {
		var err error
		if burst, err = p.Encode(burst, codec.V311); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.nc.Write(burst); err != nil {
		t.Fatal(err)
	}
	for _, want := range []codec.Type{codec.CONNACK, codec.SUBACK, codec.PINGRESP} {
		if p := c.next(); p.Type() != want {
			t.Fatalf("got %T, want %v", p, want)
		}
	}
}
