package session

import (
	"strings"
	"testing"
	"time"

	"edgebroker/codec"
)

// testAuth lets user "alice" with password "secret" in, and anybody anonymous; alice may publish
// and read anything but "private/#", anonymous clients only "public/#".
type testAuth struct{}

func (testAuth) Authenticate(c ClientInfo, password []byte, hasPassword bool) codec.ReasonCode {
	switch {
	case !c.HasUsername:
		return codec.Success
	case c.Username == "alice" && hasPassword && string(password) == "secret":
		return codec.Success
	}
	return codec.BadUsernameOrPassword
}

func (a testAuth) allowed(c ClientInfo, topic string) bool {
	if c.Username == "alice" {
		return !strings.HasPrefix(topic, "private/")
	}
	return strings.HasPrefix(topic, "public/")
}

func (a testAuth) CanPublish(c ClientInfo, topic string) bool    { return a.allowed(c, topic) }
func (a testAuth) CanSubscribe(c ClientInfo, filter string) bool { return a.allowed(c, filter) }
func (a testAuth) CanRead(c ClientInfo, topic string) bool       { return a.allowed(c, topic) }

func TestAuthorizerEnforced(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.Auth = testAuth{} })
	for _, tc := range []struct {
		v    codec.Version
		want codec.ReasonCode
	}{{codec.V311, codec.V3BadUsernameOrPassword}, {codec.V5, codec.BadUsernameOrPassword}} {
		c := dial(t, addr, tc.v)
		ack := c.connect(&codec.Connect{ClientID: "mallory", CleanStart: true, UsernameFlag: true,
			Username: "alice", PasswordFlag: true, Password: []byte("guess")})
		if ack.Reason != tc.want {
			t.Fatalf("v%d wrong password: CONNACK %v, want %v", tc.v, ack.Reason, tc.want)
		}
	}
	alice := dial(t, addr, codec.V5)
	if ack := alice.connect(&codec.Connect{ClientID: "alice", CleanStart: true, UsernameFlag: true,
		Username: "alice", PasswordFlag: true, Password: []byte("secret")}); ack.Reason != codec.Success {
		t.Fatalf("alice: %v", ack.Reason)
	}
	// Subscriptions: one allowed, one not.
	alice.send(&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{{Filter: "public/#", QoS: 1}, {Filter: "private/x", QoS: 1}}})
	if sa := alice.next().(*codec.Suback); sa.Reasons[0] != codec.GrantedQoS1 || sa.Reasons[1] != codec.NotAuthorized {
		t.Fatalf("SUBACK %v, want [1 0x87]", sa.Reasons)
	}
	anon, _ := connectClient(t, addr, codec.V5, "anon5", true)
	anon.send(&codec.Publish{PacketID: 1, Topic: "secret/x", QoS: 1, Payload: []byte("no")})
	if a := anon.next().(*codec.Ack); a.Reason != codec.NotAuthorized {
		t.Fatalf("denied 5.0 publish: %v, want 0x87", a.Reason)
	}
	anon3, _ := connectClient(t, addr, codec.V311, "anon3", true)
	anon3.publish(1, "secret/y", 1, "no") // acknowledged, and dropped
	anon3.publish(2, "public/a", 1, "yes")
	if got := alice.receive(); string(got.Payload) != "yes" {
		t.Fatalf("alice got %q, want only the allowed publication", got.Payload)
	}
	// A will on a topic the client may not publish to refuses the connection.
	w := dial(t, addr, codec.V311)
	if ack := w.connect(&codec.Connect{ClientID: "w", CleanStart: true, WillFlag: true, WillTopic: "x/y"}); ack.Reason != codec.V3NotAuthorized {
		t.Fatalf("will topic not allowed: CONNACK %v, want 0x05", ack.Reason)
	}
	alice.expectNothing(100 * time.Millisecond)
}

