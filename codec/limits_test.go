package codec

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

// tripwire serves head and records any attempt to read past it.
type tripwire struct {
	head    []byte
	off     int
	overrun bool
}

func (t *tripwire) Read(p []byte) (int, error) {
	if t.off == len(t.head) {
		t.overrun = true
		return 0, errors.New("read past the fixed header")
	}
	n := copy(p, t.head[t.off:])
	t.off += n
	return n, nil
}

func TestPacketTooLargeBeforeAllocation(t *testing.T) {
	src := &tripwire{head: []byte{
		0x30,                   // PUBLISH, QoS 0
		0xFF, 0xFF, 0xFF, 0x7F, // remaining length 268,435,455 (256 MiB - 1)
	}}
	r := NewReader(src, 1<<20) // 1 MiB limit
	allocs := testing.AllocsPerRun(100, func() {
		src.off = 0
		_, err := r.ReadPacket()
		if !errors.Is(err, PacketTooLarge) {
			t.Fatalf("err %v, want packet too large", err)
		}
	})
	if src.overrun {
		t.Fatal("the body was read after the limit check failed")
	}
	if allocs != 0 {
		t.Fatalf("%v allocations refusing an oversized packet, want 0", allocs)
	}
}

func TestPacketSizeLimitBoundary(t *testing.T) {
	raw := []byte{
		0x30,            // PUBLISH, QoS 0
		0x04,            // remaining length 4: total size 6
		0x00, 0x01, 't', // topic "t"
		'x', // payload
	}
	r := NewReader(bytes.NewReader(raw), uint32(len(raw)))
	if _, err := r.ReadPacket(); err != nil {
		t.Fatalf("packet of exactly the limit: %v", err)
	}
	r = NewReader(bytes.NewReader(raw), uint32(len(raw)-1))
	if _, err := r.ReadPacket(); !errors.Is(err, PacketTooLarge) {
		t.Fatalf("packet one byte over the limit: %v", err)
	}
	r = NewReader(bytes.NewReader(raw), 1)
	r.SetMaxPacketSize(0) // 0: no limit of our own
	if _, err := r.ReadPacket(); err != nil {
		t.Fatalf("after SetMaxPacketSize(0): %v", err)
	}
}

// TestTruncation cuts every fixture at every length: a clean cut before the first byte is io.EOF,
// any other cut io.ErrUnexpectedEOF. With the remaining length rewritten to fit the cut body,
// the decoder must find the damage itself: a reason code, never a panic or an EOF.
func TestTruncation(t *testing.T) {
	for _, f := range fixtures {
		for k := range len(f.raw) {
			want := io.ErrUnexpectedEOF
			if k == 0 {
				want = io.EOF
			}
			if _, err := readOne(f.raw[:k], f.v); err != want {
				t.Errorf("%s cut at %d: %v, want %v", f.name, k, err, want)
			}
		}
		hdr := 2 // every fixture's remaining length fits one byte
		for k := hdr; k < len(f.raw); k++ {
			cut := append([]byte{f.raw[0], byte(k - hdr)}, f.raw[hdr:k]...)
			_, err := readOne(cut, f.v)
			var rc ReasonCode
			if err != nil && !errors.As(err, &rc) {
				t.Errorf("%s body cut to %d bytes: %v, want a reason code", f.name, k-hdr, err)
			}
		}
	}
}

// TestTruncatedField checks the length-prefixed cases named in the brief.
func TestTruncatedField(t *testing.T) {
	cut := []byte{
		0x10,                           // CONNECT
		0x0B,                           // remaining length 11
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, // client id length, cut after its first byte
	}
	if _, err := readOne(cut, V311); !errors.Is(err, MalformedPacket) {
		t.Fatalf("field cut by the remaining length: %v, want malformed packet", err)
	}
}

// failing returns data, then err.
type failing struct {
	data []byte
	err  error
}

func (f *failing) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestReaderErrorsPassThrough(t *testing.T) {
	boom := errors.New("connection reset")
	for _, data := range [][]byte{nil, {0x30}, {0x30, 0x05, 0x00}} {
		r := NewReader(&failing{data: data, err: boom}, 0)
		if _, err := r.ReadPacket(); err != boom {
			t.Errorf("after %d bytes: %v, want the reader's own error", len(data), err)
		}
	}
}

// A peer that announces a large packet and sends a little of it makes the reader allocate
// about what arrived, not what was announced: a silent socket cannot hold a megabyte.
func TestReadPacketAllocatesWhatArrives(t *testing.T) {
	announce := []byte{0x30, 0xff, 0xff, 0x3f} // PUBLISH of 1 MiB - 1 bytes
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const reads = 10
	for range reads {
		r := NewReader(io.MultiReader(bytes.NewReader(announce), bytes.NewReader(make([]byte, 100))), 2<<20)
		if _, err := r.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want %v", err, io.ErrUnexpectedEOF)
		}
	}
	runtime.ReadMemStats(&after)
	if got, most := after.TotalAlloc-before.TotalAlloc, uint64(reads*(4*bodyChunk+4<<10)); got > most {
		t.Fatalf("%d reads of 100 bytes announced as 1 MiB allocated %d bytes, want at most %d", reads, got, most)
	}
}

// A body larger than what is allocated ahead arrives whole.
func TestReadPacketLargerThanAChunk(t *testing.T) {
	p := &Publish{Topic: "t", Payload: bytes.Repeat([]byte("0123456789"), 30000)}
	buf, err := p.Encode(nil, V311)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewReader(iotest.OneByteReader(bytes.NewReader(buf)), 1<<20).ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	q, ok := got.(*Publish)
	if !ok {
		t.Fatalf("read back %T, want a PUBLISH", got)
	}
	if !bytes.Equal(q.Payload, p.Payload) {
		t.Fatalf("read back a %d-byte payload, want the %d bytes sent", len(q.Payload), len(p.Payload))
	}
}
