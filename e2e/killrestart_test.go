package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The tests in this file SIGKILL an idle broker right after an acknowledgement and check that
// what the acknowledgement promised survives the restart.

// resume5 reconnects a 5.0 persistent session with the given expiry, without Clean Start.
func resume5(t *testing.T, b *broker, id string, expiry uint32) *client5 {
	t.Helper()
	return connect5(t, b, &paho.Connect{ClientID: id, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(expiry)}})
}

// TestKillKeepsSubscriptions: subscriptions of persistent sessions, SUBACKed while their clients
// are connected, survive a SIGKILL; a message published after the restart reaches the resumed
// sessions, with the 5.0 subscription identifier kept.
func TestKillKeepsSubscriptions(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	s3 := connect3(t, b, "keep3", opts3{})
	s3.subscribe(t, "keep/3/+", 1)
	s5 := connect5(t, b, &paho.Connect{ClientID: "keep5", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(3600)}})
	s5.subscribe(t, 7, paho.SubscribeOptions{Topic: "keep/5/#", QoS: 2})

	b.Kill()
	b.Start()
	s3 = connect3(t, b, "keep3", opts3{})
	s5 = resume5(t, b, "keep5", 3600)
	if !s3.sessionPresent || !s5.connack.SessionPresent {
		t.Fatalf("Session Present after the kill: 3.1.1 %v, 5.0 %v; want both", s3.sessionPresent, s5.connack.SessionPresent)
	}
	pub := connect3(t, b, "keep-pub", opts3{clean: true})
	pub.publish(t, "keep/3/a", 1, false, "to3")
	pub.publish(t, "keep/5/b/c", 2, false, "to5")
	equalStrings(t, "3.1.1 session", payloads(s3.in.waitExactly(t, 1)), []string{"to3"})
	got := s5.in.waitExactly(t, 1)
	equalStrings(t, "5.0 session", payloads(got), []string{"to5"})
	if got[0].qos != 2 || got[0].props == nil || got[0].props.SubscriptionIdentifier == nil || *got[0].props.SubscriptionIdentifier != 7 {
		t.Fatalf("5.0 delivery %v with properties %+v, want QoS 2 and subscription identifier 7", got[0], got[0].props)
	}
}

// TestKillKeepsRetained: a retained message set with QoS 1 and one cleared with QoS 1 are as
// their PUBACKs said after a SIGKILL.
func TestKillKeepsRetained(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub := connect3(t, b, "ret-pub", opts3{clean: true})
	pub.publish(t, "ret/kept", 1, true, "kept")
	pub.publish(t, "ret/cleared", 1, true, "soon gone")
	pub.publish(t, "ret/cleared", 1, true, "") // an empty retained message clears the topic

	b.Kill()
	b.Start()
	sub := connect3(t, b, "ret-sub", opts3{clean: true})
	sub.subscribe(t, "ret/#", 1)
	got := sub.in.waitExactly(t, 1)
	if got[0].topic != "ret/kept" || got[0].payload != "kept" || !got[0].retained {
		t.Fatalf("got %v, want the retained ret/kept only", got[0])
	}
}

// TestKillWillAtSessionExpiry: a 5.0 session with expiry 3 s and a will delayed 60 s, connected
// when the broker is killed, is offline after the restart: its will is published when the
// session expires (not at once, not after the will delay), and the session is gone then.
func TestKillWillAtSessionExpiry(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "will-kill-watcher", opts3{})
	watcher.subscribe(t, "will/kill/#", 1)
	will5(t, b, "will-kill", "will/kill/gone", 60, 3)

	b.Kill()
	b.Start()
	restarted := time.Now()
	watcher = connect3(t, b, "will-kill-watcher", opts3{})
	if !watcher.sessionPresent {
		t.Fatal("watcher: Session Present = 0 after the kill")
	}
	got := watcher.in.waitN(t, 1)
	// The session's clock starts at the restart at the earliest (the broker could not see the
	// connection end); 3 s less a margin for the start-up.
	if since := time.Since(restarted); since < 2*time.Second {
		t.Fatalf("will published %v after the restart, before the 3 s session expiry", since)
	}
	equalStrings(t, "will", payloads(watcher.in.waitExactly(t, 1)), []string{"will-kill"})
	if got[0].topic != "will/kill/gone" {
		t.Fatalf("will on %q, want will/kill/gone", got[0].topic)
	}
	again := resume5(t, b, "will-kill", 3)
	if again.connack.SessionPresent {
		t.Fatal("Session Present = 1: the session outlived its expiry")
	}
}

