package session

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"edgebroker/codec"
	"edgebroker/session/store"
)

var versions = []codec.Version{codec.V31, codec.V311, codec.V5}

func TestPersistentSessionKeepsMessagesWhileOffline(t *testing.T) {
	for _, v := range versions {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			_, addr := startBroker(t, nil)
			sub, ack := connectClient(t, addr, v, "sub", false)
			if ack.SessionPresent {
				t.Fatal("new session reported as present")
			}
			sub.subscribe(1, "room/+/temp", 1)
			sub.send(&codec.Disconnect{})
			sub.expectClosed()

			pub, _ := connectClient(t, addr, v, "pub", true)
			want := payloads(50, "m")
			for i, p := range want {
				pub.publish(uint16(i+1), "room/1/temp", 1, p)
			}
			sub, ack = connectClient(t, addr, v, "sub", false)
			if !ack.SessionPresent {
				t.Fatal("Session Present = 0 after resuming a persistent session")
			}
			for i, w := range want {
				if got := sub.receive(); string(got.Payload) != w || got.QoS != 1 {
					t.Fatalf("message %d: got %q QoS %d, want %q QoS 1", i, got.Payload, got.QoS, w)
				}
			}
			sub.expectNothing(100 * time.Millisecond)
		})
	}
}

func TestCleanSessionForgetsEverything(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "a", 1)
	sub.send(&codec.Disconnect{})
	sub.expectClosed()
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "a", 1, "lost")
	sub, ack := connectClient(t, addr, codec.V311, "sub", false)
	if ack.SessionPresent {
		t.Fatal("a clean session was resumed")
	}
	sub.expectNothing(200 * time.Millisecond)
}

func TestQoS0NotQueuedOfflineUnlessAsked(t *testing.T) {
	for _, queue := range []bool{false, true} {
		t.Run(fmt.Sprint("queue-qos0=", queue), func(t *testing.T) {
			_, addr := startBroker(t, func(o *Options) { o.QueueQoS0 = queue })
			parkSubscriber(t, addr, codec.V311, "sub", "a", 1)
			pub, _ := connectClient(t, addr, codec.V311, "pub", true)
			pub.publish(0, "a", 0, "zero")
			pub.publish(1, "a", 1, "one") // its PUBACK orders it after the QoS 0 one
			sub, _ := connectClient(t, addr, codec.V311, "sub", false)
			if queue {
				if got := sub.receive(); string(got.Payload) != "zero" || got.QoS != 0 {
					t.Fatalf("got %q QoS %d, want the queued QoS 0 message", got.Payload, got.QoS)
				}
			}
			if got := sub.receive(); string(got.Payload) != "one" {
				t.Fatalf("got %q, want one", got.Payload)
			}
			sub.expectNothing(100 * time.Millisecond)
		})
	}
}

func TestOverflowPolicyOfflineQueue(t *testing.T) {
	for _, tc := range []struct {
		policy     Overflow
		first, end int // payload numbers expected, [first, end)
	}{
		{DropNew, 0, 100},
		{DropOldest, 50, 150},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			b, addr := startBroker(t, func(o *Options) { o.Overflow = tc.policy })
			parkSubscriber(t, addr, codec.V311, "sub", "q", 1)
			pub, _ := connectClient(t, addr, codec.V311, "pub", true)
			for i := range 150 {
				pub.publish(uint16(i+1), "q", 1, fmt.Sprint(i))
			}
			if got := b.Stats().MessagesDropped.Load(); got != 50 {
				t.Fatalf("dropped %d, want 50", got)
			}
			sub, _ := connectClient(t, addr, codec.V311, "sub", false)
			for i := tc.first; i < tc.end; i++ {
				if got := sub.receive(); string(got.Payload) != fmt.Sprint(i) {
					t.Fatalf("got %q, want %d", got.Payload, i)
				}
			}
			sub.expectNothing(100 * time.Millisecond)
		})
	}
}

func TestFullQueueOfProgressingSubscriberSlowsPublisher(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) {
		o.MaxQueued = 5
		o.MaxInflight = 1
		o.SlowConsumerTimeout = time.Minute
	})
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "f", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	// One in flight to the subscriber plus five queued are acknowledged at once.
	for i := range 6 {
		pub.publish(uint16(i+1), "f", 1, fmt.Sprint(i))
	}
	// The seventh meets a full queue: its PUBACK waits for the subscriber.
	pub.send(&codec.Publish{PacketID: 7, Topic: "f", QoS: 1, Payload: []byte("6")})
	pub.expectNothing(300 * time.Millisecond)
	for i := range 7 {
		if got := sub.receive(); string(got.Payload) != fmt.Sprint(i) {
			t.Fatalf("got %q, want %d", got.Payload, i)
		}
	}
	if a, ok := pub.next().(*codec.Ack); !ok || a.PacketID != 7 {
		t.Fatalf("want PUBACK 7, got %+v", a)
	}
	if d := b.Stats().MessagesDropped.Load(); d != 0 {
		t.Fatalf("%d messages dropped, want none", d)
	}
}

