package codec

import (
	"bufio"
	"testing"
)

// endless repeats b forever.
type endless struct {
	b   []byte
	off int
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.b[e.off:])
	e.off = (e.off + n) % len(e.b)
	return n, nil
}

var (
	benchPublish = &Publish{QoS: 1, Topic: "gw1/sensors/temperature", PacketID: 42, Payload: make([]byte, 64)}

	benchPublishV5 = &Publish{QoS: 1, Topic: "gw1/sensors/temperature", PacketID: 42, Payload: make([]byte, 64),
		Props: Properties{Present: pset(PropPayloadFormat, PropMessageExpiry, PropContentType), PayloadFormat: 1,
			MessageExpiry: 3600, ContentType: "application/json", SubscriptionIDs: []uint32{7},
			User: []UserProperty{{"site", "north"}}}}
)

func benchDecode(b *testing.B, p Packet, v Version) {
	enc, err := p.Encode(nil, v)
	if err != nil {
		b.Fatal(err)
	}
	r := NewReader(bufio.NewReaderSize(&endless{b: enc}, 4096), 0)
	r.SetVersion(v)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadPacket(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, p Packet, v Version) {
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(Size(p, v)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.Encode(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePublish decodes a 3.1.1 QoS 1 PUBLISH with a 64-byte payload.
func BenchmarkDecodePublish(b *testing.B) { benchDecode(b, benchPublish, V311) }

// BenchmarkEncodePublish encodes it into a reused buffer.
func BenchmarkEncodePublish(b *testing.B) { benchEncode(b, benchPublish, V311) }

// BenchmarkDecodePublishV5Props decodes a 5.0 PUBLISH with five kinds of properties.
func BenchmarkDecodePublishV5Props(b *testing.B) { benchDecode(b, benchPublishV5, V5) }

// BenchmarkEncodePublishV5Props encodes it into a reused buffer.
func BenchmarkEncodePublishV5Props(b *testing.B) { benchEncode(b, benchPublishV5, V5) }

// BenchmarkSizePublishV5Props measures the cost of checking a client's Maximum Packet Size.
func BenchmarkSizePublishV5Props(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Size(benchPublishV5, V5) == 0 {
			b.Fatal("zero size")
		}
	}
}

// BenchmarkDecodeAck decodes a 3.1.1 PUBACK into a new Ack each time.
func BenchmarkDecodeAck(b *testing.B) { benchDecode(b, &Ack{Kind: PUBACK, PacketID: 42}, V311) }

// BenchmarkDecodeAckReused decodes a 3.1.1 PUBACK with Reader.ReuseAcks, as the broker does.
func BenchmarkDecodeAckReused(b *testing.B) {
	benchDecodeReused(b, &Ack{Kind: PUBACK, PacketID: 42}, (*Reader).ReuseAcks)
}

// BenchmarkDecodePublishReused decodes benchPublish with Reader.ReusePublishes, as the broker
// does.
func BenchmarkDecodePublishReused(b *testing.B) {
	benchDecodeReused(b, benchPublish, (*Reader).ReusePublishes)
}

// benchDecodeReused decodes p (3.1.1) again and again with a Reader set up by reuse.
func benchDecodeReused(b *testing.B, p Packet, reuse func(*Reader)) {
	enc, err := p.Encode(nil, V311)
	if err != nil {
		b.Fatal(err)
	}
	r := NewReader(bufio.NewReaderSize(&endless{b: enc}, 4096), 0)
	reuse(r)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadPacket(); err != nil {
			b.Fatal(err)
		}
	}
}