// TestKillInboundQoS2: a QoS 2 PUBLISH is PUBRECed, the broker is killed before the PUBREL, and
// the publisher resends it with DUP after the restart: the resumed session still holds the
// packet identifier, so the broker answers PUBREC again and the subscriber gets the message
// once.
func TestKillInboundQoS2(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	for _, level := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", level), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{})
			topic := fmt.Sprintf("in2/%d", level)
			sub := connect3(t, b, "in2-sub", opts3{})
			sub.subscribe(t, topic, 2)
			sub.disconnect()

			pubID := "in2-pub"
			expectAck := func(c *rawConn, header byte) {
				t.Helper()
				p, err := c.read(waitLong)
				if err != nil {
					t.Fatalf("waiting for %02x: %v", header, err)
				}
				id, reason, err := ackFields(p)
				if err != nil || p.header != header || id != 7 || reason >= 0x80 {
					t.Fatalf("got %v, want %02x for packet 7 with success", p, header)
				}
			}
			c := dialRaw(t, b)
			if _, err := c.handshake(persistentConnect(level, pubID, 3600, true)); err != nil {
				t.Fatal(err)
			}
			c.send(publishPacket(level, 2, 7, false, topic, "once"))
			expectAck(c, hdrPubrec)

			b.Kill()
			b.Start()
			c = dialRaw(t, b)
			sp, err := c.handshake(persistentConnect(level, pubID, 3600, false))
			if err != nil || !sp {
				t.Fatalf("publisher reconnect: Session Present %v, %v; want 1", sp, err)
			}
			c.send(publishPacket(level, 2, 7, true, topic, "once")) // the resend, DUP set
			expectAck(c, hdrPubrec)
			c.send(ackPacket(hdrPubrel, 7))
			expectAck(c, hdrPubcomp)

			sub = connect3(t, b, "in2-sub", opts3{})
			if !sub.sessionPresent {
				t.Fatal("subscriber: Session Present = 0 after the kill")
			}
			equalStrings(t, "deliveries", payloads(sub.in.waitExactly(t, 1)), []string{"once"})
		})
	}
}

// TestKillKeepsQueuedProperties: messages queued for an offline 5.0 session come back after a
// SIGKILL, read from the store, with the properties they were published with and no others.
func TestKillKeepsQueuedProperties(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect5(t, b, &paho.Connect{ClientID: "qprops", KeepAlive: 30, CleanStart: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(3600)}})
	sub.subscribe(t, 0, paho.SubscribeOptions{Topic: "qprops/#", QoS: 1})
	if err := sub.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	pub := connect5Clean(t, b, "qprops-pub")
	pub.publish(t, &paho.Publish{Topic: "qprops/plain", QoS: 1, Payload: []byte("plain")})
	sent := &paho.PublishProperties{ResponseTopic: "qprops/reply", CorrelationData: []byte("c-1")}
	pub.publish(t, &paho.Publish{Topic: "qprops/request", QoS: 1, Payload: []byte("request"), Properties: sent})

	b.Kill()
	b.Start()
	sub = resume5(t, b, "qprops", 3600)
	got := sub.in.waitExactly(t, 2)
	equalStrings(t, "queued", payloads(got), []string{"plain", "request"})
	if p := got[0].props; p != nil && (p.CorrelationData != nil || p.ResponseTopic != "") {
		t.Fatalf("message published without properties came back with %+v", p)
	}
	if p := got[1].props; p == nil || string(p.CorrelationData) != "c-1" || p.ResponseTopic != "qprops/reply" {
		t.Fatalf("request came back with properties %+v, want %+v", p, sent)
	}
}