func TestStuckSubscriberMeetsOverflowPolicy(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) {
		o.MaxQueued = 2
		o.MaxInflight = 1
		o.SlowConsumerTimeout = 200 * time.Millisecond
	})
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "s", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i := range 10 { // never acknowledged by the subscriber: every PUBACK still arrives
		pub.publish(uint16(i+1), "s", 1, fmt.Sprint(i))
	}
	if d := b.Stats().MessagesDropped.Load(); d != 7 { // 1 in flight + 2 queued kept
		t.Fatalf("dropped %d, want 7", d)
	}
}

func TestQoS0FanInToReadingSubscriberLosesNothing(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.MaxQueued = 10 })
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "in/#", 0)
	const pubs, each = 4, 2000
	done := make(chan struct{})
	for p := range pubs {
		c, _ := connectClient(t, addr, codec.V311, fmt.Sprint("pub", p), true)
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range each {
				buf, _ := (&codec.Publish{Topic: fmt.Sprint("in/", p), Payload: []byte(fmt.Sprint(i))}).Encode(nil, codec.V311)
				if _, err := c.nc.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	next := make([]int, pubs)
	for range pubs * each {
		got := sub.receive()
		var p, i int
		fmt.Sscanf(got.Topic, "in/%d", &p)
		fmt.Sscan(string(got.Payload), &i)
		if i != next[p] {
			t.Fatalf("publisher %d: got %d, want %d (lost or reordered)", p, i, next[p])
		}
		next[p]++
	}
	for range pubs {
		<-done
	}
	if d := b.Stats().MessagesDropped.Load(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
}

func TestQoS0NeverWaitsForAStuckSubscriber(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) {
		o.MaxQueued = 1
		o.MaxInflight = 1
		o.SlowConsumerTimeout = time.Minute
	})
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "z", 0)
	// The subscriber never reads again: 20 MB of QoS 0 fills its socket and its queue.
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	big := string(make([]byte, 100<<10))
	for range 200 {
		pub.publish(0, "z", 0, big)
	}
	pub.publish(1, "other", 1, "ack me") // routed after the 200: proves nothing waited
	if b.Stats().MessagesDropped.Load() == 0 {
		t.Fatal("no QoS 0 message was dropped")
	}
}

func TestInboundQoS2DeliveredOnce(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub, _ := connectClient(t, addr, codec.V5, "sub", true)
	sub.subscribe(1, "two", 2)
	pub, _ := connectClient(t, addr, codec.V5, "pub", false)
	p := &codec.Publish{PacketID: 9, Topic: "two", QoS: 2, Payload: []byte("once")}
	pub.send(p)
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBREC || a.PacketID != 9 {
		t.Fatalf("want PUBREC 9, got %+v", a)
	}
	// Reconnect and resend with DUP, as a client does when it lost the PUBREC [MQTT-4.3.3-10].
	pub.nc.Close()
	pub, ack := connectClient(t, addr, codec.V5, "pub", false)
	if !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	p.Dup = true
	pub.send(p)
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBREC || a.PacketID != 9 {
		t.Fatalf("want PUBREC 9 again, got %+v", a)
	}
	pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: 9})
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBCOMP || a.Reason != codec.Success {
		t.Fatalf("want PUBCOMP success, got %+v", a)
	}
	got := sub.next().(*codec.Publish)
	if string(got.Payload) != "once" || got.QoS != 2 {
		t.Fatalf("got %+v", got)
	}
	sub.send(&codec.Ack{Kind: codec.PUBREC, PacketID: got.PacketID})
	if a := sub.next().(*codec.Ack); a.Kind != codec.PUBREL {
		t.Fatalf("want PUBREL, got %+v", a)
	}
	sub.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: got.PacketID})
	sub.expectNothing(200 * time.Millisecond)
}

func TestInflightResentWithDupAfterReconnect(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub, _ := connectClient(t, addr, codec.V311, "sub", false)
	sub.subscribe(1, "d", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "d", 1, "first")
	p := sub.next().(*codec.Publish) // not acknowledged
	if p.Dup {
		t.Fatal("first delivery has DUP set")
	}
	sub.nc.Close()
	sub, _ = connectClient(t, addr, codec.V311, "sub", false)
	again := sub.next().(*codec.Publish)
	if !again.Dup || string(again.Payload) != "first" || again.PacketID != p.PacketID {
		t.Fatalf("want DUP resend of %d, got %+v", p.PacketID, again)
	}
	sub.send(&codec.Ack{Kind: codec.PUBACK, PacketID: again.PacketID})
	sub.expectNothing(100 * time.Millisecond)
}

func TestTakeoverClosesOldConnection(t *testing.T) {
	_, addr := startBroker(t, nil)
	old, _ := connectClient(t, addr, codec.V5, "dev", false)
	old.subscribe(1, "t", 1)
	_, ack := connectClient(t, addr, codec.V5, "dev", false)
	if !ack.SessionPresent {
		t.Fatal("takeover did not resume the session")
	}
	got := old.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.SessionTakenOver {
		t.Fatalf("old connection got %v, want DISCONNECT 0x8E", got)
	}
}

