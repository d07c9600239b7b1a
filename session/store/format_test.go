package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// formatCases are records as Batch writes them, byte by byte (see the format in doc.go).
var formatCases = []struct {
	name  string
	build func(*Batch)
	raw   []byte
}{
	{"DeleteEntry", func(b *Batch) { b.DeleteEntry("c1", 5) }, []byte{
		0x02,             // format version 2
		0x0a,             // kind DeleteEntry
		0xa2, 0x63, 0x31, // client id: fixstr "c1"
		0x05, // seq: positive fixint 5
	}},
	{"PutRetained", func(b *Batch) { b.PutRetained("t", 300) }, []byte{
		0x02,
		0x0d,       // kind PutRetained
		0xa1, 0x74, // topic "t"
		0xcd, 0x01, 0x2c, // message id: uint16 300
	}},
	{"DeleteRetained", func(b *Batch) { b.DeleteRetained("t") }, []byte{
		0x02,
		0x0e,       // kind DeleteRetained
		0xa1, 0x74, // topic "t"
	}},
	{"PutSession", func(b *Batch) { b.PutSession(&Session{ClientID: "c", Version: 5}) }, []byte{
		0x02,
		0x01,       // kind PutSession
		0x96,       // Session: fixarray of 6
		0xa1, 0x63, //   ClientID "c"
		0x05, //   Version 5
		0x00, //   Expiry 0
		0x00, //   DisconnectedAt 0
		0xc0, //   Will nil
		0x00, //   WillDelay 0
	}},
	{"Disconnected", func(b *Batch) { b.Disconnected("c", time.Unix(0, 1000)) }, []byte{
		0x02,
		0x03,       // kind Disconnected
		0xa1, 0x63, // client id "c"
		0xd1, 0x03, 0xe8, // at: int16 1000 (unix ns)
	}},
	{"Connected", func(b *Batch) { b.Connected("c") }, []byte{0x02, 0x04, 0xa1, 0x63}},
	{"DeleteSession", func(b *Batch) { b.DeleteSession("c") }, []byte{0x02, 0x02, 0xa1, 0x63}},
	{"PutSub", func(b *Batch) {
		b.PutSub("c", Sub{Filter: "a/#", QoS: 1, NoLocal: true, RetainHandling: 2, SubID: 7})
	}, []byte{
		0x02,
		0x05,       // kind PutSub
		0xa1, 0x63, // client id "c"
		0x97,                   // Sub: fixarray of 7
		0xa3, 0x61, 0x2f, 0x23, //   Filter "a/#"
		0xa0, //   Group ""
		0x01, //   QoS 1
		0xc3, //   NoLocal true
		0xc2, //   RetainAsPublished false
		0x02, //   RetainHandling 2
		0x07, //   SubID 7
	}},
	{"DeleteSub", func(b *Batch) { b.DeleteSub("c", "g", "a") }, []byte{
		0x02,
		0x06,       // kind DeleteSub
		0xa1, 0x63, // client id "c"
		0xa1, 0x67, // group "g"
		0xa1, 0x61, // filter "a"
	}},
	{"PutMessage", func(b *Batch) {
		b.PutMessage(&Message{ID: 1, Topic: "t", Payload: []byte("hi"), QoS: 1, User: []UserProperty{{"k", "v"}}})
	}, []byte{
		0x02,
		0x07,       // kind PutMessage
		0x9d,       // Message: fixarray of 13
		0x01,       //   ID 1
		0xa1, 0x74, //   Topic "t"
		0xc4, 0x02, 0x68, 0x69, //   Payload: bin8 "hi"
		0x01,       //   QoS 1
		0xc2,       //   Retain false
		0xa0,       //   From ""
		0x00,       //   Expires 0
		0x00,       //   PayloadFormat 0
		0xc2,       //   HasPayloadFormat false
		0xa0,       //   ContentType ""
		0xa0,       //   ResponseTopic ""
		0xc4, 0x00, //   CorrelationData: bin8 empty
		0x91,                         //   User: fixarray of 1
		0x92, 0xa1, 0x6b, 0xa1, 0x76, //     UserProperty: fixarray of 2, "k", "v"
	}},
	{"PutEntry and ReleaseEntry", func(b *Batch) {
		b.PutEntry("c", &Entry{Seq: 3, MsgID: 2, QoS: 2, SubIDs: []uint32{7}, Msg: &Message{ID: 99}})
		b.ReleaseEntry("c", 3, 0x1234)
	}, []byte{
		0x02,
		0x08,       // kind PutEntry
		0xa1, 0x63, // client id "c"
		0x99,       // Entry: fixarray of 9 (Msg is not written)
		0x03,       //   Seq 3
		0x02,       //   MsgID 2
		0x02,       //   QoS 2
		0xc2,       //   Retain false
		0x91, 0x07, //   SubIDs: fixarray of 1, 7
		0xa0,       //   Group ""
		0xa0,       //   Filter ""
		0x00,       //   PacketID 0
		0xc2,       //   Released false
		0x09,       // kind ReleaseEntry
		0xa1, 0x63, // client id "c"
		0x03,             // seq 3
		0xcd, 0x12, 0x34, // packet id: uint16 0x1234
	}},
	{"DeleteEntry of one session, twice, and of another", func(b *Batch) {
		b.DeleteEntry("c1", 5)
		b.DeleteEntry("c1", 300)
		b.DeleteEntry("c2", 6)
	}, []byte{
		0x02,
		0x0f,             // kind DeleteEntries
		0xa2, 0x63, 0x31, // client id "c1"
		0xdc, 0x00, 0x02, // seqs: array16 of 2
		0x05,             //   5
		0xcd, 0x01, 0x2c, //   uint16 300
		0x0a,             // kind DeleteEntry
		0xa2, 0x63, 0x32, // client id "c2"
		0x06, // seq 6
	}},
	{"SetPacketID", func(b *Batch) { b.SetPacketID("c", 3, 1); b.SetPacketID("c", 4, 0x1234) }, []byte{
		0x02,
		0x10,       // kind SetPacketIDs
		0xa1, 0x63, // client id "c"
		0xdc, 0x00, 0x04, // array16 of 4: seq, packet id, seq, packet id
		0x03, 0x01, //   seq 3, packet id 1
		0x04, 0xcd, 0x12, 0x34, //   seq 4, packet id uint16 0x1234
	}},
	{"PutInQoS2 and DeleteInQoS2", func(b *Batch) { b.PutInQoS2("c", 1); b.DeleteInQoS2("c", 1) }, []byte{
		0x02,
		0x0b, 0xa1, 0x63, 0x01, // PutInQoS2 "c" 1
		0x0c, 0xa1, 0x63, 0x01, // DeleteInQoS2 "c" 1
	}},
}

