package e2e

import (
	"fmt"
	"testing"
)

// The scenarios of the seed articles for MQTT 3.1 and 3.1.1 persistent sessions: a client
// subscribes with Clean Session 0, goes away, messages are published while it is offline, and it
// reconnects.

// TestPersistentSessionQueuesWhileOffline: clean session 0, subscribe QoS 1, disconnect, 50 QoS 1
// messages published, reconnect: Session Present is 1 and all 50 arrive once, in order, with no
// new SUBSCRIBE. Run for 3.1 and 3.1.1, and for QoS 1 and QoS 2.
func TestPersistentSessionQueuesWhileOffline(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	const n = 50
	for _, tc := range []struct {
		version uint
		qos     byte
	}{{3, 1}, {4, 1}, {3, 2}, {4, 2}} {
		t.Run(fmt.Sprintf("v%d-qos%d", tc.version, tc.qos), func(t *testing.T) {
			id := fmt.Sprintf("persist-v%d-q%d", tc.version, tc.qos)
			topic := "seeds/" + id
			sub := connect3(t, b, id, opts3{version: tc.version})
			if tc.version == 4 && sub.sessionPresent {
				t.Fatal("Session Present = 1 on the first connection of a new client id")
			}
			sub.subscribe(t, topic, tc.qos)
			sub.disconnect()

			pub := connect3(t, b, id+"-pub", opts3{clean: true})
			pub.publishSeq(t, topic, tc.qos, "m", n)

			again := connect3(t, b, id, opts3{version: tc.version})
			if tc.version == 4 && !again.sessionPresent {
				t.Fatal("Session Present = 0 on reconnecting to a persistent session")
			}
			got := again.in.waitExactly(t, n)
			equalStrings(t, "queued messages", payloads(got), seq("m", 0, n))
			for _, m := range got {
				if m.qos != tc.qos || m.topic != topic {
					t.Fatalf("got %+v, want topic %q at QoS %d", m, topic, tc.qos)
				}
			}
		})
	}
}

// TestCleanSessionForgetsEverything: with Clean Session 1 the same steps give Session Present 0
// and nothing arrives on reconnect, and the subscription itself is gone.
func TestCleanSessionForgetsEverything(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect3(t, b, "clean", opts3{clean: true})
	sub.subscribe(t, "seeds/clean", 1)
	sub.disconnect()

	pub := connect3(t, b, "clean-pub", opts3{clean: true})
	pub.publishSeq(t, "seeds/clean", 1, "m", 10)

	again := connect3(t, b, "clean", opts3{clean: true})
	if again.sessionPresent {
		t.Fatal("Session Present = 1 with Clean Session 1")
	}
	again.in.waitExactly(t, 0)
	pub.publish(t, "seeds/clean", 1, false, "after")
	again.in.waitExactly(t, 0)
}

// TestCleanSessionEndsPersistentSession: a client that had a persistent session connects once
// with Clean Session 1 (the way the seeds say to end one); its queued messages and subscriptions
// are discarded, and a later Clean Session 0 connection starts with Session Present 0.
func TestCleanSessionEndsPersistentSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect3(t, b, "ender", opts3{})
	sub.subscribe(t, "seeds/ender", 1)
	sub.disconnect()
	pub := connect3(t, b, "ender-pub", opts3{clean: true})
	pub.publishSeq(t, "seeds/ender", 1, "m", 5)

	cleaner := connect3(t, b, "ender", opts3{clean: true})
	if cleaner.sessionPresent {
		t.Fatal("Session Present = 1 with Clean Session 1")
	}
	cleaner.in.waitExactly(t, 0)
	cleaner.disconnect()

	pub.publishSeq(t, "seeds/ender", 1, "n", 5)
	again := connect3(t, b, "ender", opts3{})
	if again.sessionPresent {
		t.Fatal("Session Present = 1 after the persistent session was ended with Clean Session 1")
	}
	again.in.waitExactly(t, 0)
}

// TestSessionWithoutSubscriptionsIsPresent: the existence of a session is state of its own; a
// persistent session with no subscription still gives Session Present 1.
func TestSessionWithoutSubscriptionsIsPresent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	first := connect3(t, b, "bare", opts3{})
	if first.sessionPresent {
		t.Fatal("Session Present = 1 for a new client id")
	}
	first.disconnect()
	again := connect3(t, b, "bare", opts3{})
	if !again.sessionPresent {
		t.Fatal("Session Present = 0 for a persistent session without subscriptions")
	}
}