func TestWills(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       codec.Version
		end     func(c *client)
		publish bool
	}{
		{"abnormal close", codec.V311, func(c *client) { c.nc.Close() }, true},
		{"normal disconnect", codec.V311, func(c *client) { c.send(&codec.Disconnect{}) }, false},
		{"v5 disconnect with will", codec.V5, func(c *client) {
			c.send(&codec.Disconnect{Reason: codec.DisconnectWithWill})
		}, true},
		{"v5 protocol error", codec.V5, func(c *client) { c.send(&codec.Connect{}) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startBroker(t, nil)
			watcher, _ := connectClient(t, addr, codec.V311, "watcher", true)
			watcher.subscribe(1, "will/#", 1)
			c := dial(t, addr, tc.v)
			if ack := c.connect(&codec.Connect{ClientID: "dying", CleanStart: true, WillFlag: true,
				WillTopic: "will/dying", WillPayload: []byte("gone"), WillQoS: 1}); ack.Reason != 0 {
				t.Fatal(ack.Reason)
			}
			tc.end(c)
			if !tc.publish {
				watcher.expectNothing(300 * time.Millisecond)
				return
			}
			if got := watcher.receive(); got.Topic != "will/dying" || string(got.Payload) != "gone" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestWillDelay(t *testing.T) {
	_, addr := startBroker(t, nil)
	watcher, _ := connectClient(t, addr, codec.V311, "watcher", true)
	watcher.subscribe(1, "will", 1)
	connectWithDelayedWill := func() *client {
		c := dial(t, addr, codec.V5)
		cp := &codec.Connect{ClientID: "dev", WillFlag: true, WillTopic: "will", WillPayload: []byte("late")}
		cp.Props.Present.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = 60
		cp.WillProps.Present.Set(codec.PropWillDelay)
		cp.WillProps.WillDelay = 1
		if ack := c.connect(cp); ack.Reason != 0 {
			t.Fatal(ack.Reason)
		}
		return c
	}
	c := connectWithDelayedWill()
	c.nc.Close()
	c = connectWithDelayedWill() // back within the delay: the will is cancelled
	watcher.expectNothing(1500 * time.Millisecond)
	c.nc.Close()
	if got := watcher.receive(); string(got.Payload) != "late" {
		t.Fatalf("got %q", got.Payload)
	}
}

func TestSessionExpiryV5(t *testing.T) {
	b, addr := startBroker(t, nil)
	c := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: "short"}
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 1
	c.connect(cp)
	c.nc.Close()
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := b.SessionCount(); n != 0 {
			return fmt.Errorf("%d sessions after expiry", n)
		}
		return nil
	})
	// Expiry 0 ends the session at once on disconnect.
	c = dial(t, addr, codec.V5)
	c.connect(&codec.Connect{ClientID: "zero"})
	c.send(&codec.Disconnect{})
	c.expectClosed()
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := b.SessionCount(); n != 0 {
			return fmt.Errorf("%d sessions after a disconnect with expiry 0", n)
		}
		return nil
	})
}

func TestDisconnectCannotRaiseExpiryFromZero(t *testing.T) {
	_, addr := startBroker(t, nil)
	c := dial(t, addr, codec.V5)
	c.connect(&codec.Connect{ClientID: "z"})
	d := &codec.Disconnect{}
	d.Props.Present.Set(codec.PropSessionExpiry)
	d.Props.SessionExpiry = 10
	c.send(d)
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ProtocolError {
		t.Fatalf("got %v, want DISCONNECT 0x82 [MQTT-3.14.2-2]", got)
	}
}

func TestMessageExpiryWhileQueued(t *testing.T) {
	_, addr := startBroker(t, nil)
	parkSubscriber(t, addr, codec.V5, "sub", "e", 1)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	for i, exp := range []uint32{1, 100} {
		p := &codec.Publish{PacketID: uint16(i + 1), Topic: "e", QoS: 1, Payload: []byte(fmt.Sprint(exp))}
		p.Props.Present.Set(codec.PropMessageExpiry)
		p.Props.MessageExpiry = exp
		pub.send(p)
		pub.next()
	}
	time.Sleep(1100 * time.Millisecond) // let the 1 s message expire while queued
	sub, _ := connectClient(t, addr, codec.V5, "sub", false)
	got := sub.receive()
	if string(got.Payload) != "100" {
		t.Fatalf("got %q, want only the unexpired message", got.Payload)
	}
	if e := got.Props.MessageExpiry; !got.Props.Present.Has(codec.PropMessageExpiry) || e > 99 || e < 90 {
		t.Fatalf("forwarded expiry %d, want the remaining interval (<100)", e)
	}
	sub.expectNothing(100 * time.Millisecond)
}

