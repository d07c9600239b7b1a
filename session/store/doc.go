// Package store is the durable session store of the broker: every change to a persistent
// session (its subscriptions, queued and in-flight messages, inbound QoS 2 packet ids, will and
// expiry) and to the retained messages is written to a write-ahead log (package wal) as a batch,
// and applied in the background to a bbolt file, the checkpoint, after which the log segments
// it covers are deleted. Open recovers: checkpoint plus the log after it.
//
// The store knows what a session is made of, not MQTT's rules: the engine (package session)
// decides what to write and when to wait for it. Only what the engine commits is written; the
// store writes on its own only when it checkpoints (and, at Open, to drop what has expired).
//
// # Call order and durability
//
//	s, st, err := store.Open(opts) // recovery; st is every session and retained message
//	var b store.Batch
//	b.PutMessage(m); b.PutEntry("client", &e)
//	p, err := s.Commit(&b)         // one log record; not durable yet; concurrent callers share
//	err = s.Wait(p)                // durable (one fsync for many waiters); now acknowledge
//	b.Reset()
//	err = s.Close()                // last checkpoint
//
// A batch is all or nothing across a power cut: it is one log record. Under wal.SyncAlways
// (the default) Wait returns nil only when the batch and every batch committed before it are
// fdatasynced; the broker sends PUBACK, PUBREC, SUBACK or UNSUBACK after that (the durability
// contract, docs section 3 of the design). Commits are ordered: a batch committed after another
// (by the same goroutine, or after the other's Commit returned) has a higher position and is
// applied after it.
//
// # Data directory
//
//	DIR/wal/               the log: segment files of package wal
//	DIR/checkpoint.db      the bbolt checkpoint
//	DIR/bodies/            body files: the bodies of checkpointed messages
//
// # Log record format, versions 1 and 2
//
// THE FORMAT BELOW MUST NEVER CHANGE. A change of any byte's meaning needs a new version byte,
// and a decoder for every older version kept. Records are written in version 2; version 1 is
// the same without the operations 0x0f and 0x10, and is still read.
//
// Each log record is one Batch:
//
//	offset size  field
//	0      1     format version = 0x02 (or 0x01)
//	1      ...   operations, back to back, up to the end of the record (none in an empty batch)
//
// Each operation is a kind byte followed by msgpack values (uints and ints in their shortest
// msgpack form, strings as msgpack str, byte slices as bin, records as fixed-length msgpack
// arrays of their fields in the order listed):
//
//	kind  operation       values after the kind byte
//	0x01  PutSession      Session
//	0x02  DeleteSession   client id (str)
//	0x03  Disconnected    client id, at (int: unix ns)
//	0x04  Connected       client id
//	0x05  PutSub          client id, Sub
//	0x06  DeleteSub       client id, group (str), filter (str)
//	0x07  PutMessage      Message
//	0x08  PutEntry        client id, Entry
//	0x09  ReleaseEntry    client id, seq (uint), packet id (uint)
//	0x0a  DeleteEntry     client id, seq (uint)
//	0x0b  PutInQoS2       client id, packet id (uint)
//	0x0c  DeleteInQoS2    client id, packet id (uint)
//	0x0d  PutRetained     topic (str), message id (uint)
//	0x0e  DeleteRetained  topic (str)
//	0x0f  DeleteEntries   client id, seqs (array16 of uint, at least 1)
//	0x10  SetPacketIDs    client id, (array16 of uint: seq, packet id, seq, packet id...)
//
// DeleteEntries is DeleteEntry of each seq in turn; a Batch writes it for consecutive
// deletions of one session's entries. SetPacketIDs sets the packet id of each entry (not
// Released: that is ReleaseEntry); an absent entry is skipped. Their array header is always
// the 3-byte array16 form (dc nn nn) so that a Batch can extend the last operation in place,
// and holds at most 32768 elements.
//
// The records, as msgpack arrays:
//
//	Session (6):       ClientID str, Version uint, Expiry int (ns), DisconnectedAt int (unix ns),
//	                   Will (nil or Message), WillDelay int (ns)
//	Sub (7):           Filter str, Group str, QoS uint, NoLocal bool, RetainAsPublished bool,
//	                   RetainHandling uint, SubID uint
//	Message (13):      ID uint, Topic str, Payload bin, QoS uint, Retain bool, From str,
//	                   Expires int (unix ns), PayloadFormat uint, HasPayloadFormat bool,
//	                   ContentType str, ResponseTopic str, CorrelationData bin,
//	                   User (array of UserProperty)
//	UserProperty (2):  Key str, Value str
//	Entry (9):         Seq uint, MsgID uint, QoS uint, Retain bool, SubIDs (array of uint),
//	                   Group str, Filter str, PacketID uint, Released bool
//
// A Session's Will with a negative Expires (format version 2 on) runs out -Expires nanoseconds
// after the session's DisconnectedAt; Open's State gives it as an absolute time.
//
// For example, DeleteEntry of seq 5 of client "c1" is 0a a2 63 31 05; followed by DeleteEntry
// of seq 6 of the same client, a Batch writes 0f a2 63 31 dc 00 02 05 06 instead. Client ids and retained
// topics are never empty; message IDs are never 0; arrays hold at most 65536 elements. A record
// that breaks any of this, or does not decode, is ErrBadRecord naming the byte offset; the log's
// CRC makes that damage in practice impossible, so recovery stops on it.
//
// # Checkpoint layout (checkpoint.db), version 2
//
// All integers in keys and values are big endian, so that keys sort numerically. Buckets:
//
//	meta                 "format" → uint32 2; "checkpoint" → uint64 C, the last log position
//	                     applied; "maxmsgid" → uint64, the highest message ID ever stored
//	sessions             client id → Session (msgpack, as in the log)
//	subs/<client id>     group NUL filter → Sub
//	entries/<client id>  seq (uint64) → Entry, then (optional) a body location; "next" →
//	                     uint64 NextSeq
//	inqos2/<client id>   packet id (uint16) → empty
//	messages             message id (uint64) → reference count (uint32), then a body location
//	                     or (layout 1) the Message itself
//	retained             topic → message id (uint64)
//	bodyfiles            body file number (uint32) → live bytes (uint64)
//
// A body location is 13 bytes: 0xc1 (a byte msgpack never uses, which tells it from a
// Message), the body file number (uint32), the offset of the body's record in it (uint32) and
// the length of the body (uint32). After an entry it is a hint, written when the body was
// stored in the same transaction: a read of the queue goes straight to the body, and falls
// back to the messages bucket when the record there is not that body's (compaction moved it
// and removed the file). The messages bucket's location is always current.
//
// A message body's reference count is the number of entries and retained topics that refer to
// it; a checkpoint deletes a body whose count is zero, including one that was put and dropped
// within the records it applies. A body file's live bytes are the records (header included)
// of the bodies the messages bucket locates in it. Layout 1 is layout 2 without bodyfiles,
// every body inside its messages value; Open upgrades it by adding the bucket, and reads
// those bodies where they are.
//
// # Body files (DIR/bodies/NNNNNNNN.body), version 1
//
// A checkpoint appends each body it stores to the body file being filled, fdatasyncs it (and
// the directory, for a new file) before its transaction commits, and starts a new file when
// the next record would take this one past the log's segment size. Files are numbered in hex
// (8 digits); a file starts with the 8 bytes "ebbody" 00 01 and then holds records:
//
//	offset size  field
//	0      4     body length n
//	4      4     CRC-32C (Castagnoli) of bytes 8 to 16+n
//	8      8     message id
//	16     n     the Message, msgpack as in the log
//
// A file none of whose bodies is live is removed after the transaction that made it so
// commits (unless it is being filled); one whose live bytes are under a quarter of its size
// is compacted after a checkpoint: its live bodies are appended again, their locations
// changed, in one transaction, and it is removed. Open removes the files bodyfiles does not
// list (written by a checkpoint that never committed, or emptied by one whose removal did not
// happen) and appends to a new file. A record that does not check (length, id, CRC), or a
// listed file that is missing, is damage: the messages that refer to it are missing, and
// are dropped with a warning; an error reading a file is an error, and drops nothing.
//
// The files are read with pread and never mapped: the page cache keeps what was written or
// read recently without counting against the process's RSS, which Options.Lean protects by
// dropping checkpoint.db (which is mapped) from it.
//
// # Checkpoints and recovery
//
// A checkpoint takes the last committed position D, waits until the log has made it durable
// (a checkpoint must never hold a record a power cut could still take back: the log would give
// its position to a later record, and recovery would skip that one as applied), applies the
// records in (C, D] to the buckets and stores the position of the last one applied as C, in
// one bbolt transaction, or in several when Options.CheckpointOps bounds them (each ends at a
// record boundary and stores its own C), then deletes the log segments wholly below C+1.
// Within a transaction, bodies and entries wait in memory until its end and are written only
// if something still refers to them, so that a message put and acknowledged between two
// checkpoints never reaches the B+tree. Recovery at Open applies the records after C with the same
// function, drops expired sessions and messages in the same transaction, and loads the State.
// bbolt commits atomically (NoSync is off), so a power cut anywhere leaves either the old C and
// the old buckets or the new ones, and the log still holds every record after C: recovery is
// idempotent. If a power cut took records the checkpoint already holds (possible only under
// wal.SyncInterval or SyncNever, or after a process crash left them in the page cache), Open
// pads the log with empty batches up to C so that new records never reuse applied positions.
//
// On 32-bit targets checkpoint.db is capped at MaxDBSize32 (bbolt cannot map a larger file
// there); it grows by Options.DBAllocSize at a time.
package store
