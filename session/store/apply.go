package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"

	"edgebroker/wal"
)

// Bucket names and meta keys of checkpoint.db (see doc.go). NEVER CHANGE them.
var (
	bucketMeta     = []byte("meta")
	bucketSessions = []byte("sessions")
	bucketSubs     = []byte("subs")
	bucketEntries  = []byte("entries")
	bucketInQoS2   = []byte("inqos2")
	bucketMessages = []byte("messages")
	bucketRetained = []byte("retained")
	// bucketBodyFiles is new in layout 2: body file number → live bytes.
	bucketBodyFiles = []byte("bodyfiles")

	keyFormat     = []byte("format")     // uint32: dbFormat
	keyCheckpoint = []byte("checkpoint") // uint64: the log position C applied
	keyMaxMsgID   = []byte("maxmsgid")   // uint64: the highest message ID ever stored
	keyNextSeq    = []byte("next")       // in entries/<client>: uint64 NextSeq
)

// dbFormat is the layout version of checkpoint.db. NEVER CHANGE its meaning; bump it.
const dbFormat = 2

var topBuckets = [][]byte{bucketMeta, bucketSessions, bucketSubs, bucketEntries, bucketInQoS2,
	bucketMessages, bucketRetained}

// applier applies log records to checkpoint.db inside one read-write transaction. Checkpoints
// and recovery both use it, so that they cannot disagree about what a record means.
type applier struct {
	tx                                                  *bolt.Tx
	meta, sessions, subs, entries, inqos2, msgs, retain *bolt.Bucket
	refs                                                map[uint64]int64  // reference count changes
	nextSeq                                             map[string]uint64 // raised NextSeq per client
	storedNext                                          map[string]uint64 // NextSeq in the bucket when the transaction began
	maxMsgID                                            uint64
	storedMaxMsgID                                      uint64            // maxMsgID when the transaction began: no body above it is stored
	ops                                                 int               // operations applied
	decoded                                             []op              // the operations of the record being applied
	keys                                                map[string]string // client ids and topics decoded, interned (decodeOps)
	// Bodies and entries put by the records applied so far wait here until settle writes
	// those still referred to: a message delivered and acknowledged between two checkpoints
	// never touches the B+tree (a put and a delete there cost far more than a map entry).
	bodies  map[uint64][]byte                  // message id -> encoded Message
	ids     []uint64                           // settle's list of the bodies to settle, reused
	pending map[string]map[uint64]pendingEntry // client id -> seq -> entry
	scratch []byte
	// The body files settle appends the bodies to; the location of each body it stored
	// there (for the hints of the entries it writes next); and the change of each file's live
	// bytes.
	spill     *bodyFiles
	locs      map[uint64]bodyLoc
	live      map[uint32]int64
	bodyFiles *bolt.Bucket
	doomed    []uint32 // body files to remove once the transaction commits (removeDoomed)
}

func newApplier(tx *bolt.Tx, spill *bodyFiles) (*applier, error) {
	a := &applier{tx: tx, refs: map[uint64]int64{}, nextSeq: map[string]uint64{}, storedNext: map[string]uint64{},
		bodies: map[uint64][]byte{}, pending: map[string]map[uint64]pendingEntry{}, keys: map[string]string{},
		spill: spill, locs: map[uint64]bodyLoc{}, live: map[uint32]int64{}, bodyFiles: tx.Bucket(bucketBodyFiles)}
	if a.bodyFiles == nil {
		return nil, fmt.Errorf("%w: bucket %q missing", ErrDamaged, bucketBodyFiles)
	}
	bs := []**bolt.Bucket{&a.meta, &a.sessions, &a.subs, &a.entries, &a.inqos2, &a.msgs, &a.retain}
	for i, name := range topBuckets {
		if *bs[i] = tx.Bucket(name); *bs[i] == nil {
			return nil, fmt.Errorf("%w: bucket %q missing", ErrDamaged, name)
		}
	}
	a.maxMsgID = getUint64(a.meta, keyMaxMsgID)
	a.storedMaxMsgID = a.maxMsgID
	a.msgs.FillPercent = 0.9 // keys ascend: pack pages
	return a, nil
}