func TestSharedSubscriptionHandsOverDepartedMembersMessages(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.MaxInflight = 10 })
	a, _ := connectClient(t, addr, codec.V5, "a", true)
	a.subscribe(1, "$share/g/work", 1)
	bb, _ := connectClient(t, addr, codec.V5, "b", true)
	bb.subscribe(1, "$share/g/work", 1)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	for i := range 10 {
		pub.publish(uint16(i+1), "work", 1, fmt.Sprint(i))
	}
	// a takes its share without acknowledging and leaves; b must end with all ten.
	got := map[string]bool{}
	var aCount int
	for {
		p, err := a.tryNext(300 * time.Millisecond)
		if err != nil {
			break
		}
		aCount++
		_ = p
	}
	if aCount == 0 {
		t.Fatal("round robin gave member a nothing")
	}
	a.nc.Close()
	for len(got) < 10 {
		p := bb.receive()
		got[string(p.Payload)] = true
	}
	bb.expectNothing(200 * time.Millisecond)
}

func TestReceiveMaximumExceeded(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.MaxInflight = 2 })
	c := dial(t, addr, codec.V5)
	ack := c.connect(&codec.Connect{ClientID: "greedy", CleanStart: true})
	if ack.Props.ReceiveMaximum != 2 {
		t.Fatalf("Receive Maximum %d, want 2", ack.Props.ReceiveMaximum)
	}
	for i := range 3 { // QoS 2 without PUBREL: all three stay in flight
		c.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "x", QoS: 2})
	}
	got := c.expectClosed()
	last, ok := got[len(got)-1].(*codec.Disconnect)
	if !ok || last.Reason != codec.ReceiveMaximumExceeded {
		t.Fatalf("got %v, want DISCONNECT 0x93", got)
	}
}

func TestTopicAliases(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: "sub", CleanStart: true}
	cp.Props.Present.Set(codec.PropTopicAliasMaximum)
	cp.Props.TopicAliasMaximum = 4
	sub.connect(cp)
	sub.subscribe(1, "long/topic/name", 0)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	// The publisher sets alias 1 and then uses it alone.
	p := &codec.Publish{Topic: "long/topic/name", Payload: []byte("a")}
	p.Props.Present.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = 1
	pub.send(p)
	p2 := &codec.Publish{Payload: []byte("b")}
	p2.Props = p.Props
	pub.send(p2)
	first, second := sub.receive(), sub.receive()
	if first.Topic != "long/topic/name" || !first.Props.Present.Has(codec.PropTopicAlias) {
		t.Fatalf("first delivery should carry topic and alias: %+v", first)
	}
	if second.Topic != "" || second.Props.TopicAlias != first.Props.TopicAlias || string(second.Payload) != "b" {
		t.Fatalf("second delivery should use the alias alone: %+v", second)
	}
	// An alias above the maximum closes the connection with 0x94.
	bad := &codec.Publish{Topic: "x"}
	bad.Props.Present.Set(codec.PropTopicAlias)
	bad.Props.TopicAlias = 1000
	pub.send(bad)
	got := pub.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.TopicAliasInvalid {
		t.Fatalf("got %v, want DISCONNECT 0x94", got)
	}
}

func TestPublishPropertyRules(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub, _ := connectClient(t, addr, codec.V5, "sub", true)
	sub.subscribe(1, "p", 1)
	c, _ := connectClient(t, addr, codec.V5, "pub", true)
	// Payload Format 1 promises UTF-8: a payload that is not is refused with 0x99, not routed.
	bad := &codec.Publish{PacketID: 1, Topic: "p", QoS: 1, Payload: []byte{0xff, 0xfe}}
	bad.Props.Present.Set(codec.PropPayloadFormat)
	bad.Props.PayloadFormat = 1
	c.send(bad)
	if a := c.next().(*codec.Ack); a.Kind != codec.PUBACK || a.Reason != codec.PayloadFormatInvalid {
		t.Fatalf("got %+v, want PUBACK 0x99", a)
	}
	sub.expectNothing(200 * time.Millisecond)
	// A client may not send a Subscription Identifier [MQTT-3.3.4-6].
	withID := &codec.Publish{Topic: "p"}
	withID.Props.SubscriptionIDs = []uint32{7}
	c.send(withID)
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ProtocolError {
		t.Fatalf("got %v, want DISCONNECT 0x82", got)
	}
}