// describe renders the operations of a record, for comparing decodes.
func describe(rec []byte) (string, error) {
	var out bytes.Buffer
	ops, err := decodeOps(rec, nil, nil)
	for _, c := range ops {
		// A list operation reads as the single operations it stands for, as a Batch merges them.
		switch c.kind {
		case opDeleteEntries:
			for _, seq := range c.list {
				fmt.Fprintf(&out, "%v %q %d;", opDeleteEntry, c.key, seq)
			}
			continue
		case opSetPacketIDs:
			for i := 0; i < len(c.list); i += 2 {
				fmt.Fprintf(&out, "SetPacketID %q %d %d;", c.key, c.list[i], c.list[i+1])
			}
			continue
		case opDeleteEntry:
			fmt.Fprintf(&out, "%v %q %d;", opDeleteEntry, c.key, c.seq)
			continue
		}
		fmt.Fprintf(&out, "%v %q %q %q %d %d %d %d %+v %+v %s %s;", c.kind, c.key, c.group, c.filter,
			c.seq, c.packetID, c.at, c.msgID, c.sub, c.entry, dumpMsg(c.session.Will), dumpMsg(&c.msg))
	}
	return out.String(), err
}

func TestFormat(t *testing.T) {
	for _, tc := range formatCases {
		t.Run(tc.name, func(t *testing.T) {
			var b Batch
			tc.build(&b)
			if !bytes.Equal(b.buf, tc.raw) {
				t.Fatalf("encoded\n% x\nwant\n% x", b.buf, tc.raw)
			}
			if _, err := decodeOps(tc.raw, nil, nil); err != nil {
				t.Fatalf("decode: %v", err)
			}
		})
	}
}

