package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"edgebroker/wal/waltest"
)

// bodyFileNames returns the body files of the store in o, sorted.
func bodyFileNames(t *testing.T, o Options) []string {
	t.Helper()
	names, err := o.WAL.FS.ReadDir(filepath.Join(o.Dir, bodyDirName))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// messageValue returns the value of message id in the messages bucket.
func messageValue(t *testing.T, s *Store, id uint64) []byte {
	t.Helper()
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v = slices.Clone(tx.Bucket(bucketMessages).Get(seqKey(id)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// queueOffline commits n messages (ids from, from+1, ...) queued for offline client c, with
// payloads of size bytes, and checkpoints them.
func queueOffline(t *testing.T, s *Store, c string, from uint64, n, size int) {
	t.Helper()
	var b Batch
	b.PutSession(&Session{ClientID: c, Version: 5, DisconnectedAt: testNow.UnixNano(), Expiry: -1})
	for i := range uint64(n) {
		m := msg(from+i, "t/"+c)
		m.Payload = make([]byte, size)
		m.Payload[0] = byte(from + i)
		b.PutMessage(m)
		b.PutEntry(c, &Entry{Seq: from + i, MsgID: from + i, QoS: 1})
	}
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
}

// closedWithQueue returns a closed store on a memory file system whose client c has two
// checkpointed messages queued, their bodies in a body file.
func closedWithQueue(t *testing.T, c string) (*waltest.MemFS, Options) {
	t.Helper()
	mem := newMem()
	o := testOptions(t, mem)
	s, _ := mustOpen(t, o)
	queueOffline(t, s, c, 1, 2, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return mem, o
}

// A checkpoint stores a body in a body file and only its location in checkpoint.db; its entry
// carries the location too. Queue reads, ReadMessage and Open all find the body there.
func TestBodiesGoToBodyFiles(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	queueOffline(t, s, "c", 1, 3, 100)
	var b Batch
	b.PutMessage(msg(10, "r"))
	b.PutRetained("r", 10)
	b.PutEntry("c", &Entry{Seq: 10, MsgID: 10, QoS: 1, PacketID: 5}) // in flight
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if v := messageValue(t, s, 1); len(v) != 4+bodyLocSize || v[4] != bodyMarker {
		t.Fatalf("message 1's value is %x; want a reference count and a location", v)
	}
	if names := bodyFileNames(t, o); len(names) == 0 {
		t.Fatal("no body file")
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEntries).Bucket([]byte("c")).Get(seqKey(2))
		var e Entry
		rest, err := e.UnmarshalMsg(v)
		if _, ok := parseBodyLoc(rest); err != nil || !ok {
			t.Fatalf("entry 2 is %x (%v); want the entry and its body's location", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	es, err := s.ReadQueued("c", 0, 10)
	if err != nil || len(es) != 3 {
		t.Fatalf("ReadQueued = %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if e.Msg == nil || e.Msg.ID != uint64(i+1) || len(e.Msg.Payload) != 100 || e.Msg.Payload[0] != byte(i+1) {
			t.Fatalf("entry %d: message %+v", i, e.Msg)
		}
	}
	if m, err := s.ReadMessage(10); err != nil || m == nil || m.Topic != "r" {
		t.Fatalf("ReadMessage(10) = %+v, %v", m, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, st := mustOpen(t, o)
	defer s.Close()
	if m := st.Retained["r"]; m == nil || m.ID != 10 {
		t.Fatalf("retained after reopen: %+v", m)
	}
	if ss := st.Sessions["c"]; ss == nil || len(ss.Entries) != 1 || ss.Entries[0].Msg == nil || ss.Queued != 3 {
		t.Fatalf("session after reopen: %+v", ss)
	}
}

// A body file whose bodies are all acknowledged goes; one whose live bodies are few is
// compacted: they move to the file being filled, and a queue read still finds them through
// the messages bucket when its entry's location is out of date.
func TestBodyFilesRemovedAndCompacted(t *testing.T) {
	o := testOptions(t, newMem())
	o.WAL.SegmentSize = 4 << 10 // body files of 4 KiB: ten bodies of 400 bytes
	s, _ := mustOpen(t, o)
	defer s.Close()
	queueOffline(t, s, "gone", 1, 10, 400)
	queueOffline(t, s, "kept", 100, 10, 400)
	queueOffline(t, s, "more", 200, 20, 400)
	first := bodyFileNames(t, o)
	if len(first) < 4 {
		t.Fatalf("body files %v; want at least 4 of 4 KiB", first)
	}
	var b Batch
	for seq := uint64(1); seq <= 10; seq++ {
		b.DeleteEntry("gone", seq)
	}
	for seq := uint64(101); seq <= 109; seq++ { // 100 stays
		b.DeleteEntry("kept", seq)
	}
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	now := bodyFileNames(t, o)
	for _, n := range first[:2] {
		if slices.Contains(now, n) {
			t.Fatalf("body file %s stayed (files now %v); its bodies are gone or moved", n, now)
		}
	}
	es, err := s.ReadQueued("kept", 0, 10)
	if err != nil || len(es) != 1 || es[0].Msg == nil || es[0].Msg.ID != 100 || es[0].Msg.Payload[0] != 100 {
		t.Fatalf("ReadQueued(kept) = %+v, %v; want message 100, moved", es, err)
	}
	l, _ := parseBodyLoc(messageValue(t, s, 100)[4:])
	if name := filepath.Base(bodyPath("", l.file)); slices.Contains(first[:2], name) {
		t.Fatalf("message 100 is still in %s", name)
	}
	if es, err := s.ReadQueued("more", 0, 100); err != nil || len(es) != 20 || es[19].Msg == nil {
		t.Fatalf("ReadQueued(more) = %d entries, %v", len(es), err)
	}
}

// A file of the bodies directory that checkpoint.db does not list (a checkpoint wrote it and
// never committed) is removed at Open.
func TestStrayBodyFileRemoved(t *testing.T) {
	mem, o := closedWithQueue(t, "c")
	stray := bodyPath(filepath.Join(o.Dir, bodyDirName), 0x99)
	if err := mem.WriteFile(stray, []byte(bodyFileMagic)); err != nil {
		t.Fatal(err)
	}
	s, _ := mustOpen(t, o)
	defer s.Close()
	if slices.Contains(bodyFileNames(t, o), filepath.Base(stray)) {
		t.Fatal("the stray body file is still there")
	}
	if es, err := s.ReadQueued("c", 0, 10); err != nil || len(es) != 2 || es[1].Msg == nil {
		t.Fatalf("ReadQueued = %+v, %v", es, err)
	}
}

// Damaged body files: a flipped bit, a truncated file, a missing one. The bodies they held are
// missing (a queue read gives a nil message, Open drops what refers to them, with a warning);
// the others are there; nothing panics. (With every body file gone, Open refuses: see
// TestBodyDirectoryLost.)
func TestDamagedBodyFiles(t *testing.T) {
	for _, damage := range []string{"flip", "truncate", "remove"} {
		t.Run(damage, func(t *testing.T) {
			mem := newMem()
			o := testOptions(t, mem)
			s, _ := mustOpen(t, o)
			queueOffline(t, s, "other", 100, 1, 50) // in a file of its own, which stays
			s.spill.mu.Lock()
			s.spill.abandonLocked() // the next bodies start a new file
			s.spill.mu.Unlock()
			queueOffline(t, s, "a", 1, 2, 50)
			var b Batch
			b.PutMessage(msg(10, "r"))
			b.PutRetained("r", 10)
			mustSync(t, s, &b)
			if err := s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			names := bodyFileNames(t, o)
			if len(names) != 2 {
				t.Fatalf("body files %v; want two", names)
			}
			path := filepath.Join(o.Dir, bodyDirName, names[1])
			data := mem.Snapshot(path)
			switch damage {
			case "flip":
				data[len(bodyFileMagic)+bodyHdrSize+3] ^= 0x10 // message 1's body
			case "truncate":
				data = data[:len(data)-5] // the retained body's tail
			}
			if damage == "remove" {
				if err := mem.Remove(path); err != nil {
					t.Fatal(err)
				}
			} else if err := mem.WriteFile(path, data); err != nil {
				t.Fatal(err)
			}
			s, st := mustOpen(t, o)
			defer s.Close()
			es, err := s.ReadQueued("a", 0, 10)
			if err != nil || len(es) != 2 {
				t.Fatalf("ReadQueued = %+v, %v", es, err)
			}
			want := map[string][2]bool{"flip": {false, true}, "truncate": {true, true}, "remove": {false, false}}[damage]
			for i, e := range es {
				if (e.Msg != nil) != want[i] {
					t.Fatalf("entry %d: message %+v; want present %v", i, e.Msg, want[i])
				}
			}
			if _, ok := st.Retained["r"]; ok != (damage == "flip") {
				t.Fatalf("retained present %v after %s", ok, damage)
			}
			if es, err := s.ReadQueued("other", 0, 10); err != nil || len(es) != 1 || es[0].Msg == nil {
				t.Fatalf("the undamaged file's body: %+v, %v", es, err)
			}
		})
	}
}

// A data directory whose body files are all gone (a restore that left bodies/ out) does not
// open: every stored body would be dropped. The error says what to do.
func TestBodyDirectoryLost(t *testing.T) {
	mem, o := closedWithQueue(t, "a")
	for _, n := range bodyFileNames(t, o) {
		if err := mem.Remove(filepath.Join(o.Dir, bodyDirName, n)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := Open(o)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "restore it from the backup") {
		t.Fatalf("Open = %v; want damage with what to do", err)
	}
}

// A checkpoint.db of layout 1, with bodies in the messages bucket, still opens: those bodies
// are read where they are, and new ones go to body files.
func TestLayout1Bodies(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(dbPath(o.Dir), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		tx.Bucket(bucketMeta).Put(keyFormat, binary.BigEndian.AppendUint32(nil, 1))
		tx.Bucket(bucketMeta).Put(keyMaxMsgID, binary.BigEndian.AppendUint64(nil, 1))
		if err := tx.DeleteBucket(bucketBodyFiles); err != nil {
			return err
		}
		sess, _ := (&Session{ClientID: "c", Version: 5, DisconnectedAt: 1, Expiry: -1}).MarshalMsg(nil)
		tx.Bucket(bucketSessions).Put([]byte("c"), sess)
		body, _ := msg(1, "old").MarshalMsg(binary.BigEndian.AppendUint32(nil, 2))
		tx.Bucket(bucketMessages).Put(seqKey(1), body)
		q, err := tx.Bucket(bucketEntries).CreateBucket([]byte("c"))
		if err != nil {
			return err
		}
		for seq := range uint64(2) {
			e, _ := (&Entry{Seq: seq + 1, MsgID: 1, QoS: 1}).MarshalMsg(nil)
			q.Put(seqKey(seq+1), e)
		}
		return q.Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, 3))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, st := mustOpen(t, o)
	defer s.Close()
	if st.Sessions["c"] == nil || st.Sessions["c"].Queued != 2 {
		t.Fatalf("session c: %+v", st.Sessions["c"])
	}
	var b Batch
	b.PutMessage(msg(2, "new"))
	b.PutEntry("c", &Entry{Seq: 3, MsgID: 2, QoS: 1})
	b.DeleteEntry("c", 1)
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	es, err := s.ReadQueued("c", 0, 10)
	if err != nil || len(es) != 2 || es[0].Msg.Topic != "old" || es[1].Msg.Topic != "new" {
		t.Fatalf("ReadQueued = %+v, %v", es, err)
	}
	if v := messageValue(t, s, 1); len(v) < 5 || v[4] == bodyMarker || binary.BigEndian.Uint32(v) != 1 {
		t.Fatalf("the layout-1 body's value is %x; want it in place with one reference", v)
	}
	if v := messageValue(t, s, 2); len(v) != 4+bodyLocSize {
		t.Fatalf("the new body's value is %x; want a location", v)
	}
	var format uint32
	s.db.View(func(tx *bolt.Tx) error {
		format = binary.BigEndian.Uint32(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	})
	if format != dbFormat {
		t.Fatalf("layout %d after Open; want %d", format, dbFormat)
	}
}

// A read of a body file that fails (not damage: the disk said no) is an error of ReadQueued,
// neither a missing message nor damage; with the disk back, the read succeeds.
func TestBodyReadErrorIsNoDamage(t *testing.T) {
	for _, n := range []int{1, 200} { // read through the map, and with pread of the pages
		f := waltest.NewFaultFS(newMem())
		o := testOptions(t, f)
		s, _ := mustOpen(t, o)
		queueOffline(t, s, "c", 1, n, 10)
		s.spill.readersMu.Lock()
		for n, r := range s.spill.readers { // the next read opens the file again
			r.Close()
			delete(s.spill.readers, n)
		}
		s.spill.readersMu.Unlock()
		f.FailAt(1, fmt.Errorf("i/o error"), true)
		if es, err := s.ReadQueued("c", 0, n); err == nil || errors.Is(err, ErrDamaged) {
			t.Fatalf("%d entries: ReadQueued = %d entries, %v; want the read's error, not damage", n, len(es), err)
		}
		f.Heal()
		if es, err := s.ReadQueued("c", 0, n); err != nil || len(es) != n || es[n-1].Msg == nil {
			t.Fatalf("%d entries, after the disk healed: %d entries, %v", n, len(es), err)
		}
		s.Close()
	}
}

// One file operation failing once, anywhere in a checkpoint, does not stop the next one: a
// body file whose write or sync failed is given up, and the next bodies go to a new one.
func TestCheckpointAfterATransientFailure(t *testing.T) {
	for k := 1; ; k++ {
		f := waltest.NewFaultFS(newMem())
		o := testOptions(t, f)
		s, _ := mustOpen(t, o)
		var b Batch
		b.PutSession(&Session{ClientID: "c", Version: 5, DisconnectedAt: 1, Expiry: -1})
		for seq := range uint64(3) {
			b.PutMessage(msg(seq+1, "t"))
			b.PutEntry("c", &Entry{Seq: seq + 1, MsgID: seq + 1, QoS: 1})
		}
		mustSync(t, s, &b)
		f.FailAt(k, fmt.Errorf("transient"), false)
		cerr := s.Checkpoint()
		if !f.Fired() {
			s.Close()
			if k < 3 {
				t.Fatal("the checkpoint did no file operation")
			}
			return
		}
		f.Heal()
		// All three acknowledged: the next checkpoint stores no body (and must still sync
		// none of the failed file's).
		b.DeleteEntry("c", 1)
		b.DeleteEntry("c", 2)
		b.DeleteEntry("c", 3)
		if err := s.Sync(&b); err != nil {
			s.Close() // the log failed: that is Reopen's business, not this test's
			continue
		}
		if err := s.Checkpoint(); err != nil {
			t.Fatalf("k=%d: the checkpoint after a failed one (%v): %v", k, cerr, err)
		}
		b.PutMessage(msg(4, "t"))
		b.PutEntry("c", &Entry{Seq: 4, MsgID: 4, QoS: 1})
		mustSync(t, s, &b)
		if err := s.Checkpoint(); err != nil {
			t.Fatalf("k=%d: a checkpoint storing a body after a failed one: %v", k, err)
		}
		if es, err := s.ReadQueued("c", 0, 10); err != nil || len(es) != 1 || es[0].Msg == nil {
			t.Fatalf("k=%d: ReadQueued = %+v, %v", k, es, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("k=%d: Close: %v", k, err)
		}
	}
}

// A body file whose write or sync failed is given up: a sync after it has nothing to make
// durable (what the file held unsynced belongs to the transaction that failed), and the next
// body goes to a new file.
func TestBodyFileGivenUpAfterAFailure(t *testing.T) {
	for _, op := range []int{1, 2} { // the write, the sync
		f := waltest.NewFaultFS(newMem())
		b, err := openBodyFiles(f, t.TempDir(), 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.add(1, []byte("lost")); err != nil { // opens the file
			t.Fatal(err)
		}
		f.FailAt(op, fmt.Errorf("transient"), false)
		if err := b.sync(); err == nil {
			t.Fatalf("op %d: sync did not fail", op)
		}
		f.Heal()
		if err := b.sync(); err != nil {
			t.Fatalf("op %d: a sync after the failure: %v", op, err)
		}
		l, err := b.add(2, []byte("kept"))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.sync(); err != nil {
			t.Fatal(err)
		}
		if l.file == 0 {
			t.Fatalf("op %d: the next body went to the failed file", op)
		}
		if rec, err := b.read(2, l, nil); err != nil || string(rec[bodyHdrSize:]) != "kept" {
			t.Fatalf("op %d: read back %q, %v", op, rec, err)
		}
		b.close()
	}
}

// checkBodyAccounting checks that checkpoint.db's live bytes of each body file are those of the
// bodies its messages bucket locates there, and that every file it lists exists.
func checkBodyAccounting(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		want := map[uint32]int64{}
		tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
			if len(v) >= 4 {
				if l, ok := parseBodyLoc(v[4:]); ok {
					want[l.file] += l.size()
				}
			}
			return nil
		})
		got := map[uint32]int64{}
		tx.Bucket(bucketBodyFiles).ForEach(func(k, v []byte) error {
			n := binary.BigEndian.Uint32(k)
			got[n] = int64(binary.BigEndian.Uint64(v))
			if _, err := s.spill.reader(n); err != nil {
				t.Errorf("body file %08x is listed but cannot be read: %v", n, err)
			}
			return nil
		})
		for n, w := range want {
			if got[n] != w {
				t.Errorf("body file %08x: %d live bytes listed, %d located", n, got[n], w)
			}
		}
		for n, g := range got {
			if _, ok := want[n]; !ok && g != 0 {
				t.Errorf("body file %08x: %d live bytes listed, none located", n, g)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzBodyFile reads arbitrary bytes as a body file: a scan and a read at any location end in
// records that check or an error, never a panic or a large allocation.
func FuzzBodyFile(f *testing.F) {
	mem := newMem()
	b, err := openBodyFiles(mem, f.TempDir(), 1<<20, nil)
	if err != nil {
		f.Fatal(err)
	}
	l, _ := b.add(7, []byte("a body"))
	b.sync()
	f.Add(mem.Snapshot(bodyPath(b.dir, l.file)), uint32(l.off), uint32(l.len))
	f.Add([]byte(bodyFileMagic+"\xff\xff\xff\xff"), uint32(8), uint32(1<<31))
	f.Fuzz(func(t *testing.T, data []byte, off, n uint32) {
		mem := newMem()
		dir := "/data" // on mem only
		if err := mem.WriteFile(bodyPath(filepath.Join(dir, bodyDirName), 0), data); err != nil {
			t.Fatal(err)
		}
		bf, err := openBodyFiles(mem, dir, 1<<20, map[uint32]int64{0: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer bf.close()
		bf.scan(0, func(l bodyLoc, id uint64, body []byte) error {
			if int64(len(body)) != int64(l.len) {
				t.Fatalf("scan gave %d bytes for a record of %d", len(body), l.len)
			}
			if _, err := bf.read(id, l, nil); err != nil {
				t.Fatalf("a record scan found does not read back: %v", err)
			}
			return nil
		})
		bf.read(7, bodyLoc{file: 0, off: off, len: n}, nil)
	})
}

// bodyFilesSize sums the sizes of the files in o's bodies directory.
func bodyFilesSize(t *testing.T, o Options) int64 {
	t.Helper()
	var total int64
	for _, name := range bodyFileNames(t, o) {
		f, err := o.WAL.FS.OpenFile(filepath.Join(o.Dir, bodyDirName, name), os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		size, err := f.Size()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		total += size
	}
	return total
}

// Stats reports what the body files take on disk, and what was written to them since Open
// ($SYS disk/bodies bytes and part of disk/bytes written).
func TestBodyFileStats(t *testing.T) {
	o := testOptions(t, newMem())
	o.WAL.SegmentSize = 4 << 10 // body files of 4 KiB: ten bodies of 400 bytes
	s, _ := mustOpen(t, o)
	if st := s.Stats(); st.BodyBytes != 0 || st.BodyWritten != 0 {
		t.Fatalf("empty store: body bytes %d, written %d; want 0, 0", st.BodyBytes, st.BodyWritten)
	}
	queueOffline(t, s, "a", 1, 10, 400)
	queueOffline(t, s, "b", 100, 10, 400)
	st := s.Stats()
	if want := bodyFilesSize(t, o); st.BodyBytes != want || want < 20*400 {
		t.Fatalf("body bytes %d; the files hold %d (at least %d)", st.BodyBytes, want, 20*400)
	}
	if st.BodyWritten != st.BodyBytes {
		t.Fatalf("written %d; want %d, all of it still on disk", st.BodyWritten, st.BodyBytes)
	}
	var b Batch
	for seq := uint64(1); seq <= 10; seq++ {
		b.DeleteEntry("a", seq)
	}
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	after := s.Stats()
	if want := bodyFilesSize(t, o); after.BodyBytes != want || want >= st.BodyBytes {
		t.Fatalf("after a's bodies went: body bytes %d; the files hold %d, before %d", after.BodyBytes, want, st.BodyBytes)
	}
	if after.BodyWritten < st.BodyWritten {
		t.Fatalf("written fell from %d to %d", st.BodyWritten, after.BodyWritten)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = mustOpen(t, o)
	defer s.Close()
	if re := s.Stats(); re.BodyBytes != bodyFilesSize(t, o) || re.BodyWritten != 0 {
		t.Fatalf("reopened: body bytes %d (files %d), written %d (want 0: since Open)",
			re.BodyBytes, bodyFilesSize(t, o), re.BodyWritten)
	}
}

// A large body passes through the body files' write buffer without the buffer keeping its
// size.
func TestBodyWriteBufferShrinks(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	defer s.Close()
	queueOffline(t, s, "big", 1, 1, 1<<20)
	s.spill.mu.Lock()
	c := cap(s.spill.buf)
	s.spill.mu.Unlock()
	if c > 2*bodyWriteBuffer {
		t.Fatalf("write buffer of %d bytes kept after a 1 MiB body; want at most %d", c, 2*bodyWriteBuffer)
	}
	queueOffline(t, s, "small", 10, 3, 100)
	if es, err := s.ReadQueued("big", 0, 10); err != nil || len(es) != 1 || es[0].Msg == nil || len(es[0].Msg.Payload) != 1<<20 {
		t.Fatalf("ReadQueued(big) = %d entries, %v; want the 1 MiB body", len(es), err)
	}
	if es, err := s.ReadQueued("small", 0, 10); err != nil || len(es) != 3 || es[2].Msg == nil {
		t.Fatalf("ReadQueued(small) = %d entries, %v; want 3", len(es), err)
	}
}