// record applies one log record. A record that does not decode changes nothing.
func (a *applier) record(p wal.Pos, rec []byte) error {
	ops, err := decodeOps(rec, a.decoded, a.keys)
	if err != nil {
		return fmt.Errorf("log record %d: %w", p, err)
	}
	a.decoded = ops
	for i := range ops {
		if err := a.apply(&ops[i]); err != nil {
			return err
		}
	}
	return nil
}

// apply applies one operation.
func (a *applier) apply(o *op) error {
	a.ops++
	// The queue operations, nearly all of a checkpoint, take the client id as the interned
	// string; the others the bytes bbolt takes.
	switch o.kind {
	case opPutMessage:
		return a.putMessage(o)
	case opPutEntry:
		return a.putEntry(o.key, o)
	case opReleaseEntry:
		return a.setPacketID(o.key, o.seq, o.packetID, true)
	case opDeleteEntry:
		return a.deleteEntry(o.key, o.seq)
	case opDeleteEntries:
		a.ops += len(o.list) - 1 // each counts, for Options.CheckpointOps
		for _, seq := range o.list {
			if err := a.deleteEntry(o.key, seq); err != nil {
				return err
			}
		}
		return nil
	case opSetPacketIDs:
		a.ops += len(o.list)/2 - 1
		for i := 0; i+1 < len(o.list); i += 2 {
			if err := a.setPacketID(o.key, o.list[i], uint16(o.list[i+1]), false); err != nil {
				return err
			}
		}
		return nil
	}
	key := []byte(o.key)
	switch o.kind {
	case opPutSession:
		return a.sessions.Put(key, bytes.Clone(o.raw))
	case opDeleteSession:
		return a.deleteSession(key)
	case opDisconnected, opConnected:
		return a.setDisconnected(key, o.at)
	case opPutSub:
		b, err := a.subs.CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		return b.Put(subKey(o.sub.Group, o.sub.Filter), bytes.Clone(o.raw))
	case opDeleteSub:
		if b := a.subs.Bucket(key); b != nil {
			return b.Delete(subKey(o.group, o.filter))
		}
	case opPutInQoS2:
		b, err := a.inqos2.CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		return b.Put(binary.BigEndian.AppendUint16(nil, o.packetID), []byte{})
	case opDeleteInQoS2:
		if b := a.inqos2.Bucket(key); b != nil {
			return b.Delete(binary.BigEndian.AppendUint16(nil, o.packetID))
		}
	case opPutRetained:
		a.unref(a.retain.Get(key))
		a.refs[o.msgID]++
		return a.retain.Put(key, binary.BigEndian.AppendUint64(nil, o.msgID))
	case opDeleteRetained:
		a.unref(a.retain.Get(key))
		return a.retain.Delete(key)
	}
	return nil
}

// subKey is the key of a subscription in subs/<client>: group, NUL, filter. Neither may contain
// NUL [MQTT-1.5.4-2].
func subKey(group, filter string) []byte {
	k := make([]byte, 0, len(group)+1+len(filter))
	return append(append(append(k, group...), 0), filter...)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// unref drops a reference to the message whose 8-byte ID is v (a retained value), if any.
func (a *applier) unref(v []byte) {
	if len(v) == 8 {
		a.refs[binary.BigEndian.Uint64(v)]--
	}
}

func (a *applier) deleteSession(key []byte) error {
	pending := a.pending[string(key)]
	for _, p := range pending {
		a.refs[p.msgID]--
	}
	delete(a.pending, string(key))
	if b := a.entries.Bucket(key); b != nil {
		err := b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			if _, replaced := pending[binary.BigEndian.Uint64(k)]; replaced {
				return nil // its reference went when the pending entry replaced it
			}
			id, err := entryMsgID(v)
			a.refs[id]--
			return err
		})
		if err != nil {
			return fmt.Errorf("session %q: %w", key, err)
		}
	}
	delete(a.nextSeq, string(key))
	a.storedNext[string(key)] = 0 // its bucket goes: it has no entries now
	for _, parent := range []*bolt.Bucket{a.entries, a.subs, a.inqos2} {
		if err := parent.DeleteBucket(key); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
	}
	return a.sessions.Delete(key)
}