func TestHostileClientLimits(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) {
		o.MaxConnections = 3
		o.MaxTopicLength = 20
		o.MaxTopicLevels = 3
		o.MaxSubscriptions = 2
	})
	c, _ := connectClient(t, addr, codec.V5, "c", true)
	c.send(&codec.Subscribe{PacketID: 1, Subs: []codec.Subscription{
		{Filter: "a/b/c/d"},                         // four levels
		{Filter: "a"}, {Filter: "b"}, {Filter: "c"}, // the third is over the limit of 2
		{Filter: "a"}, // replacing one is fine
	}})
	sa := c.next().(*codec.Suback)
	want := []codec.ReasonCode{codec.TopicFilterInvalid, 0, 0, codec.QuotaExceeded, 0}
	for i, r := range sa.Reasons {
		if r != want[i] {
			t.Fatalf("SUBACK %v, want %v", sa.Reasons, want)
		}
	}
	connectClient(t, addr, codec.V311, "other", true)
	// A third connection is the limit; a fourth is closed at once.
	third := dial(t, addr, codec.V311)
	third.connect(&codec.Connect{ClientID: "third", CleanStart: true})
	fourth := dial(t, addr, codec.V311)
	fourth.send(&codec.Connect{ClientID: "fourth", CleanStart: true, Version: codec.V311, ProtocolName: "MQTT"})
	if got := fourth.expectClosed(); len(got) != 0 {
		t.Fatalf("connection over the limit got %v", got)
	}
	// A topic name over the length limit closes the 5.0 publisher with 0x90.
	c.send(&codec.Publish{Topic: "this/topic/is/much/too/long"})
	got := c.expectClosed()
	if len(got) != 1 || got[0].(*codec.Disconnect).Reason != codec.TopicNameInvalid {
		t.Fatalf("got %v, want DISCONNECT 0x90", got)
	}
}

func TestPublishRateSlowsPublisher(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.PublishRate = 50 })
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "r", 0)
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for range 200 { // 50 at once, then 50 a second: at least 2.9 s for the rest
		pub.publish(0, "r", 0, "x")
	}
	start := time.Now()
	received := 0
	for received < 200 {
		if _, err := sub.tryNext(10 * time.Second); err != nil {
			t.Fatalf("after %d: %v", received, err)
		}
		received++
	}
	// Not a timing assertion on speed: the limiter must have held the client back at all,
	// which the loose lower bound proves, and lost nothing, which the count proves.
	if took := time.Since(start); took < time.Second {
		t.Fatalf("200 messages at 50/s arrived in %v: the rate limit did not apply", took)
	}
	if d := b.Stats().MessagesDropped.Load(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
}

// readAuth lets everybody connect, publish and subscribe, but nobody receive hidden/#: the read
// check at delivery, retained messages included, is all that stands in the way.
type readAuth struct{}

func (readAuth) Authenticate(ClientInfo, []byte, bool) codec.ReasonCode { return codec.Success }
func (readAuth) CanPublish(ClientInfo, string) bool                     { return true }
func (readAuth) CanSubscribe(ClientInfo, string) bool                   { return true }
func (readAuth) CanRead(_ ClientInfo, topic string) bool                { return !strings.HasPrefix(topic, "hidden/") }

func TestDeliveryCheckedAgainstReadAccess(t *testing.T) {
	_, addr := startBroker(t, func(o *Options) { o.Auth = readAuth{} })
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "hidden/kept", 1, "secret retained")
	pub.send(&codec.Publish{PacketID: 2, Topic: "hidden/kept", QoS: 1, Retain: true, Payload: []byte("secret")})
	pub.next()
	pub.send(&codec.Publish{PacketID: 3, Topic: "open/kept", QoS: 1, Retain: true, Payload: []byte("public")})
	pub.next()
	sub, _ := connectClient(t, addr, codec.V311, "sub", true)
	sub.subscribe(1, "#", 1)
	if got := sub.receive(); got.Topic != "open/kept" || !got.Retain {
		t.Fatalf("retained delivery: got %s %q, want only open/kept", got.Topic, got.Payload)
	}
	pub.publish(4, "hidden/live", 1, "secret")
	pub.publish(5, "open/live", 1, "public")
	if got := sub.receive(); got.Topic != "open/live" {
		t.Fatalf("got %s %q, want only open/live", got.Topic, got.Payload)
	}
	sub.expectNothing(200 * time.Millisecond)
}
