package session

import (
	"errors"
	"fmt"
	"testing"
)

// diskQueue is a queue whose read function serves deliveries from a slice standing in for the
// store's checkpoint, counting its reads.
type diskQueue struct {
	q     queue
	disk  []*delivery // by ascending seq
	reads int
	fail  error
}

func newDiskQueue(capacity int) *diskQueue {
	dq := &diskQueue{q: newQueue(capacity)}
	dq.q.read = func(from uint64, max int) ([]*delivery, int, uint64, error) {
		dq.reads++
		if dq.fail != nil {
			return nil, 0, 0, dq.fail
		}
		var out []*delivery
		var next uint64
		consumed := 0
		for _, d := range dq.disk {
			if d.seq < from || consumed == max {
				continue
			}
			consumed++
			next = d.seq + 1
			if d.msg != nil { // a delivery without a body stands for an entry whose body is lost
				c := *d
				out = append(out, &c)
			}
		}
		return out, consumed, next, nil
	}
	return dq
}

// pushStored queues stored deliveries lo to hi, with bodies of size bytes.
func (dq *diskQueue) pushStored(t *testing.T, lo, hi uint64, size int) {
	t.Helper()
	for seq := lo; seq <= hi; seq++ {
		d := del(seq, size)
		dq.disk = append(dq.disk, d)
		if !dq.q.Push(d) {
			t.Fatalf("push of %d refused", seq)
		}
	}
}

// del is a stored delivery of seq with a body of n bytes (topic "t").
func del(seq uint64, n int) *delivery {
	return &delivery{msg: &Message{Topic: "t", Payload: make([]byte, n)}, qos: 1, seq: seq, pos: 1}
}

func popAll(t *testing.T, q *queue) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		d, ok := q.Pop()
		if !ok {
			break
		}
		seqs = append(seqs, d.seq)
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("drained queue: Len %d, Bytes %d", q.Len(), q.Bytes())
	}
	return seqs
}

func TestQueueSpillAndReadBackInOrder(t *testing.T) {
	dq := newDiskQueue(100)
	dq.pushStored(t, 1, 50, 9) // weight 10 each
	// Only what the checkpoint holds may go: up to seq 40 here.
	moved := dq.q.spill(func(d *delivery) bool { return d.seq <= 40 })
	if moved != 40 || dq.q.Len() != 50 || dq.q.Bytes() != 500 {
		t.Fatalf("spill moved %d; Len %d Bytes %d, want 40, 50, 500", moved, dq.q.Len(), dq.q.Bytes())
	}
	if n, b := dq.q.Spilled(); n != 40 || b != 400 {
		t.Fatalf("Spilled = %d, %d; want 40, 400", n, b)
	}
	if !dq.q.headOnDisk() {
		t.Fatal("head not on disk after spilling it")
	}
	seqs := popAll(t, &dq.q)
	if fmt.Sprint(seqs) != fmt.Sprint(seqRange(1, 50)) {
		t.Fatalf("order after reading back: %v", seqs)
	}
	if want := (40 + readBatch - 1) / readBatch; dq.reads != want {
		t.Fatalf("%d reads, want %d (batches of %d)", dq.reads, want, readBatch)
	}
}