// entryMsgID returns the MsgID of an encoded Entry.
func entryMsgID(v []byte) (uint64, error) {
	var e Entry
	if _, err := e.UnmarshalMsg(v); err != nil {
		return 0, fmt.Errorf("%w: entry: %w", ErrDamaged, err)
	}
	return e.MsgID, nil
}

func (a *applier) setDisconnected(key []byte, at int64) error {
	v := a.sessions.Get(key)
	if v == nil {
		return nil // deleted by an earlier operation
	}
	var s Session
	if _, err := s.UnmarshalMsg(v); err != nil {
		return fmt.Errorf("%w: session %q: %w", ErrDamaged, key, err)
	}
	s.DisconnectedAt = at
	nv, err := s.MarshalMsg(nil)
	if err != nil {
		return err
	}
	return a.sessions.Put(key, nv)
}

// putMessage keeps a body for settle, which stores it (a message value is a 4-byte reference
// count and the encoded Message) if anything still refers to it.
func (a *applier) putMessage(o *op) error {
	a.bodies[o.msgID] = bytes.Clone(o.raw)
	a.maxMsgID = max(a.maxMsgID, o.msgID)
	a.refs[o.msgID] += 0 // settle it even if nothing refers to it
	return nil
}

// pendingEntry is an entry put or changed by the records applied so far; stored says the
// bucket holds an older version of it, which a delete must remove.
type pendingEntry struct {
	raw    []byte // encoded Entry, and the location of its body when one follows (hinted)
	stored bool
	msgID  uint64 // the entry's MsgID
	hinted bool
	// A packet id set by SetPacketIDs or ReleaseEntry, encoded into raw only when settle
	// writes the entry: most entries are deleted before, and the change costs a decode and an
	// encode.
	patched  bool
	packetID uint16
	released bool
}

// entry returns the current entry seq of client key: the pending one, else the one in the
// bucket, decoded for its MsgID and copied (ok is false if there is none).
func (a *applier) entry(key string, seq uint64) (p pendingEntry, ok bool, err error) {
	if p, ok := a.pending[key][seq]; ok {
		return p, true, nil
	}
	// Every stored entry's Seq is below its bucket's NextSeq, which only settle raises: an
	// entry at or above it is new, and costs no lookup.
	next, known := a.storedNext[key]
	if known && seq >= next {
		return p, false, nil
	}
	b := a.entries.Bucket([]byte(key))
	if !known {
		if b != nil {
			next = getUint64(b, keyNextSeq)
		}
		a.storedNext[key] = next
	}
	if b == nil || seq >= next {
		return p, false, nil
	}
	raw := b.Get(seqKey(seq))
	if raw == nil {
		return p, false, nil
	}
	var e Entry
	rest, err := e.UnmarshalMsg(raw)
	if err != nil {
		return p, false, fmt.Errorf("%w: entry %d of %q: %w", ErrDamaged, seq, key, err)
	}
	return pendingEntry{raw: bytes.Clone(raw), stored: true, msgID: e.MsgID, hinted: len(rest) > 0}, true, nil
}

// setPending makes p the pending entry seq of client key.
func (a *applier) setPending(key string, seq uint64, p pendingEntry) {
	m := a.pending[key]
	if m == nil {
		m = map[uint64]pendingEntry{}
		a.pending[key] = m
	}
	m[seq] = p
}

