package main

import "encoding/binary"

// payloadHeader is the size of the bookkeeping prefix of every payload: publisher id (uint32)
// then sequence number (uint64), both big endian. The rest of the payload is padding.
const payloadHeader = 12

// maxSeq bounds the sequence numbers a Tracker accepts, so that a corrupted payload cannot make
// it allocate a huge bitmap; larger values are counted as malformed.
const maxSeq = 1 << 26

// putPayload writes the bookkeeping prefix into p, which must be at least payloadHeader long.
func putPayload(p []byte, pub uint32, seq uint64) {
	binary.BigEndian.PutUint32(p[0:4], pub)
	binary.BigEndian.PutUint64(p[4:12], seq)
}

// parsePayload reads the bookkeeping prefix of p.
func parsePayload(p []byte) (pub uint32, seq uint64, ok bool) {
	if len(p) < payloadHeader {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(p[0:4]), binary.BigEndian.Uint64(p[4:12]), true
}

// Tally is what a Tracker has counted. Counts from several subscribers add up with Add.
type Tally struct {
	Unique     uint64 // distinct (publisher, sequence) pairs seen
	Duplicates uint64 // arrivals of a pair already seen
	OutOfOrder uint64 // first arrivals of a sequence lower than one already seen from that publisher
	Malformed  uint64 // payloads without a valid prefix
}

// Add adds o's counts to t.
func (t *Tally) Add(o Tally) {
	t.Unique += o.Unique
	t.Duplicates += o.Duplicates
	t.OutOfOrder += o.OutOfOrder
	t.Malformed += o.Malformed
}

// Tracker counts the payloads one subscriber receives. It is not safe for concurrent use: each
// subscriber connection owns one.
type Tracker struct {
	streams map[uint32]*stream
	tally   Tally
}

// stream is what a Tracker knows about one publisher.
type stream struct {
	seen []uint64 // bitmap of sequence numbers seen
	top  uint64   // highest sequence number seen, valid when any is set
	any  bool
}

// Observe records one received payload.
func (t *Tracker) Observe(payload []byte) {
	pub, seq, ok := parsePayload(payload)
	if !ok || seq >= maxSeq {
		t.tally.Malformed++
		return
	}
	if t.streams == nil {
		t.streams = make(map[uint32]*stream)
	}
	s := t.streams[pub]
	if s == nil {
		s = &stream{}
		t.streams[pub] = s
	}
	word, bit := seq/64, uint64(1)<<(seq%64)
	if word >= uint64(len(s.seen)) {
		s.seen = append(s.seen, make([]uint64, word+1-uint64(len(s.seen)))...)
	}
	if s.seen[word]&bit != 0 {
		t.tally.Duplicates++
		return
	}
	s.seen[word] |= bit
	t.tally.Unique++
	switch {
	case !s.any || seq > s.top:
		s.top, s.any = seq, true
	default:
		t.tally.OutOfOrder++
	}
}

// Tally returns the counts so far.
func (t *Tracker) Tally() Tally { return t.tally }
