package e2e

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eclipse/paho.golang/paho"
)

// connect5Clean connects a 5.0 client with Clean Start 1 and no session expiry.
func connect5Clean(t *testing.T, b *broker, id string) *client5 {
	t.Helper()
	return connect5(t, b, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
}

// TestWildcards: + matches exactly one level, # any number including none, and neither matches
// a topic starting with $ at the first level.
func TestWildcards(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	plus := connect3(t, b, "plus", opts3{clean: true})
	plus.subscribe(t, "w/+/c", 1)
	hash := connect3(t, b, "hash", opts3{clean: true})
	hash.subscribe(t, "w/x/#", 1)
	all := connect3(t, b, "all", opts3{clean: true})
	all.subscribe(t, "#", 1)
	all.subscribe(t, "+/app/#", 1)
	dollar := connect3(t, b, "dollar", opts3{clean: true})
	dollar.subscribe(t, "$app/#", 1)

	pub := connect3(t, b, "wild-pub", opts3{clean: true})
	for _, topic := range []string{"w/b/c", "w/b/d", "w/b/c/d", "w/c", "w/x", "w/x/y/z", "$app/x", "$app/app/x"} {
		pub.publish(t, topic, 1, false, topic)
	}
	for _, tc := range []struct {
		name string
		c    *client3
		want []string
	}{
		{"w/+/c", plus, []string{"w/b/c"}},
		{"w/x/#", hash, []string{"w/x", "w/x/y/z"}},
		{"# and +/app/#", all, []string{"w/b/c", "w/b/d", "w/b/c/d", "w/c", "w/x", "w/x/y/z"}},
		{"$app/#", dollar, []string{"$app/x", "$app/app/x"}},
	} {
		got := tc.c.in.waitExactly(t, len(tc.want))
		equalStrings(t, "topics matched by "+tc.name, payloads(got), tc.want)
	}
}

// TestOverlappingSubscriptions311: a 3.1.1 client whose subscriptions overlap gets one copy,
// at the highest QoS granted among them (capped by the publication's QoS).
func TestOverlappingSubscriptions311(t *testing.T) {
	t.Parallel()
	onlyOurs(t, "it delivers at the QoS of one matching subscription, not the highest [MQTT-3.3.5-1]")
	b := startBroker(t, brokerOptions{})
	c := connect3(t, b, "overlap", opts3{clean: true})
	c.subscribe(t, "ov/a", 0)
	c.subscribe(t, "ov/+", 1)
	c.subscribe(t, "ov/#", 0)
	pub := connect3(t, b, "overlap-pub", opts3{clean: true})
	pub.publish(t, "ov/a", 2, false, "once")
	got := c.in.waitExactly(t, 1)
	if got[0].qos != 1 {
		t.Fatalf("delivered at QoS %d, want 1 (highest of the matching subscriptions)", got[0].qos)
	}
}

// TestOverlappingSubscriptions5: a 5.0 client gets one copy per matching subscription, each
// carrying that subscription's identifier.
func TestOverlappingSubscriptions5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect5Clean(t, b, "overlap5")
	c.subscribe(t, 1, paho.SubscribeOptions{Topic: "ov5/a", QoS: 1})
	c.subscribe(t, 2, paho.SubscribeOptions{Topic: "ov5/#", QoS: 1})
	pub := connect5Clean(t, b, "overlap5-pub")
	pub.publish(t, &paho.Publish{Topic: "ov5/a", QoS: 1, Payload: []byte("x")})
	got := c.in.waitExactly(t, 2)
	var ids []int
	for _, m := range got {
		if m.props == nil || m.props.SubscriptionIdentifier == nil {
			t.Fatalf("delivery %+v carries no subscription identifier", m)
		}
		ids = append(ids, *m.props.SubscriptionIdentifier)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int{1, 2}) {
		t.Fatalf("subscription identifiers %v, want [1 2]", ids)
	}
}

