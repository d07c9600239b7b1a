package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// pagesDB builds a bbolt file with buckets of every shape the reader meets: big ones (several
// levels of branches), small nested ones (inline), and values from empty to several pages.
func pagesDB(t *testing.T, rng *rand.Rand) (string, map[string]map[string][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pages.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]map[string][]byte{}
	err = db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucket([]byte("top"))
		if err != nil {
			return err
		}
		for i := range 40 {
			name := fmt.Sprintf("bucket-%02d", i)
			b, err := top.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			kv := map[string][]byte{}
			n := []int{0, 1, 3, 50, 2000}[i%5]
			for j := range n {
				k := fmt.Appendf(nil, "%08d", rng.IntN(1e8))
				size := rng.IntN(200)
				if j%97 == 0 {
					size = rng.IntN(20000) // overflow pages
				}
				v := make([]byte, size)
				for x := range v {
					v[x] = byte(rng.Uint32())
				}
				kv[string(k)] = v
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
			want[name] = kv
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path, want
}

// openPagesDB opens a bbolt file read-only, and the same file for a pageFile, both closed
// with the test.
func openPagesDB(t *testing.T, path string) (*bolt.DB, *os.File) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return db, f
}

// TestPagesReadLikeBolt reads every bucket under "top" with a treeCursor and checks it against bbolt's
// own cursor: full iteration, Seek to existing and missing keys, Get.
func TestPagesReadLikeBolt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	path, want := pagesDB(t, rng)
	db, f := openPagesDB(t, path)
	err := db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket([]byte("top"))
		pf := &pageFile{r: f, pageSize: db.Info().PageSize, size: tx.Size()}
		topc := &treeCursor{pf: pf, root: uint64(top.Root())}
		if topc.root == 0 {
			t.Fatal("the top bucket is inline: the test needs it on its own pages")
		}
		inline := 0
		for name, kv := range want {
			v, flags, err := topc.Get([]byte(name))
			if err != nil || flags&bucketLeaf == 0 {
				t.Fatalf("Get(%s): flags %#x, %v", name, flags, err)
			}
			c, err := pf.bucketCursor(v)
			if err != nil {
				t.Fatal(err)
			}
			if c.root == 0 {
				inline++
			}
			bc := top.Bucket([]byte(name)).Cursor()
			// Every key in order, with its value.
			n := 0
			k, v, _, err := c.Seek(nil)
			bk, bv := bc.First()
			for ; k != nil || bk != nil; k, v, _, err = c.Next() {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(k, bk) || !bytes.Equal(v, bv) {
					t.Fatalf("%s, key %d: got %q (%d bytes), bbolt %q (%d bytes)", name, n, k, len(v), bk, len(bv))
				}
				n++
				bk, bv = bc.Next()
			}
			if n != len(kv) {
				t.Fatalf("%s: %d keys, want %d", name, n, len(kv))
			}
			// Get what is there.
			checked := 0
			for k, w := range kv {
				if checked++; checked > 20 {
					break
				}
				if got, _, err := c.Get([]byte(k)); err != nil || !bytes.Equal(got, w) {
					t.Fatalf("%s: Get(%s) = %d bytes, %v; want %d bytes", name, k, len(got), err, len(w))
				}
			}
			// Seek anywhere, and Get what is there and what is not.
			for range 50 {
				key := fmt.Appendf(nil, "%08d", rng.IntN(1e8))
				k, v, _, err := c.Seek(key)
				bk, bv := bc.Seek(key)
				if err != nil || !bytes.Equal(k, bk) || !bytes.Equal(v, bv) {
					t.Fatalf("%s: Seek(%s) = %q, %v; bbolt %q", name, key, k, err, bk)
				}
				got, _, err := c.Get(key)
				if w, ok := kv[string(key)]; err != nil || (ok && !bytes.Equal(got, w)) || (!ok && got != nil) {
					t.Fatalf("%s: Get(%s) = %d bytes, %v", name, key, len(got), err)
				}
			}
		}
		if inline == 0 || inline == len(want) {
			t.Fatalf("%d of %d buckets inline: the test needs both kinds", inline, len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Damaged pages give errors, never a panic or an endless walk.
func TestPagesDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	path, want := pagesDB(t, rng)
	clean, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var root uint64
	var size int64
	pageSize := db.Info().PageSize
	db.View(func(tx *bolt.Tx) error {
		root, size = uint64(tx.Bucket([]byte("top")).Root()), tx.Size()
		return nil
	})
	db.Close()
	failures := 0
	for round := range 300 {
		damaged := bytes.Clone(clean)
		for range 1 + rng.IntN(20) {
			at := 2*pageSize + rng.IntN(len(damaged)-2*pageSize)
			if round%2 == 0 { // a page header: its id, flags, count or overflow
				at = at/pageSize*pageSize + rng.IntN(pageHeaderSize)
			}
			damaged[at] = byte(rng.Uint32())
		}
		pf := &pageFile{r: bytes.NewReader(damaged), pageSize: pageSize, size: size}
		top := &treeCursor{pf: pf, root: root}
		for name := range want {
			v, _, err := top.Get([]byte(name))
			if err != nil {
				failures++
				break
			}
			c, err := pf.bucketCursor(v)
			if err != nil {
				failures++
				continue
			}
			k, _, _, err := c.Seek(nil)
			for steps := 0; k != nil && err == nil; steps++ {
				if steps > 10000 {
					t.Fatalf("round %d, %s: more keys than were put", round, name)
				}
				k, _, _, err = c.Next()
			}
			if err != nil {
				failures++
			}
		}
	}
	if failures == 0 {
		t.Fatal("300 rounds of damage and not one error: the checks do not look at the pages")
	}
}

// ReadQueued gives the same entries and bodies through pread as through the map: queues with
// entries in flight (left out), bodies shared between sessions, reads from anywhere, and
// reads whose page buffers the next read reuses.
func TestReadQueuedPagesMatchesMap(t *testing.T) {
	s, _ := mustOpen(t, testOptions(t, newMem()))
	defer s.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var b Batch
	id := uint64(0)
	for c := range 4 {
		client := fmt.Sprint("client-", c)
		b.PutSession(&Session{ClientID: client, Version: 4})
		for seq := uint64(1); seq <= 300; seq++ {
			if seq%3 == 1 || c == 0 { // every third body shared by the other sessions
				id++
				b.PutMessage(&Message{ID: id, Topic: "t/" + client, Payload: bytes.Repeat([]byte{byte(seq)}, 100+rng.IntN(400))})
			}
			e := &Entry{Seq: seq, MsgID: id, QoS: 1}
			if seq%10 == 0 {
				e.PacketID = uint16(seq) // in flight: not a queued entry
			}
			b.PutEntry(client, e)
		}
		mustSync(t, s, &b)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, mid := range []uint64{1, id / 2, id} { // ReadMessage reads with pread too
		m, err := s.ReadMessage(mid)
		if err != nil || m == nil || m.ID != mid || len(m.Payload) < 100 {
			t.Fatalf("ReadMessage(%d) = %+v, %v", mid, m, err)
		}
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		pf := s.pageFile(tx)
		if pf == nil {
			t.Fatal("the buckets are inline: the test needs them on pages of their own")
		}
		for c := range 5 { // client-4 has no queue
			client := fmt.Sprint("client-", c)
			for range 20 {
				from, max := uint64(rng.IntN(320)), 1+rng.IntN(64)
				mapped, _, err := readQueuedMapped(s.spill, tx, client, from, max)
				if err != nil {
					t.Fatal(err)
				}
				read, err := readQueuedPages(s.spill, tx, pf, client, from, max)
				if err != nil {
					t.Fatal(err)
				}
				// The next read reuses the page buffers of this one: nothing it returned may
				// point into them.
				pf.release()
				if _, err := readQueuedPages(s.spill, tx, pf, client, 0, 64); err != nil {
					t.Fatal(err)
				}
				pf.release()
				if got, want := fmt.Sprintf("%+v", entryDump(read)), fmt.Sprintf("%+v", entryDump(mapped)); got != want {
					t.Fatalf("%s from %d max %d:\npread %s\nmap   %s", client, from, max, got, want)
				}
				if c < 4 && from <= 290 && len(read) == 0 {
					t.Fatalf("%s from %d: nothing read", client, from)
				}
			}
		}
		if n, most := len(s.pageBufs.free), maxSpareBytes/pf.pageSize; n == 0 || n > most {
			t.Fatalf("%d spare page buffers after the reads, want 1 to %d", n, most)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// entryDump renders entries with their bodies by value.
func entryDump(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d:%d:%d:%x", e.Seq, e.MsgID, e.PacketID, e.Msg.Payload))
	}
	return out
}

// countingReader counts the pages a pageFile reads.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// A cursor reads the root and upper branches once: later lookups read only what differs.
func TestPagesReadUpperPagesOnce(t *testing.T) {
	path, want := pagesDB(t, rand.New(rand.NewPCG(7, 8)))
	db, f := openPagesDB(t, path)
	db.View(func(tx *bolt.Tx) error {
		cr := &countingReader{r: f}
		pf := &pageFile{r: cr, pageSize: db.Info().PageSize, size: tx.Size()}
		top := &treeCursor{pf: pf, root: uint64(tx.Bucket([]byte("top")).Root())}
		v, _, err := top.Get([]byte("bucket-04")) // 2000 keys: several levels
		if err != nil {
			t.Fatal(err)
		}
		c, err := pf.bucketCursor(v)
		if err != nil {
			t.Fatal(err)
		}
		cr.reads = 0
		if _, _, err := c.Get([]byte("0")); err != nil { // reads a path from the root
			t.Fatal(err)
		}
		if cr.reads < 2 {
			t.Fatalf("a lookup read %d pages: the bucket needs a branch level for this test", cr.reads)
		}
		checked := 0
		for k, w := range want["bucket-04"] {
			if checked++; checked > 50 {
				break
			}
			fresh, err := pf.bucketCursor(v)
			if err != nil {
				t.Fatal(err)
			}
			cr.reads = 0
			fresh.Get([]byte(k))
			alone := cr.reads
			cr.reads = 0
			got, _, err := c.Get([]byte(k))
			if err != nil || !bytes.Equal(got, w) {
				t.Fatalf("Get(%s): %v", k, err)
			}
			if cr.reads >= alone {
				t.Fatalf("Get(%s) read %d times, as a fresh cursor does (%d): upper pages read again", k, cr.reads, alone)
			}
		}
		return nil
	})
}

// A damaged tree whose branches all lead to the same pages gives an error after as many
// pages as the file has, not a walk down every one of its billions of paths.
func TestPagesRepeatedBranches(t *testing.T) {
	const pageSize, fanout, depth = 4096, 64, 8
	file := make([]byte, (2+depth+1)*pageSize)
	ne := binary.NativeEndian
	for level := range depth + 1 {
		id := uint64(2 + level)
		p := file[id*pageSize:][:pageSize]
		ne.PutUint64(p, id)
		if level == depth {
			ne.PutUint16(p[8:], leafPage) // empty
			continue
		}
		ne.PutUint16(p[8:], branchPage)
		ne.PutUint16(p[10:], fanout)
		for i := range fanout { // every element leads to the next level's one page
			at, key := pageHeaderSize+i*elemSize, pageHeaderSize+fanout*elemSize+i
			ne.PutUint32(p[at:], uint32(key-at))
			ne.PutUint32(p[at+4:], 1)
			ne.PutUint64(p[at+8:], id+1)
			p[key] = byte(i)
		}
	}
	pf := &pageFile{r: bytes.NewReader(file), pageSize: pageSize, size: int64(len(file))}
	c := &treeCursor{pf: pf, root: 2}
	k, _, _, err := c.Seek(nil)
	if k != nil || !errors.Is(err, errBadPage) {
		t.Fatalf("Seek gave key %q, error %v; want %v", k, err, errBadPage)
	}
}