func (a *applier) putEntry(key string, o *op) error {
	old, ok, err := a.entry(key, o.entry.Seq)
	if err != nil {
		return err
	}
	if ok {
		a.refs[old.msgID]--
	}
	a.refs[o.msgID]++
	if n := o.entry.Seq + 1; n > a.nextSeq[key] {
		a.nextSeq[key] = n
	}
	a.setPending(key, o.entry.Seq, pendingEntry{raw: bytes.Clone(o.raw), stored: old.stored, msgID: o.msgID})
	return nil
}

// setPacketID sets the packet id of entry seq of client key, and marks it released (its
// PUBREC arrived) if release is set. An entry no longer there was acknowledged: nothing to do.
func (a *applier) setPacketID(key string, seq uint64, packetID uint16, release bool) error {
	p, ok, err := a.entry(key, seq)
	if !ok || err != nil {
		return err
	}
	p.released = p.released || release
	p.patched, p.packetID = true, packetID
	a.setPending(key, seq, p)
	return nil
}

func (a *applier) deleteEntry(key string, seq uint64) error {
	p, ok, err := a.entry(key, seq)
	if !ok || err != nil {
		return err
	}
	a.refs[p.msgID]--
	delete(a.pending[key], seq)
	if !p.stored {
		return nil // put and deleted within these records: the bucket never saw it
	}
	return a.entries.Bucket([]byte(key)).Delete(seqKey(seq))
}

// finish settles what the operations applied so far changed and marks the log applied up to c.
func (a *applier) finish(c wal.Pos) error {
	if err := a.settle(); err != nil {
		return err
	}
	return a.meta.Put(keyCheckpoint, binary.BigEndian.AppendUint64(nil, uint64(c)))
}

// settle writes the pending entries, the reference counts (storing the pending bodies still
// referred to and deleting the stored ones nobody refers to), the NextSeq of the sessions that
// used new sequence numbers and the highest message ID.
func (a *applier) settle() error {
	// Ascending: new bodies are appended to the B+tree; in map order every insert would shift
	// a node's keys (quadratic on a long log, as in a recovery). A body these records put and
	// nothing refers to any more was never stored: there is nothing to do for it, and most
	// bodies of a checkpoint under load are such.
	ids := a.ids[:0]
	for id, d := range a.refs {
		if id <= a.storedMaxMsgID || d > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := a.settleBody(id, a.refs[id]); err != nil {
			return err
		}
	}
	a.ids = ids[:0]
	for _, client := range slices.Sorted(maps.Keys(a.pending)) { // ascending, as below
		m := a.pending[client]
		if len(m) == 0 {
			continue
		}
		b, err := a.entries.CreateBucketIfNotExists([]byte(client))
		if err != nil {
			return err
		}
		b.FillPercent = 0.9
		for _, seq := range slices.Sorted(maps.Keys(m)) { // ascending: bbolt appends
			v, err := a.encoded(m[seq])
			if err != nil {
				return err
			}
			if err := b.Put(seqKey(seq), v); err != nil {
				return err
			}
		}
	}
	clear(a.pending)
	clear(a.locs)
	clear(a.refs)
	clear(a.bodies)
	// What the B+tree is about to say is in the body files must be there first.
	if err := a.spill.sync(); err != nil {
		return err
	}
	if err := a.settleLive(); err != nil {
		return err
	}
	for _, client := range slices.Sorted(maps.Keys(a.nextSeq)) {
		next := a.nextSeq[client]
		// Created if need be: entries put and deleted within these records still used
		// their sequence numbers.
		b, err := a.entries.CreateBucketIfNotExists([]byte(client))
		if err != nil {
			return err
		}
		if getUint64(b, keyNextSeq) >= next {
			continue
		}
		if err := b.Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, next)); err != nil {
			return err
		}
	}
	clear(a.nextSeq)
	// What the buckets hold changed: entries and bodies above what the transaction began
	// with may be stored now, and what comes next (recovery's purge of expired state) must
	// look them up.
	clear(a.storedNext)
	a.storedMaxMsgID = a.maxMsgID
	return a.meta.Put(keyMaxMsgID, binary.BigEndian.AppendUint64(nil, a.maxMsgID))
}