// TestQoSDowngrade: a message is delivered at the lower of the publication's and the
// subscription's QoS.
func TestQoSDowngrade(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub := connect3(t, b, "qos-pub", opts3{clean: true})
	for subQoS := byte(0); subQoS <= 2; subQoS++ {
		sub := connect3(t, b, fmt.Sprintf("qos-sub%d", subQoS), opts3{clean: true})
		topic := fmt.Sprintf("qos/%d", subQoS)
		sub.subscribe(t, topic, subQoS)
		for pubQoS := byte(0); pubQoS <= 2; pubQoS++ {
			pub.publish(t, topic, pubQoS, false, fmt.Sprint(pubQoS))
		}
		got := sub.in.waitExactly(t, 3)
		for i, m := range got {
			if want := min(subQoS, byte(i)); m.qos != want {
				t.Fatalf("published at QoS %d to a QoS %d subscription: delivered at %d, want %d", i, subQoS, m.qos, want)
			}
		}
	}
}

// TestNoLocal: with No Local a client does not get its own publications; other subscribers do.
func TestNoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	self := connect5Clean(t, b, "nolocal")
	self.subscribe(t, 0, paho.SubscribeOptions{Topic: "nl/t", QoS: 1, NoLocal: true})
	other := connect5Clean(t, b, "nolocal-other")
	other.subscribe(t, 0, paho.SubscribeOptions{Topic: "nl/t", QoS: 1, NoLocal: true})
	self.publish(t, &paho.Publish{Topic: "nl/t", QoS: 1, Payload: []byte("from-self")})
	other.in.waitExactly(t, 1)
	self.in.waitExactly(t, 0)
}

// TestRetainAsPublished: a live message published with RETAIN 1 keeps the flag only for a
// subscription with Retain As Published; others see RETAIN 0.
func TestRetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	rap := connect5Clean(t, b, "rap")
	rap.subscribe(t, 0, paho.SubscribeOptions{Topic: "rap/t", QoS: 1, RetainAsPublished: true})
	plain := connect5Clean(t, b, "rap-plain")
	plain.subscribe(t, 0, paho.SubscribeOptions{Topic: "rap/t", QoS: 1})
	pub := connect5Clean(t, b, "rap-pub")
	pub.publish(t, &paho.Publish{Topic: "rap/t", QoS: 1, Retain: true, Payload: []byte("r")})
	if got := rap.in.waitExactly(t, 1); !got[0].retained {
		t.Fatal("Retain As Published subscription got RETAIN 0")
	}
	if got := plain.in.waitExactly(t, 1); got[0].retained {
		t.Fatal("a live message reached a plain subscription with RETAIN 1")
	}
}

// TestRetainHandling: 0 sends retained messages at every subscribe, 1 only when the
// subscription is new, 2 never.
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub := connect5Clean(t, b, "rh-pub")
	pub.publish(t, &paho.Publish{Topic: "rh/t", QoS: 1, Retain: true, Payload: []byte("kept")})
	for _, tc := range []struct {
		handling     byte
		first, again int // retained messages expected on the first and the repeated SUBSCRIBE
	}{
		{0, 1, 1},
		{1, 1, 0},
		{2, 0, 0},
	} {
		c := connect5Clean(t, b, fmt.Sprintf("rh%d", tc.handling))
		opt := paho.SubscribeOptions{Topic: "rh/t", QoS: 1, RetainHandling: tc.handling}
		c.subscribe(t, 0, opt)
		c.in.waitExactly(t, tc.first)
		c.subscribe(t, 0, opt)
		got := c.in.waitExactly(t, tc.first+tc.again)
		for _, m := range got {
			if !m.retained || m.payload != "kept" {
				t.Fatalf("retain handling %d: got %+v, want the retained message with RETAIN 1", tc.handling, m)
			}
		}
	}
}