func TestReloadQueueLimits(t *testing.T) {
	b, addr := startBroker(t, nil)
	parkSubscriber(t, addr, codec.V311, "sub", "r", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i := range 10 {
		pub.publish(uint16(i+1), "r", 1, fmt.Sprint(i))
	}
	r := Reloadable{MaxQueued: 4, Overflow: DropOldest, SlowConsumerTimeout: time.Second, ConnectTimeout: time.Second}
	if err := b.Reload(r); err != nil {
		t.Fatal(err)
	}
	if d := b.Stats().MessagesDropped.Load(); d != 6 {
		t.Fatalf("dropped %d on lowering the queue to 4, want 6", d)
	}
	pub.publish(11, "r", 1, "10") // drop-oldest now: evicts 6
	sub, _ := connectClient(t, addr, codec.V311, "sub", false)
	for _, want := range []string{"7", "8", "9", "10"} {
		if got := sub.receive(); string(got.Payload) != want {
			t.Fatalf("got %q, want %q", got.Payload, want)
		}
	}
	if err := b.Reload(Reloadable{MaxQueued: 0, Overflow: DropNew, SlowConsumerTimeout: time.Second, ConnectTimeout: time.Second}); err == nil {
		t.Fatal("a queue capacity of 0 was accepted")
	}
}

func TestSysTopics(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) {
		o.SysInterval = 20 * time.Millisecond
		o.SysPerClient = true
		o.Version = "test"
	})
	all, _ := connectClient(t, addr, codec.V311, "all", true)
	all.subscribe(1, "#", 0) // '#' does not match $ topics [MQTT-4.7.2-1]
	parkSubscriber(t, addr, codec.V311, "parked", "p", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i := range 3 {
		pub.publish(uint16(i+1), "p", 1, "x")
	}
	for range 3 {
		all.receive()
	}
	c, _ := connectClient(t, addr, codec.V311, "watcher", true)
	c.subscribe(1, "$SYS/#", 0)
	brief, _ := connectClient(t, addr, codec.V311, "brief", true) // the fourth at once
	brief.send(&codec.Disconnect{})
	brief.expectClosed()
	want := map[string]string{
		"$SYS/broker/version":               "edgebroker test",
		"$SYS/broker/clients/connected":     "3",
		"$SYS/broker/clients/disconnected":  "1", // parked
		"$SYS/broker/clients/total":         "4",
		"$SYS/broker/clients/maximum":       "4",
		"$SYS/broker/clients/all/queued":    "0",
		"$SYS/broker/clients/parked/queued": "3",
		"$SYS/broker/store/messages/count":  "3",
	}
	// The first values are the retained ones, which a slow machine may have published before
	// the last publication was counted or the parked client's disconnection was: read on
	// (every 20 ms brings a fresh set) until they all agree, for a bounded number of messages.
	got := map[string]string{}
	agree := func() bool {
		for topic, w := range want {
			if got[topic] != w {
				return false
			}
		}
		return true
	}
	for n := 0; !agree(); n++ {
		if n == 2000 {
			t.Fatalf("after %d $SYS messages: got %v, want %v", n, got, want)
		}
		p := c.receive()
		got[p.Topic] = string(p.Payload)
	}
	all.expectNothing(100 * time.Millisecond)
}

func TestMaxQueuedBytes(t *testing.T) {
	for _, tc := range []struct {
		policy Overflow
		want   []string
	}{
		{DropNew, []string{"0", "1", "2"}},
		{DropOldest, []string{"7", "8", "9"}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			b, addr := startBroker(t, func(o *Options) { o.MaxQueuedBytes = 3 * 101; o.Overflow = tc.policy })
			parkSubscriber(t, addr, codec.V311, "sub", "b", 1)
			pub, _ := connectClient(t, addr, codec.V311, "pub", true)
			for i := range 10 { // topic (1 byte) + 100-byte payload: three fit
				pub.publish(uint16(i+1), "b", 1, fmt.Sprintf("%-100d", i))
			}
			if d := b.Stats().MessagesDropped.Load(); d != 7 {
				t.Fatalf("dropped %d, want 7", d)
			}
			sub, _ := connectClient(t, addr, codec.V311, "sub", false)
			for _, w := range tc.want {
				if got := sub.receive(); strings.TrimSpace(string(got.Payload)) != w {
					t.Fatalf("got %q, want %s", got.Payload, w)
				}
			}
			sub.expectNothing(100 * time.Millisecond)
		})
	}
}

func TestMemoryPressureRefusesAndSlowsPublishers(t *testing.T) {
	// Room in the account for the two clients, far less than any Go heap: pressure at once.
	b, addr := startBroker(t, func(o *Options) { o.MemoryLimit = 64 << 10 })
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !b.pressure.Load() {
			return fmt.Errorf("no memory pressure")
		}
		return nil
	})
	v5, _ := connectClient(t, addr, codec.V5, "v5", true)
	v5.send(&codec.Publish{PacketID: 1, Topic: "m", QoS: 1, Payload: []byte("x")})
	if a := v5.next().(*codec.Ack); a.Reason != codec.QuotaExceeded {
		t.Fatalf("PUBACK %v under pressure, want 0x97", a.Reason)
	}
	v3, _ := connectClient(t, addr, codec.V311, "v3", true)
	v3.send(&codec.Publish{PacketID: 1, Topic: "m", QoS: 1, Payload: []byte("x")})
	v3.expectNothing(200 * time.Millisecond) // not read, so not acknowledged
	if err := b.Reload(Reloadable{MaxQueued: 100, Overflow: DropNew, MemoryLimit: 0,
		SlowConsumerTimeout: time.Second, ConnectTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	if a, ok := v3.next().(*codec.Ack); !ok || a.PacketID != 1 {
		t.Fatalf("the slowed publisher was not acknowledged once the pressure was gone: %+v", a)
	}
}

// More user properties than the store can decode again close the connection with 0x83, in a
// PUBLISH or in a will.
func TestTooManyUserProperties(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.MaxPacketSize = 1 << 20 })
	many := make([]codec.UserProperty, store.MaxUserProperties+1)
	c, _ := connectClient(t, addr, codec.V5, "pub", true)
	p := &codec.Publish{PacketID: 1, Topic: "t", QoS: 1, Payload: []byte("x")}
	p.Props.User = many
	c.send(p)
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ImplementationSpecific {
		t.Fatalf("got %v, want DISCONNECT 0x83", got)
	}
	w := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: "w", CleanStart: true, WillFlag: true, WillTopic: "t", WillPayload: []byte("x")}
	cp.WillProps.User = many
	if ack := w.connect(cp); ack.Reason != codec.ImplementationSpecific {
		t.Fatalf("CONNACK %v for a will with too many user properties, want 0x83", ack.Reason)
	}
}

