// Package wal is a durable append-only log of opaque byte records. It knows nothing of MQTT: the
// session store encodes its records and decides what they mean; the log only promises that a
// record it reported durable survives a crash or a power cut, byte for byte, in order.
//
// # Positions
//
// Every record has a Pos: a record sequence number. The first record ever appended to a log is 1,
// and each later record is one more than the one before it; 0 means "before every record", so
// Replay(0, fn) replays the whole log. Positions never go backwards while records survive, but a
// torn tail dropped after a power cut was never durable, and its positions are given again to
// the records appended after recovery.
//
// # Call order and durability
//
//	l, err := wal.Open(opts)        // validates every segment, drops a torn tail
//	err = l.Replay(checkpoint, fn)  // rebuild state from the records after the checkpoint
//	p, err := l.Append(rec)         // buffered, not durable yet; concurrent callers allowed
//	err = l.WaitDurable(p)          // blocks until p is on disk (one fsync for many waiters)
//	err = l.TruncateBefore(c)       // after a checkpoint at c: drop segments wholly below c
//	err = l.Close()                 // writes and syncs what is buffered
//
// Under SyncAlways (the default) WaitDurable returns nil only when every record up to p has been
// written and fdatasynced. Writes and fsyncs are done by one writer goroutine: while it syncs,
// appends from every caller collect in a buffer, and the next fsync covers all of them (group
// commit). Under SyncInterval and SyncNever, WaitDurable only waits for the write; a power cut
// may lose what was not yet synced.
//
// A write or fsync error poisons the Log: every later Append and WaitDurable returns the same
// error, wrapping ErrFailed. The fsync is never retried (after a failed fsync the kernel may have
// dropped the dirty pages, so a retry that succeeds proves nothing). Close the Log, Open it again
// and replay.
//
// # Recovery
//
// Open reads every segment and checks every checksum. Damage that a power cut explains is
// repaired: a record that is torn, or fails its checksums, at the end of the last segment, with
// no valid record after it, is cut off (the file is truncated and synced; a warning is logged).
// Damage anywhere else makes Open fail with a *CorruptError (errors.Is ErrCorrupt) that names the
// file and the offset; Repair then moves the damaged part aside as <segment>.broken, never
// deleting anything, and Open succeeds with the records before the damage. Recovery changes the
// files only by that truncation, by removing unfinished <name>.wal.tmp files, and by rewriting a
// last segment whose header is cut short (it holds no records); each step is idempotent and
// synced before the log is used, so a power cut during recovery is survived.
//
// # On-disk format, versions 1 and 2
//
// THE FORMAT BELOW MUST NEVER CHANGE. A change of any byte's meaning needs a new format version
// (segment header bytes 8-11), and readers of older versions kept. New segments are written in
// version 2; version 1 is version 2 without padding frames, and is still read (a log written
// by an older build is appended to in its own version until it rolls to a new segment).
//
// All integers are little endian. CRC means CRC-32C (Castagnoli polynomial, as in iSCSI/ext4).
//
// A log is a directory of segment files named by the position of their first record as 16
// lowercase hex digits: 0000000000000001.wal, 0000000000000a3f.wal. Names sort in log order.
// Other names are ignored, except <name>.wal.tmp (a segment being created, removed by Open) and
// <name>.wal.broken (moved aside by Repair, kept for the operator). Consecutive segments are
// contiguous: a segment's first position is the previous segment's first position plus its
// record count.
//
// A segment file is a 28-byte header followed by records:
//
//	offset size  field
//	0      8     magic "EBWAL\x00\r\n" (45 42 57 41 4c 00 0d 0a)
//	8      4     format version, uint32 = 2 (or 1)
//	12     4     salt, uint32: random, chosen when the segment is created
//	16     8     first position, uint64: must equal the file name
//	24     4     CRC of bytes 0-23
//
// Each record is a 12-byte frame header and the payload:
//
//	offset size  field
//	0      4     n: payload length, uint32, at most MaxRecordSize (16 MiB)
//	4      4     data CRC: CRC of bytes 0-3 (n) followed by the n payload bytes
//	8      4     header CRC: CRC of the segment's salt (4 bytes) followed by bytes 0-7
//	12     n     payload
//
// The header CRC makes n trustworthy before it is used: nothing is allocated for a record whose
// header CRC fails, whose n is over the limit, or whose payload would run past the end of the
// file. The salt makes a frame that happens to sit inside another record's payload (or is left
// from another segment) fail its header CRC, so that scanning for valid frames after damage is
// reliable. A zeroed region never parses as a record: n = 0 needs a data CRC of CRC(00 00 00 00),
// which is not zero.
//
// Version 2 adds padding frames. Before each sync the writer pads the segment to a multiple of
// the page size (Options.PadTo) when at least a frame header's worth is missing, so that the
// next write starts on a fresh page: without it, every sync writes the page the previous sync
// ended in a second time (twice the flash writes at small batches). A padding frame is:
//
//	offset size  field
//	0      4     0xFFFFFFFF (a length no record can have)
//	4      4     f: number of filler bytes after this header, uint32
//	8      4     header CRC: CRC of the segment's salt followed by bytes 0-7
//	12     f     filler (zeros; not checked)
//
// Readers skip padding; it has no position. A padding frame that runs past the end of the file
// is damage like a torn record. The scan for valid frames after damage looks for records only.
//
// A segment ends at the end of its file; there is no trailer. Writers roll to a new segment before a record would take the file past Options.SegmentSize (a segment always
// holds at least one record, so a large record can make a segment larger).
//
// # Creating and removing files
//
// A new segment is written as <name>.wal.tmp (header only), fdatasynced, renamed to <name>.wal,
// and the directory is synced; only then does it receive records. Before a new segment is
// created the previous one is synced, whatever the SyncPolicy, so that only the last segment can
// ever hold a torn record. TruncateBefore removes whole segments, oldest first, syncing the
// directory after each, so the segments left on disk are always contiguous.
//
// The log assumes one process at a time: opening the same directory twice corrupts it.
package wal
