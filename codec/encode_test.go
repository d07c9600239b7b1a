package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// v5Publish carries properties that 3.x cannot.
var v5Publish = &Publish{QoS: 1, Topic: "a", PacketID: 9, Payload: []byte("p"),
	Props: Properties{Present: pset(PropMessageExpiry), MessageExpiry: 5, User: []UserProperty{{"k", "v"}}}}

func TestEncodeVersions(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Packet
		v    Version
		want []byte
	}{
		{"PUBLISH 3.1.1 drops properties", v5Publish, V311, []byte{
			0x32,            // PUBLISH, QoS 1
			0x06,            // remaining length 6
			0x00, 0x01, 'a', // topic "a"
			0x00, 0x09, // packet id 9
			'p', // payload
		}},
		{"PUBACK 3.1.1 drops the reason", &Ack{Kind: PUBACK, PacketID: 2, Reason: NoMatchingSubscribers}, V311, []byte{
			0x40,       // PUBACK
			0x02,       // remaining length 2
			0x00, 0x02, // packet id 2
		}},
		{"UNSUBACK 3.1.1 has no payload", &Unsuback{PacketID: 3, Reasons: []ReasonCode{Success}}, V311, []byte{
			0xB0,       // UNSUBACK
			0x02,       // remaining length 2
			0x00, 0x03, // packet id 3
		}},
		{"DISCONNECT 3.1.1 drops reason and properties", &Disconnect{Reason: ServerShuttingDown,
			Props: Properties{Present: pset(PropSessionExpiry)}}, V311, []byte{
			0xE0, // DISCONNECT
			0x00, // remaining length 0
		}},
		{"SUBSCRIBE 3.1.1 writes only QoS", &Subscribe{PacketID: 4, Subs: []Subscription{{Filter: "f", QoS: 1,
			NoLocal: true, RetainHandling: 2}}}, V311, []byte{
			0x82,       // SUBSCRIBE
			0x06,       // remaining length 6
			0x00, 0x04, // packet id 4
			0x00, 0x01, 'f', // filter "f"
			0x01, // QoS 1
		}},
		{"CONNECT 3.1 protocol name from v", &Connect{ClientID: "c", ProtocolName: "ignored"}, V31, []byte{
			0x10,                                     // CONNECT
			0x0F,                                     // remaining length 15
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
			0x03,       // protocol level 3
			0x00,       // flags
			0x00, 0x00, // keep alive 0
			0x00, 0x01, 'c', // client id "c"
		}},
		{"properties the packet type cannot carry are left out", &Ack{Kind: PUBACK, PacketID: 1,
			Props: Properties{Present: pset(PropTopicAlias, PropSessionExpiry), TopicAlias: 3,
				SubscriptionIDs: []uint32{7}}}, V5, []byte{
			0x40,       // PUBACK
			0x02,       // remaining length 2: short form, nothing allowed was present
			0x00, 0x01, // packet id 1
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.p.Encode(nil, c.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Fatalf("encoded\n% x\nwant\n% x", got, c.want)
			}
			if n := Size(c.p, c.v); n != len(c.want) {
				t.Fatalf("Size %d, want %d", n, len(c.want))
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", 0x10000)
	// 4,100 user properties sharing one 65,535-byte key exceed the largest remaining length.
	manyUsers := make([]UserProperty, 4100)
	for i := range manyUsers {
		manyUsers[i].Key = long[1:]
	}
	for _, c := range []struct {
		name string
		p    Packet
		v    Version
		want error
	}{
		{"topic too long", &Publish{Topic: long}, V311, ErrFieldTooLong},
		{"user property too long", &Publish{Topic: "t", Props: Properties{User: []UserProperty{{"k", long}}}}, V5, ErrFieldTooLong},
		{"password too long", &Connect{PasswordFlag: true, UsernameFlag: true, Password: []byte(long)}, V311, ErrFieldTooLong},
		{"PUBLISH QoS 3", &Publish{Topic: "t", QoS: 3}, V311, ErrInvalidField},
		{"will QoS 3", &Connect{WillFlag: true, WillQoS: 3, WillTopic: "w"}, V311, ErrInvalidField},
		{"retain handling 3", &Subscribe{PacketID: 1, Subs: []Subscription{{Filter: "f", RetainHandling: 3}}}, V5, ErrInvalidField},
		{"subscription identifier 0", &Subscribe{PacketID: 1, Props: Properties{SubscriptionIDs: []uint32{0}},
			Subs: []Subscription{{Filter: "f"}}}, V5, ErrInvalidField},
		{"Ack of kind PUBLISH", &Ack{Kind: PUBLISH, PacketID: 1}, V311, ErrInvalidField},
		{"AUTH in 3.1.1", &Auth{}, V311, ErrInvalidField},
		{"unknown version", &Pingreq{}, Version(6), ErrInvalidField},
		{"remaining length over the protocol maximum", &Publish{Topic: "t", Props: Properties{User: manyUsers}}, V5, PacketTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := []byte{0xAA}
			got, err := c.p.Encode(dst, c.v)
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "codec: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if !bytes.Equal(got, dst) {
				t.Fatalf("dst changed on error: % x", got)
			}
		})
	}
}

// foreign is a Packet implemented outside the codec's own types.
type foreign struct{}

func (foreign) Type() Type { return PINGREQ }
func (foreign) Encode(dst []byte, _ Version) ([]byte, error) {
	return append(dst, 0xC0, 0x00), nil
}

func TestSizeOfForeignPacket(t *testing.T) {
	if n := Size(foreign{}, V311); n != 2 {
		t.Fatalf("Size = %d, want 2", n)
	}
}

func TestSizeVarintBoundaries(t *testing.T) {
	// Remaining lengths at the edges of 1, 2 and 3 length bytes.
	for _, rem := range []int{127, 128, 16383, 16384} {
		p := &Publish{Topic: "t", Payload: make([]byte, rem-3)}
		enc, err := p.Encode(nil, V311)
		if err != nil {
			t.Fatal(err)
		}
		if n := Size(p, V311); n != len(enc) {
			t.Errorf("remaining length %d: Size %d, encoded %d", rem, n, len(enc))
		}
		back, err := readOne(enc, V311)
		if err != nil {
			t.Fatalf("remaining length %d: %v", rem, err)
		}
		if got := len(back.(*Publish).Payload); got != rem-3 {
			t.Errorf("remaining length %d: payload %d bytes", rem, got)
		}
	}
}