func TestCloseTellsClientsServerShuttingDown(t *testing.T) {
	b, addr := startBroker(t, nil)
	v5, _ := connectClient(t, addr, codec.V5, "v5", false)
	v3, _ := connectClient(t, addr, codec.V311, "v3", false)
	go b.Close(t.Context())
	got := v5.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ServerShuttingDown {
		t.Fatalf("5.0 client got %v, want DISCONNECT 0x8B", got)
	}
	if got := v3.expectClosed(); len(got) != 0 {
		t.Fatalf("3.1.1 client got %v, want only the close", got)
	}
}

// A QoS 2 message of a shared subscription that a member has been sent stays with that member
// when it leaves: it gets it again (DUP) when it returns, and no other member gets it
// ([MQTT-4.8.2-4]). Its unsent share goes to the member still there.
func TestSharedQoS2InFlightStaysWithItsMember(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.MaxInflight = 1 })
	a, _ := connectClient(t, addr, codec.V5, "a", false)
	a.subscribe(1, "$share/g/work", 2)
	bb, _ := connectClient(t, addr, codec.V5, "b", true)
	bb.subscribe(1, "$share/g/work", 2)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	for i := range 4 {
		pub.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "work", QoS: 2, Payload: fmt.Append(nil, i)})
		if rec := pub.next().(*codec.Ack); rec.Kind != codec.PUBREC {
			t.Fatalf("got %+v, want PUBREC", rec)
		}
		pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: uint16(i + 1)})
		pub.next() // PUBCOMP
	}
	first := a.next().(*codec.Publish) // a's window of one: it sends no PUBREC
	a.nc.Close()
	got := map[string]bool{}
	for len(got) < 3 {
		p := bb.receive()
		if string(p.Payload) == string(first.Payload) {
			t.Fatalf("b got %q, which a had been sent", p.Payload)
		}
		got[string(p.Payload)] = true
	}
	bb.expectNothing(200 * time.Millisecond)
	a, ack := connectClient(t, addr, codec.V5, "a", false)
	if !ack.SessionPresent {
		t.Fatal("a's session is gone")
	}
	again := a.next().(*codec.Publish)
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != string(first.Payload) {
		t.Fatalf("a got %+v again, want %q with DUP and packet id %d", again, first.Payload, first.PacketID)
	}
}

// A connection taken over is closed within its drain time even if its client keeps
// publishing and never reads: the reader no longer pushes the drain deadline back.
func TestTakenOverPublisherIsClosed(t *testing.T) {
	_, addr := startBroker(t, nil)
	old, _ := connectClient(t, addr, codec.V311, "dev", true)
	connectClient(t, addr, codec.V311, "dev", true) // takes over
	limit := time.Now().Add(drainTimeout + 3*time.Second)
	buf, err := (&codec.Publish{Topic: "t", Payload: []byte("x")}).Encode(nil, codec.V311)
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(limit) {
		if _, err := old.nc.Write(buf); err != nil {
			return // closed
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the taken-over connection still takes PUBLISH packets %v after the takeover", drainTimeout+3*time.Second)
}

// Close keeps to its context when a subscriber does not read: the broker's writes to it wait,
// and each connection is told of the shutdown on its own.
func TestCloseWithASubscriberThatDoesNotRead(t *testing.T) {
	b, addr := startBroker(t, nil)
	stuck := dial(t, addr, codec.V5)
	if err := stuck.nc.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	stuck.connect(&codec.Connect{ClientID: "stuck", CleanStart: true})
	stuck.subscribe(1, "t", 0)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 200 { // far more than the sockets buffer: the broker's writer waits
		pub.send(&codec.Publish{Topic: "t", Payload: big})
	}
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	b.Close(ctx)
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("Close took %v with a 2 s context", took)
	}
}

// The connected-clients count counts a connection from the moment it has the session until it
// leaves it, so that one taken over before its CONNACK is not counted out without having been
// counted in.
func TestConnectedCountThroughTakeovers(t *testing.T) {
	b, addr := startBroker(t, nil)
	first, _ := connectClient(t, addr, codec.V311, "dev", true)
	_ = first // silent: the next takeover waits out its grace for first's reader
	second := dial(t, addr, codec.V311)
	second.send(&codec.Connect{Version: codec.V311, ProtocolName: "MQTT", ClientID: "dev", CleanStart: true, KeepAlive: 60})
	time.Sleep(100 * time.Millisecond) // second waits, before its CONNACK
	connectClient(t, addr, codec.V311, "dev", true)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if n := b.Stats().ClientsConnected.Load(); n != 1 {
			return fmt.Errorf("%d clients counted connected, want 1", n)
		}
		return nil
	})
}