func seqRange(lo, hi uint64) []uint64 {
	var s []uint64
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

func TestQueueRecoveredPartCountsBytesWhenReadBack(t *testing.T) {
	dq := newDiskQueue(100)
	for seq := uint64(3); seq <= 12; seq++ {
		dq.disk = append(dq.disk, del(seq, 99))
	}
	dq.q.disk = spilled{n: 10, from: 3, unknown: 10} // as Restore leaves it
	later := del(13, 99)
	dq.disk = append(dq.disk, later)
	dq.q.Push(later)
	if dq.q.Len() != 11 || dq.q.Bytes() != 100 {
		t.Fatalf("Len %d Bytes %d, want 11, 100 (recovered sizes unknown)", dq.q.Len(), dq.q.Bytes())
	}
	if !dq.q.readBack(4) || dq.q.Bytes() != 500 {
		t.Fatalf("after reading 4 back: Bytes %d, want 500", dq.q.Bytes())
	}
	// Front goes back to disk behind unknown ones: it joins them, uncounted.
	if moved := dq.q.spill(func(*delivery) bool { return false }); moved != 4 || dq.q.Bytes() != 100 {
		t.Fatalf("respill moved %d, Bytes %d; want 4, 100", moved, dq.q.Bytes())
	}
	if seqs := popAll(t, &dq.q); fmt.Sprint(seqs) != fmt.Sprint(seqRange(3, 13)) {
		t.Fatalf("order: %v", seqs)
	}
}

func TestQueueReadFailureKeepsDeliveriesOnDisk(t *testing.T) {
	dq := newDiskQueue(10)
	dq.pushStored(t, 1, 1, 5)
	dq.q.spill(func(*delivery) bool { return true })
	dq.fail = errors.New("disk gone")
	if _, ok := dq.q.Peek(); ok {
		t.Fatal("Peek succeeded while the store fails")
	}
	if dq.q.Len() != 1 {
		t.Fatalf("Len %d after a failed read, want 1", dq.q.Len())
	}
	dq.fail = nil
	if got, ok := dq.q.Pop(); !ok || got.seq != 1 {
		t.Fatalf("Pop after the store came back: %v %v", got, ok)
	}
}

func TestQueueSkipsEntriesWhoseBodyIsLost(t *testing.T) {
	dq := newDiskQueue(10)
	dq.pushStored(t, 1, 4, 9)
	dq.q.spill(func(*delivery) bool { return true })
	lost := *dq.disk[1]
	lost.msg = nil
	dq.disk[1] = &lost
	if seqs := fmt.Sprint(popAll(t, &dq.q)); seqs != "[1 3 4]" {
		t.Fatalf("read back %s, want [1 3 4]", seqs)
	}
}

func TestQueueSetCapDropsOldestFromDisk(t *testing.T) {
	dq := newDiskQueue(10)
	dq.pushStored(t, 1, 10, 9)
	dq.q.spill(func(d *delivery) bool { return d.seq <= 6 })
	dropped := dq.q.SetCap(3)
	var seqs []uint64
	for _, d := range dropped {
		seqs = append(seqs, d.seq)
	}
	if fmt.Sprint(seqs) != "[1 2 3 4 5 6 7]" || dq.q.Cap() != 3 || dq.q.Bytes() != 30 {
		t.Fatalf("dropped %v, Cap %d, Bytes %d", seqs, dq.q.Cap(), dq.q.Bytes())
	}
	if rest := fmt.Sprint(popAll(t, &dq.q)); rest != "[8 9 10]" {
		t.Fatalf("kept %s", rest)
	}
}

func TestQueueClearForgetsDisk(t *testing.T) {
	dq := newDiskQueue(10)
	dq.pushStored(t, 1, 2, 9)
	dq.q.spill(func(d *delivery) bool { return d.seq == 1 })
	dq.q.Clear()
	if dq.q.Len() != 0 || dq.q.Bytes() != 0 || dq.q.headOnDisk() {
		t.Fatalf("after Clear: Len %d Bytes %d", dq.q.Len(), dq.q.Bytes())
	}
	if _, ok := dq.q.Pop(); ok || dq.reads != 0 {
		t.Fatalf("Pop after Clear found something (reads %d)", dq.reads)
	}
}

// A read planned under the lock and done without it is applied only if the disk part is as it
// was planned: if something else read it back, dropped it or spilled more in front of it in
// the meantime, the result is dropped and nothing is lost, duplicated or reordered.
func TestQueueApplyReadAfterChange(t *testing.T) {
	onDisk := func(*delivery) bool { return true }
	dq := newDiskQueue(100)
	dq.pushStored(t, 1, 30, 9)
	dq.q.spill(onDisk)

	// Unchanged: applied.
	r := dq.q.planRead(10)
	ds, consumed, next, _ := dq.q.read(r.from, r.max)
	if !dq.q.applyRead(r, ds, consumed, next) || len(dq.q.front) != 10 {
		t.Fatalf("a read of an unchanged disk part was not applied: front %d", len(dq.q.front))
	}

	// Read back meanwhile (front taken by Pop, which read the next batch under the lock):
	// a stale read of the same seqs must not be applied again.
	dq.q.spill(onDisk) // front back to disk: seqs 1-30 on disk again
	r = dq.q.planRead(10)
	ds, consumed, next, _ = dq.q.read(r.from, r.max)
	if d, _ := dq.q.Pop(); d.seq != 1 {
		t.Fatalf("popped %d, want 1", d.seq)
	}
	dq.q.applyRead(r, ds, consumed, next)
	if seqs := popAll(t, &dq.q); fmt.Sprint(seqs) != fmt.Sprint(seqRange(2, 30)) {
		t.Fatalf("after a stale read: %v", seqs)
	}

	// Cleared meanwhile (the session ended): nothing comes back.
	dq = newDiskQueue(100)
	dq.pushStored(t, 1, 30, 9)
	dq.q.spill(onDisk)
	r = dq.q.planRead(10)
	ds, consumed, next, _ = dq.q.read(r.from, r.max)
	dq.q.Clear()
	if dq.q.applyRead(r, ds, consumed, next) || dq.q.Len() != 0 || dq.q.Bytes() != 0 {
		t.Fatalf("a read applied to a cleared queue: Len %d Bytes %d", dq.q.Len(), dq.q.Bytes())
	}
}

// readAll brings the whole disk part back in order when the store's reads come back short
// (ReadQueued stops at a byte bound) and when front already holds some of it.
func TestReadAllShortReads(t *testing.T) {
	for _, peekFirst := range []bool{false, true} {
		dq := newDiskQueue(100)
		dq.pushStored(t, 1, 40, 9)
		dq.q.spill(func(*delivery) bool { return true })
		inner := dq.q.read
		dq.q.read = func(from uint64, max int) ([]*delivery, int, uint64, error) {
			if dq.reads >= 1000 {
				return nil, 0, 0, errors.New("reading for ever")
			}
			return inner(from, min(max, 3)) // as ReadQueued does for large messages
		}
		if peekFirst {
			if d, ok := dq.q.Peek(); !ok || d.seq != 1 {
				t.Fatalf("Peek: %v, %v", d, ok)
			}
		}
		if !dq.q.readAll() {
			t.Fatalf("peek first %v: readAll failed after %d reads, %d still on disk", peekFirst, dq.reads, dq.q.disk.n)
		}
		if n, _ := dq.q.Spilled(); n != 0 || len(dq.q.front) != 40 || dq.reads != 14 {
			t.Fatalf("peek first %v: %d on disk, %d in front after %d reads; want 0, 40, 14", peekFirst, n, len(dq.q.front), dq.reads)
		}
		for i := range 40 {
			if d, _ := dq.q.Pop(); d == nil || d.seq != uint64(i+1) {
				t.Fatalf("peek first %v: delivery %d is %v", peekFirst, i, d)
			}
		}
	}
}