// settleBody applies the change d of message id's reference count: the body is stored (a
// pending one) or kept while something refers to it, and deleted when nothing does.
func (a *applier) settleBody(id uint64, d int64) error {
	k := seqKey(id)
	var v []byte
	if id <= a.storedMaxMsgID { // a body above it was put by these records: no lookup
		v = a.msgs.Get(k)
	}
	var n int64
	if len(v) >= 4 {
		n = int64(binary.BigEndian.Uint32(v))
	}
	n += d
	raw, put := a.bodies[id]
	switch {
	case n <= 0 && len(v) >= 4:
		a.unlocate(v[4:])
		return a.msgs.Delete(k)
	case n <= 0:
		return nil // put and dropped within these records, or a reference to a body never stored
	case !put && len(v) < 4:
		return nil // a reference to a body never stored; load reports it
	case !put && d == 0:
		return nil
	case !put:
		raw = v[4:] // the body, or its location, unchanged
	default:
		if len(v) >= 4 {
			a.unlocate(v[4:]) // put again: the new copy replaces it
		}
		l, err := a.spill.add(id, raw)
		if err != nil {
			return err
		}
		a.live[l.file] += l.size()
		a.locs[id] = l
		raw = l.append(nil)
	}
	nv := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(raw)), uint32(n))
	return a.msgs.Put(k, append(nv, raw...))
}

// unlocate drops the live bytes of a body leaving the messages bucket, when v (a value after
// its reference count) is the location of one in a body file.
func (a *applier) unlocate(v []byte) {
	if l, ok := parseBodyLoc(v); ok {
		a.live[l.file] -= l.size()
	}
}

// encoded returns the entry of p as settle stores it: its packet id patched in, and the
// location of its body after it when settle just stored that body in a body file (a read of
// the queue then goes to the body without a lookup in the messages bucket).
func (a *applier) encoded(p pendingEntry) ([]byte, error) {
	raw := p.raw
	if p.patched {
		var e Entry
		rest, err := e.UnmarshalMsg(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: entry: %w", ErrDamaged, err)
		}
		e.PacketID = p.packetID
		e.Released = e.Released || p.released
		if raw, err = e.MarshalMsg(nil); err != nil {
			return nil, err
		}
		raw = append(raw, rest...)
	}
	if l, ok := a.locs[p.msgID]; ok && !p.hinted {
		return l.append(raw[:len(raw):len(raw)]), nil
	}
	return raw, nil
}

// settleLive stores the live bytes of the body files whose bodies came or went. A file none
// of whose bodies is live any more is removed once the transaction commits, unless appends
// still go to it.
func (a *applier) settleLive() error {
	cur, appending := a.spill.current()
	for _, n := range slices.Sorted(maps.Keys(a.live)) {
		k := binary.BigEndian.AppendUint32(nil, n)
		live := int64(getUint64(a.bodyFiles, k)) + a.live[n]
		if live > 0 || (appending && n == cur) {
			if err := a.bodyFiles.Put(k, binary.BigEndian.AppendUint64(nil, uint64(max(live, 0)))); err != nil {
				return err
			}
			continue
		}
		if err := a.bodyFiles.Delete(k); err != nil {
			return err
		}
		a.doomed = append(a.doomed, n)
	}
	clear(a.live)
	return nil
}

// removeDoomed removes the body files the committed transaction stopped listing. Should it
// fail, the next Open removes them.
func (a *applier) removeDoomed() error {
	var errs []error
	for _, n := range a.doomed {
		errs = append(errs, a.spill.remove(n))
	}
	a.doomed = a.doomed[:0]
	return errors.Join(errs...)
}

// getUint64 reads a big-endian uint64 value, 0 if absent or malformed.
func getUint64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
