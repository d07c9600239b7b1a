package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// TestFlowControlNoLoss: four QoS 1 publishers at full speed into one connected, reading
// subscriber whose queue holds only 100 messages. A broker that acknowledges and then drops
// loses most of them; ours slows the publishers instead, so every message arrives exactly once
// and in order per publisher. The reference broker drops by design, so it is not run there.
func TestFlowControlNoLoss(t *testing.T) {
	t.Parallel()
	onlyOurs(t, "it drops acknowledged messages when a connected subscriber's queue is full")
	perPublisher := 2000
	if testing.Short() {
		perPublisher = 500
	}
	const publishers = 4
	b := startBroker(t, brokerOptions{maxQueued: 100})

	sub := connect3(t, b, "flow-sub", opts3{clean: true})
	sub.subscribe(t, "flow/#", 1)

	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		pub := connect3(t, b, fmt.Sprintf("flow-pub%d", p), opts3{clean: true})
		wg.Go(func() {
			// Publish everything without waiting, then wait for every PUBACK: the client
			// library pipelines, so the broker sees the publisher at full speed.
			toks := make([]mqtt3.Token, perPublisher)
			for i := range perPublisher {
				toks[i] = pub.Publish(fmt.Sprintf("flow/%d", p), 1, false, fmt.Sprintf("%d-%d", p, i))
			}
			deadline := time.Now().Add(2 * time.Minute)
			for i, tok := range toks {
				if !tok.WaitTimeout(time.Until(deadline)) {
					errs <- fmt.Errorf("publisher %d: message %d not acknowledged in time", p, i)
					return
				}
				if err := tok.Error(); err != nil {
					errs <- fmt.Errorf("publisher %d: message %d: %v", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	total := publishers * perPublisher
	checkFor(t, time.Minute, 50*time.Millisecond, func() error {
		if got := len(sub.in.all()); got < total {
			return fmt.Errorf("subscriber received %d of %d acknowledged messages", got, total)
		}
		return nil
	})
	got := sub.in.waitExactly(t, total)
	next := make([]int, publishers)
	for _, m := range got {
		p, i, ok := strings.Cut(m.payload, "-")
		pn, err1 := strconv.Atoi(p)
		in, err2 := strconv.Atoi(i)
		if !ok || err1 != nil || err2 != nil || pn < 0 || pn >= publishers {
			t.Fatalf("unexpected payload %q", m.payload)
		}
		if in != next[pn] {
			t.Fatalf("publisher %d: got message %d, want %d (lost, duplicated or out of order)", pn, in, next[pn])
		}
		next[pn]++
	}
}

// TestSlowConsumerTimeout: a subscriber that stops reading may block its publishers only for
// --slow-consumer-timeout; after that the overflow policy applies and publishing goes on. A
// healthy subscriber beside it keeps receiving.
func TestSlowConsumerTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{maxQueued: 10, maxInflight: 5, slowConsumerTimeout: time.Second})
	healthy := connect3(t, b, "healthy", opts3{clean: true})
	healthy.subscribe(t, "slow/t", 1)

	// A subscriber that subscribes and then never reads or acknowledges anything.
	stuck := dialRaw(t, b)
	stuck.connect(4, "stuck", 0)
	stuck.send([]byte{
		0x82, 0x0b, // SUBSCRIBE, remaining length 11
		0x00, 0x01, // packet identifier 1
		0x00, 0x06, 's', 'l', 'o', 'w', '/', 't', // topic filter "slow/t"
		0x01, // requested QoS 1
	})
	stuck.expect([]byte{
		0x90, 0x03, // SUBACK, remaining length 3
		0x00, 0x01, // packet identifier 1
		0x01, // granted QoS 1
	})
	// Shrink the stuck socket's receive buffer so the broker's writes to it block early; on
	// loopback the kernel would otherwise absorb megabytes.
	_ = stuck.Conn.(*net.TCPConn).SetReadBuffer(4096)

	const n = 300
	pub := connect3(t, b, "slow-pub", opts3{clean: true})
	start := time.Now()
	pub.publishSeq(t, "slow/t", 1, "m", n) // fails if a PUBACK takes longer than waitLong
	t.Logf("%d QoS 1 messages acknowledged in %v with a stuck subscriber", n, time.Since(start))
	equalStrings(t, "healthy subscriber", payloads(healthy.in.waitExactly(t, n)), seq("m", 0, n))
}