// TestQoS0NotQueuedOffline: QoS 0 publications are not queued for an offline session by
// default; with --queue-qos0 they are. QoS 1 messages around them are queued in both cases.
func TestQoS0NotQueuedOffline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		queueQoS0 bool
		want      []string
	}{
		{"default", false, []string{"q1-a", "q1-b"}},
		{"queue-qos0", true, []string{"q1-a", "q0-a", "q0-b", "q1-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{queueQoS0: tc.queueQoS0})
			sub := connect3(t, b, "q0", opts3{})
			sub.subscribe(t, "seeds/q0", 1)
			sub.disconnect()

			pub := connect3(t, b, "q0-pub", opts3{clean: true})
			pub.publish(t, "seeds/q0", 1, false, "q1-a")
			pub.publish(t, "seeds/q0", 0, false, "q0-a")
			pub.publish(t, "seeds/q0", 0, false, "q0-b")
			pub.publish(t, "seeds/q0", 1, false, "q1-b")
			// The QoS 0 publishes have no acknowledgement: a QoS 1 round trip after them
			// proves the broker has routed them before the subscriber comes back.
			pub.publish(t, "seeds/other", 1, false, "barrier")

			again := connect3(t, b, "q0", opts3{})
			got := again.in.waitExactly(t, len(tc.want))
			equalStrings(t, "messages after reconnect", payloads(got), tc.want)
		})
	}
}

// TestRetainedAndPersistent: with the retain flag set on every publication, a persistent
// session gets all messages queued while offline, not just the last retained one.
func TestRetainedAndPersistent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect3(t, b, "ret-persist", opts3{})
	sub.subscribe(t, "seeds/retained", 1)
	sub.disconnect()

	pub := connect3(t, b, "ret-persist-pub", opts3{clean: true})
	for _, p := range seq("r", 0, 10) {
		pub.publish(t, "seeds/retained", 1, true, p)
	}
	again := connect3(t, b, "ret-persist", opts3{})
	got := again.in.waitExactly(t, 10)
	equalStrings(t, "queued retained messages", payloads(got), seq("r", 0, 10))

	// The retained message itself is only the last one, as a new subscriber sees.
	fresh := connect3(t, b, "ret-fresh", opts3{clean: true})
	fresh.subscribe(t, "seeds/retained", 1)
	got = fresh.in.waitExactly(t, 1)
	if got[0].payload != "r-9" || !got[0].retained {
		t.Fatalf("new subscriber got %+v, want the retained r-9", got[0])
	}
}

// TestQueueOverflow: 150 messages published into a 100-slot queue of an offline session: exactly
// 100 arrive, the first 100 with drop-new and the last 100 with drop-oldest.
func TestQueueOverflow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy   string
		from, to int
	}{
		{"drop-new", 0, 100},
		{"drop-oldest", 50, 150},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{maxQueued: 100, overflow: tc.policy})
			sub := connect3(t, b, "overflow", opts3{})
			sub.subscribe(t, "seeds/overflow", 1)
			sub.disconnect()

			pub := connect3(t, b, "overflow-pub", opts3{clean: true})
			pub.publishSeq(t, "seeds/overflow", 1, "m", 150)

			again := connect3(t, b, "overflow", opts3{})
			got := again.in.waitExactly(t, 100)
			equalStrings(t, "delivered after overflow", payloads(got), seq("m", tc.from, tc.to))
		})
	}
}

// TestEmptyClientID311: an empty client id is accepted with Clean Session 1 (the broker makes
// one up) and rejected with Clean Session 0 by CONNACK return code 0x02.
func TestEmptyClientID311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect3(t, b, "", opts3{clean: true})
	if c.sessionPresent {
		t.Fatal("Session Present = 1 for an empty client id")
	}

	raw := dialRaw(t, b)
	raw.send([]byte{
		0x10, 0x0c, // CONNECT, remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4 (3.1.1)
		0x00,       // connect flags: Clean Session 0
		0x00, 0x3c, // keep alive 60 s
		0x00, 0x00, // client identifier: empty
	})
	raw.expect([]byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // session present 0
		0x02, // return code 2: identifier rejected [MQTT-3.1.3-8]
	})
	raw.expectClosed()
}