// A 5.0 connection taken over before its CONNACK gets no DISCONNECT: a server sends one only
// after CONNACK [MQTT-3.14.0-1].
func TestTakenOverBeforeConnackGetsNoDisconnect(t *testing.T) {
	_, addr := startBroker(t, nil)
	connectClient(t, addr, codec.V5, "dev", true) // silent: the next takeover waits out its grace
	second := dial(t, addr, codec.V5)
	second.send(&codec.Connect{Version: codec.V5, ProtocolName: "MQTT", ClientID: "dev", CleanStart: true, KeepAlive: 60})
	time.Sleep(100 * time.Millisecond) // second waits, before its CONNACK
	connectClient(t, addr, codec.V5, "dev", true)
	got := second.expectClosed()
	if len(got) > 0 {
		if _, ok := got[0].(*codec.Connack); !ok {
			t.Fatalf("first packet %T %+v, want a CONNACK or nothing", got[0], got[0])
		}
	}
}

// A taken-over publisher whose reader waits to hand its router more work, while the router
// waits for a slow subscriber, is closed within its drain time, not after the slow-consumer
// timeout: the reader stops waiting when the connection is killed.
func TestTakenOverPublisherWaitingOnASlowSubscriber(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) {
		o.MaxQueued, o.MaxInflight, o.SlowConsumerTimeout = 2, 1, 30*time.Second
	})
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "t", 1) // and then reads nothing
	old, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i := range 40 { // the router waits at the fourth; the reader fills the inbox and waits
		old.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "t", QoS: 1, Payload: []byte("m")})
	}
	time.Sleep(200 * time.Millisecond)
	connectClient(t, addr, codec.V311, "pub", true) // takes over
	ping, err := (&codec.Pingreq{}).Encode(nil, codec.V311)
	if err != nil {
		t.Fatal(err)
	}
	limit := 2*drainTimeout + 2*time.Second
	for start := time.Now(); time.Since(start) < limit; time.Sleep(50 * time.Millisecond) {
		if _, err := old.nc.Write(ping); err != nil {
			return // closed
		}
	}
	t.Fatalf("the taken-over connection is still open %v after the takeover", limit)
}

// A PUBLISH dropped for the client's Maximum Packet Size teaches it no topic alias: the next
// message on that topic must carry the topic, not an alias the client never saw
// [MQTT-3.1.2-25], [MQTT-3.3.2-12].
func TestAliasOfADiscardedPublish(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub := dial(t, addr, codec.V5)
	cp := &codec.Connect{ClientID: "sub", CleanStart: true}
	cp.Props.Present.Set(codec.PropTopicAliasMaximum)
	cp.Props.TopicAliasMaximum = 4
	cp.Props.Present.Set(codec.PropMaximumPacketSize)
	cp.Props.MaximumPacketSize = 100
	sub.connect(cp)
	sub.subscribe(1, "t/a", 0)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	pub.publish(0, "t/a", 0, strings.Repeat("x", 200)) // too large for sub: discarded
	pub.publish(0, "t/a", 0, "small")
	pub.publish(0, "t/a", 0, "again")
	first, second := sub.receive(), sub.receive()
	if first.Topic != "t/a" || first.Props.TopicAlias != 1 {
		t.Fatalf("first PUBLISH received: topic %q alias %d, want t/a setting alias 1", first.Topic, first.Props.TopicAlias)
	}
	if second.Topic != "" || second.Props.TopicAlias != 1 || string(second.Payload) != "again" {
		t.Fatalf("second PUBLISH: topic %q alias %d, want alias 1 alone", second.Topic, second.Props.TopicAlias)
	}
}

// A SUBSCRIBE refused as a protocol error (No Local on a shared subscription, [MQTT-3.8.3-4])
// is never acknowledged: none of its subscriptions may take effect, not even those before
// the bad one.
func TestProtocolErrorSubscribeAddsNothing(t *testing.T) {
	_, addr := startBroker(t, nil)
	c, _ := connectClient(t, addr, codec.V5, "c", false)
	c.send(&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{
		{Filter: "a/b", QoS: 1},
		{Filter: "$share/g/x", QoS: 1, NoLocal: true},
	}})
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.ProtocolError {
		t.Fatalf("got %v, want DISCONNECT 0x82", got)
	}
	again, _ := connectClient(t, addr, codec.V5, "c", false)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	pub.publish(1, "a/b", 1, "hello")
	again.expectNothing(300 * time.Millisecond)
}