// TestSharedSubscription: messages to $share/g/… are spread over the group's members: each gets
// some, none gets one twice, and together they get each exactly once. A plain subscriber to the
// same filter gets all of them.
func TestSharedSubscription(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	const n = 60
	var members []*client5
	for i := range 3 {
		m := connect5Clean(t, b, fmt.Sprintf("member%d", i))
		m.subscribe(t, 0, paho.SubscribeOptions{Topic: "$share/g/sh/t", QoS: 1})
		members = append(members, m)
	}
	plain := connect5Clean(t, b, "shared-plain")
	plain.subscribe(t, 0, paho.SubscribeOptions{Topic: "sh/t", QoS: 1})

	pub := connect5Clean(t, b, "shared-pub")
	for _, p := range seq("s", 0, n) {
		pub.publish(t, &paho.Publish{Topic: "sh/t", QoS: 1, Payload: []byte(p)})
	}
	equalStrings(t, "plain subscriber", payloads(plain.in.waitExactly(t, n)), seq("s", 0, n))

	var all []string
	checkFor(t, waitLong, pollEvery, func() error {
		all = nil
		for _, m := range members {
			all = append(all, payloads(m.in.all())...)
		}
		if len(all) < n {
			return fmt.Errorf("group received %d of %d messages", len(all), n)
		}
		return nil
	})
	for i, m := range members {
		if len(m.in.all()) == 0 {
			t.Fatalf("member %d got nothing: distribution is not fair", i)
		}
	}
	slices.Sort(all)
	want := seq("s", 0, n)
	slices.Sort(want)
	equalStrings(t, "messages received by the group", all, want)
}

// TestPropertiesForwarded5: the 5.0 application properties of a PUBLISH reach the subscriber
// unchanged: payload format indicator, content type, response topic, correlation data and user
// properties in order.
func TestPropertiesForwarded5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect5Clean(t, b, "props-sub")
	sub.subscribe(t, 0, paho.SubscribeOptions{Topic: "props/t", QoS: 1})
	pub := connect5Clean(t, b, "props-pub")
	format := byte(1)
	sent := &paho.PublishProperties{
		PayloadFormat:   &format,
		ContentType:     "text/plain",
		ResponseTopic:   "props/reply",
		CorrelationData: []byte{0x00, 0x01, 0xfe},
		User:            paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "other", Value: ""}},
	}
	pub.publish(t, &paho.Publish{Topic: "props/t", QoS: 1, Payload: []byte("hello"), Properties: sent})
	got := sub.in.waitExactly(t, 1)[0].props
	if got == nil || got.PayloadFormat == nil || *got.PayloadFormat != 1 {
		t.Fatalf("payload format indicator not forwarded: %+v", got)
	}
	if got.ContentType != sent.ContentType || got.ResponseTopic != sent.ResponseTopic ||
		string(got.CorrelationData) != string(sent.CorrelationData) || !slices.Equal(got.User, sent.User) {
		t.Fatalf("forwarded properties %+v, want %+v", got, sent)
	}
}

// TestConnackProperties5: the CONNACK tells a 5.0 client the broker's limits: the maximum packet
// size it was started with and a receive maximum no larger than --max-inflight; and it leaves
// out (or sets to 1) the availability flags of the features it supports.
func TestConnackProperties5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{maxPacketSize: "64KiB", maxInflight: 7})
	c := connect5Clean(t, b, "props-connack")
	p := c.connack.Properties
	if p == nil {
		t.Fatal("CONNACK without properties")
	}
	if p.MaximumPacketSize == nil || *p.MaximumPacketSize != 64<<10 {
		t.Fatalf("Maximum Packet Size %v, want 65536", p.MaximumPacketSize)
	}
	if p.ReceiveMaximum == nil || *p.ReceiveMaximum == 0 || *p.ReceiveMaximum > 7 {
		t.Fatalf("Receive Maximum %v, want 1 to 7 (--max-inflight 7)", p.ReceiveMaximum)
	}
	if p.MaximumQoS != nil {
		t.Fatalf("Maximum QoS %d sent, but the broker supports QoS 2", *p.MaximumQoS)
	}
	if !p.RetainAvailable || !p.WildcardSubAvailable || !p.SubIDAvailable || !p.SharedSubAvailable {
		t.Fatalf("a supported feature is announced unavailable: %+v", p)
	}
}