// TestFormatDamage feeds damaged records: each must give ErrBadRecord or decode, never panic, and
// a record cut short decodes only if the cut falls between operations.
// Records of format version 1 (written by older builds) decode as they did: the same
// operations under version 2's kinds.
func TestFormatVersion1(t *testing.T) {
	for _, tc := range formatCases {
		if tc.raw[1] > byte(lastV1Kind) {
			continue // a version 2 operation: version 1 had none
		}
		v1 := bytes.Clone(tc.raw)
		v1[0] = 1
		got, err := describe(v1)
		want, _ := describe(tc.raw)
		if err != nil || got != want {
			t.Errorf("%s as version 1: %s, %v; want %s", tc.name, got, err, want)
		}
	}
}

func TestFormatDamage(t *testing.T) {
	bad := []struct {
		name string
		raw  []byte
	}{
		{"empty record", nil},
		{"version 0", []byte{0x00}},
		{"version 3", []byte{0x03, 0x02, 0xa1, 0x63}},
		{"kind 0", []byte{0x01, 0x00}},
		{"kind past the last", []byte{0x02, 0x11, 0xa1, 0x63}},
		{"version 2 kind in version 1", []byte{0x01, 0x0f, 0xa1, 0x63, 0xdc, 0x00, 0x01, 0x05}},
		{"empty list", []byte{0x02, 0x0f, 0xa1, 0x63, 0x90}},
		{"list not an array", []byte{0x02, 0x0f, 0xa1, 0x63, 0x05}},
		{"odd list of pairs", []byte{0x02, 0x10, 0xa1, 0x63, 0x91, 0x05}},
		{"packet id over 16 bits", []byte{0x02, 0x10, 0xa1, 0x63, 0x92, 0x05, 0xce, 0x00, 0x01, 0x00, 0x00}},
		{"list longer than the record", []byte{0x02, 0x0f, 0xa1, 0x63, 0xdc, 0xff, 0xff, 0x01}},
		{"list over the limit", []byte{0x02, 0x0f, 0xa1, 0x63, 0xdd, 0x00, 0x01, 0x00, 0x01}},
		{"kind 0xff", []byte{0x01, 0xff}},
		{"empty client id", []byte{0x01, 0x02, 0xa0}},
		{"client id not a string", []byte{0x01, 0x02, 0x05}},
		{"message ID 0", []byte{0x01, 0x07, 0x9d, 0x00, 0xa1, 0x74, 0xc4, 0x00, 0x01, 0xc2, 0xa0, 0x00, 0x00, 0xc2, 0xa0, 0xa0, 0xc4, 0x00, 0x90}},
		{"session array too short", []byte{0x01, 0x01, 0x95, 0xa1, 0x63, 0x05, 0x00, 0x00, 0xc0}},
		{"huge SubIDs array", []byte{0x01, 0x08, 0xa1, 0x63, 0x99, 0x03, 0x02, 0x02, 0xc2, 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"string longer than the record", []byte{0x01, 0x02, 0xdb, 0x7f, 0xff, 0xff, 0xff, 0x63}},
		{"payload longer than the record", []byte{0x01, 0x07, 0x9d, 0x01, 0xa1, 0x74, 0xc6, 0x7f, 0xff, 0xff, 0xff}},
	}
	for _, tc := range bad {
		if _, err := decodeOps(tc.raw, nil, nil); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", tc.name, err)
		}
	}
	for _, tc := range formatCases {
		bounds := map[int]bool{}
		var o op
		for off, rest := 1, tc.raw[1:]; len(rest) > 0; {
			var err error
			bounds[off] = true
			if rest, err = decodeOp(rest, &o, nil); err != nil {
				t.Fatal(err)
			}
			off = len(tc.raw) - len(rest)
		}
		for n := 0; n < len(tc.raw); n++ {
			_, err := decodeOps(tc.raw[:n], nil, nil)
			if ok := n >= 1 && (bounds[n] || n == 1); ok != (err == nil) {
				t.Errorf("%s cut to %d bytes: %v", tc.name, n, err)
			}
			if err != nil && !errors.Is(err, ErrBadRecord) {
				t.Errorf("%s cut to %d bytes: %v is not ErrBadRecord", tc.name, n, err)
			}
		}
		for i := range tc.raw {
			for _, flip := range []byte{0x01, 0x80, 0xff} {
				d := bytes.Clone(tc.raw)
				d[i] ^= flip
				if _, err := describe(d); err != nil && !errors.Is(err, ErrBadRecord) {
					t.Errorf("%s with byte %d ^ %#x: %v", tc.name, i, flip, err)
				}
			}
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, tc := range formatCases {
		f.Add(tc.raw)
	}
	var b Batch
	for _, tc := range roundTripCases {
		for _, fn := range tc.batches {
			fn(&b)
		}
	}
	f.Add(b.buf)
	f.Fuzz(func(t *testing.T, rec []byte) {
		got, err := describe(rec)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v is not ErrBadRecord", err)
			}
			return
		}
		// A record that decodes re-encodes (through Batch) to one that decodes the same.
		again, err := describe(reencode(t, rec))
		if err != nil || again != got {
			t.Fatalf("re-encoded record decodes as\n%s, %v\nwant\n%s", again, err, got)
		}
		for _, part := range [][]byte{rec[:len(rec)/2], rec[len(rec)/2:]} { // split in two
			if _, err := describe(part); err != nil && !errors.Is(err, ErrBadRecord) {
				t.Fatalf("half record: %v", err)
			}
		}
	})
}