// A reconnecting client's Receive Maximum bounds the resend too [MQTT-3.3.4-7]: of what was in
// flight, every PUBREL goes again (its message still counts) and PUBLISHes only while there is
// room; the rest follow, in order and with DUP, as acknowledgements free room.
func TestResendKeepsToTheNewReceiveMaximum(t *testing.T) {
	_, addr := startBroker(t, nil)
	sub, _ := connectClient(t, addr, codec.V5, "sub", false)
	sub.subscribe(1, "t", 2)
	pub, _ := connectClient(t, addr, codec.V5, "pub", true)
	pub.send(&codec.Publish{PacketID: 1, Topic: "t", QoS: 2, Payload: []byte("q2")})
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBREC {
		t.Fatalf("got %+v, want PUBREC", a)
	}
	pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: 1})
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBCOMP {
		t.Fatalf("got %+v, want PUBCOMP", a)
	}
	q2 := sub.next().(*codec.Publish)
	sub.send(&codec.Ack{Kind: codec.PUBREC, PacketID: q2.PacketID})
	if a := sub.next().(*codec.Ack); a.Kind != codec.PUBREL {
		t.Fatalf("got %+v, want PUBREL", a)
	}
	ids := map[string]uint16{}
	for i := range 5 {
		pub.publish(uint16(10+i), "t", 1, fmt.Sprint("m", i))
		p := sub.next().(*codec.Publish) // not acknowledged
		ids[string(p.Payload)] = p.PacketID
	}
	sub.nc.Close()
	c := resumeWithReceiveMaximum(t, addr, "sub", 2)
	if rel, ok := c.next().(*codec.Ack); !ok || rel.Kind != codec.PUBREL || rel.PacketID != q2.PacketID {
		t.Fatalf("got %+v, want PUBREL %d first", rel, q2.PacketID)
	}
	expect := func(want string) {
		t.Helper()
		p, ok := c.next().(*codec.Publish)
		if !ok || string(p.Payload) != want || !p.Dup || p.PacketID != ids[want] {
			t.Fatalf("got %+v, want %s again with DUP and packet id %d", p, want, ids[want])
		}
		c.expectNothing(100 * time.Millisecond) // the window is full again
	}
	expect("m0") // with the PUBREL's message: two
	c.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: q2.PacketID})
	expect("m1")
	for i := range 3 {
		c.send(&codec.Ack{Kind: codec.PUBACK, PacketID: ids[fmt.Sprint("m", i)]})
		expect(fmt.Sprint("m", i+2))
	}
}

// Socket deadlines follow the wall clock whatever Options.Now says: a broker whose protocol
// clock is an hour behind still lets clients connect (the connect timeout would otherwise
// have passed already) and keeps them (their keep-alive deadline too).
func TestSocketDeadlinesFollowTheWallClock(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.Now = func() time.Time { return time.Now().Add(-time.Hour) } })
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "a", 1)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "a", 1, "on time")
	if p := sub.receive(); string(p.Payload) != "on time" {
		t.Fatalf("received %q", p.Payload)
	}
}

// An MQTT 3 session whose subscriptions overlap gets one copy at the highest QoS
// [MQTT-3.3.5-1], among few subscribers (searched one by one) and among many (indexed), with
// 5.0 sessions, which get one copy per subscription, in between.
func TestOverlappingSubscriptionsOneCopy(t *testing.T) {
	for _, n := range []int{3, 2 * shortScan} {
		t.Run(fmt.Sprint(n, " sessions"), func(t *testing.T) {
			_, addr := startBroker(t, nil)
			var v3, v5 []*client
			for i := range n {
				c, _ := connectClient(t, addr, codec.V311, fmt.Sprint("v3-", i), true)
				c.subscribe(1, "a/#", 0)
				c.subscribe(2, "a/b", 1)
				v3 = append(v3, c)
				if i%4 == 0 {
					c5, _ := connectClient(t, addr, codec.V5, fmt.Sprint("v5-", i), true)
					c5.subscribe(1, "a/#", 0)
					c5.subscribe(2, "a/b", 1)
					v5 = append(v5, c5)
				}
			}
			pub, _ := connectClient(t, addr, codec.V311, "pub", true)
			pub.publish(1, "a/b", 1, "x")
			for i, c := range v3 {
				if got := c.receive(); got.QoS != 1 {
					t.Fatalf("session %d: got QoS %d, want 1", i, got.QoS)
				}
				c.expectNothing(20 * time.Millisecond)
			}
			for i, c := range v5 {
				qos := []byte{c.receive().QoS, c.receive().QoS}
				slices.Sort(qos)
				if !slices.Equal(qos, []byte{0, 1}) {
					t.Fatalf("5.0 session %d: got QoS %v, want one copy at 0 and one at 1", i, qos)
				}
			}
		})
	}
}
