package codec

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// addSeeds seeds a fuzz target with every fixture and malformed case, each split in the middle.
func addSeeds(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.raw, byte(fx.v), uint16(len(fx.raw)/2))
	}
	for _, m := range malformed {
		f.Add(m.raw, byte(m.v), uint16(len(m.raw)/2))
	}
}

// checkStream decodes data twice, whole and split in two at split (so the Reader sees short
// reads; that Reader also reuses acknowledgements and publications, Reader.ReuseAcks and
// Reader.ReusePublishes), and requires both to
// agree packet by packet. Every decoded packet must re-encode to
// its Size and decode back to an equal packet; every error must be an end of stream or carry a
// reason code.
func checkStream(t *testing.T, data []byte, v Version, split int) {
	split %= len(data) + 1
	whole := NewReader(bytes.NewReader(data), 1<<16)
	halves := NewReader(io.MultiReader(bytes.NewReader(data[:split]), bytes.NewReader(data[split:])), 1<<16)
	whole.SetVersion(v)
	halves.SetVersion(v)
	halves.ReuseAcks()
	halves.ReusePublishes()
	for range 64 {
		p, err := whole.ReadPacket()
		q, qerr := halves.ReadPacket()
		if (err == nil) != (qerr == nil) || err != nil && err.Error() != qerr.Error() {
			t.Fatalf("whole stream: %v; split at %d: %v", err, split, qerr)
		}
		if err != nil {
			var rc ReasonCode
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &rc) {
				t.Fatalf("error without a reason code: %v", err)
			}
			return
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("split at %d decoded %#v, whole %#v", split, q, p)
		}
		ev := encodeVersion(p, v)
		enc, err := p.Encode(nil, ev)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", p, err)
		}
		if n := Size(p, ev); n != len(enc) {
			t.Fatalf("Size %d, Encode wrote %d bytes for %#v", n, len(enc), p)
		}
		back, err := readOne(enc, ev)
		if err != nil {
			t.Fatalf("decoding the re-encoding % x of %#v: %v", enc, p, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip changed the packet:\n%#v\n%#v", p, back)
		}
	}
}

func FuzzReadPacket(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, v byte, split uint16) {
		checkStream(t, data, V31+Version(v%3), int(split))
	})
}

func FuzzReadPacketV311(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, _ byte, split uint16) {
		checkStream(t, data, V311, int(split))
	})
}

func FuzzReadPacketV5(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, _ byte, split uint16) {
		checkStream(t, data, V5, int(split))
	})
}