// reencode decodes rec and writes its operations again through a Batch.
func reencode(t *testing.T, rec []byte) []byte {
	var b Batch
	ops, err := decodeOps(rec, nil, nil)
	for i := range ops {
		switch o := &ops[i]; o.kind {
		case opPutSession:
			b.PutSession(&o.session)
		case opDeleteSession:
			b.DeleteSession(o.key)
		case opDisconnected:
			b.Disconnected(o.key, time.Unix(0, o.at))
		case opConnected:
			b.Connected(o.key)
		case opPutSub:
			b.PutSub(o.key, o.sub)
		case opDeleteSub:
			b.DeleteSub(o.key, o.group, o.filter)
		case opPutMessage:
			b.PutMessage(&o.msg)
		case opPutEntry:
			b.PutEntry(o.key, &o.entry)
		case opReleaseEntry:
			b.ReleaseEntry(o.key, o.seq, o.packetID)
		case opDeleteEntry:
			b.DeleteEntry(o.key, o.seq)
		case opDeleteEntries:
			for _, seq := range o.list {
				b.DeleteEntry(o.key, seq)
			}
		case opSetPacketIDs:
			for i := 0; i < len(o.list); i += 2 {
				b.SetPacketID(o.key, o.list[i], uint16(o.list[i+1]))
			}
		case opPutInQoS2:
			b.PutInQoS2(o.key, o.packetID)
		case opDeleteInQoS2:
			b.DeleteInQoS2(o.key, o.packetID)
		case opPutRetained:
			b.PutRetained(o.key, o.msgID)
		case opDeleteRetained:
			b.DeleteRetained(o.key)
		}
	}
	if err != nil || b.err != nil {
		t.Fatalf("re-encoding a decoded record: %v, %v", err, b.err)
	}
	if len(b.buf) == 0 {
		return []byte{formatVersion}
	}
	return b.buf
}
