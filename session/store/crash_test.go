package store

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"edgebroker/wal/waltest"
)

var errPowerCut = errors.New("power cut")

// history is what a workload was told: the model's state after each committed batch (snaps[0]
// is the empty store) and the last batch a Wait or Sync reported durable.
type history struct {
	snaps   []string
	durable int
}

// driver runs a workload against a store and the model side by side.
type driver struct {
	s   *Store
	m   *model
	b   Batch
	h   *history
	seq map[string]uint64
	rng *rand.Rand // nil for the scripted workload
}

func newDriver(s *Store, rng *rand.Rand) *driver {
	m := newModel()
	return &driver{s: s, m: m, h: &history{snaps: []string{dump(m.state())}}, seq: map[string]uint64{}, rng: rng}
}

// batch commits f as one batch and, if wait, waits for it; f also runs on the model once the
// commit succeeded.
func (d *driver) batch(wait bool, f func(ops)) error {
	f(&d.b)
	p, err := d.s.Commit(&d.b)
	d.b.Reset()
	if err != nil {
		return err
	}
	f(d.m)
	d.h.snaps = append(d.h.snaps, dump(d.m.state()))
	if !wait {
		return nil
	}
	if err := d.s.Wait(p); err != nil {
		return err
	}
	d.h.durable = len(d.h.snaps) - 1
	return nil
}

var clients = []string{"c0", "c1", "c2", "c3"}

// publish stores one message queued for the given clients.
func (d *driver) publish(wait bool, to ...string) error {
	id := d.s.NextMessageID()
	m := &Message{ID: id, Topic: fmt.Sprint("t/", id), QoS: 2, Payload: []byte(strings.Repeat("p", int(id*37%150)))}
	to = slices.DeleteFunc(to, func(c string) bool { return d.m.sessions[c] == nil }) // ended
	seqs := make([]uint64, len(to))
	for i, c := range to {
		d.seq[c]++
		seqs[i] = d.seq[c]
	}
	return d.batch(wait, func(o ops) {
		o.PutMessage(m)
		for i, c := range to {
			o.PutEntry(c, &Entry{Seq: seqs[i], MsgID: id, QoS: byte(1 + i%2), SubIDs: []uint32{uint32(i)}})
		}
	})
}

// oldest returns the seq of the oldest entry of client c, released or not, or 0.
func (d *driver) oldest(c string, released bool) uint64 {
	if ss := d.m.sessions[c]; ss != nil {
		for _, e := range ss.Entries {
			if e.Released == released {
				return e.Seq
			}
		}
	}
	return 0
}

func (d *driver) setup() error {
	return d.batch(true, func(o ops) {
		for i, c := range clients {
			s := &Session{ClientID: c, Version: byte(3 + i%3), Expiry: int64(i) * 3600e9}
			if i == 1 {
				s.Will = &Message{Topic: "will/c1", Payload: []byte("bye"), QoS: 1}
			}
			o.PutSession(s)
			o.PutSub(c, Sub{Filter: "t/#", QoS: 2, SubID: uint32(i)})
			o.PutSub(c, Sub{Filter: "x/" + c, Group: "g", QoS: 1})
		}
	})
}

// scripted is the fixed workload: messages to several sessions, acknowledgements, QoS 2
// releases, retained messages, inbound QoS 2 ids, subscription changes, disconnects, a session
// ended, and checkpoints, over many small segments.
func (d *driver) scripted() error {
	if err := d.setup(); err != nil {
		return err
	}
	for i := range 24 {
		steps := []func() error{
			func() error { return d.publish(i%3 != 0, clients[i%4], clients[(i+1)%4]) },
		}
		if i%4 == 1 {
			steps = append(steps, func() error {
				seq := d.oldest("c1", false)
				return d.batch(true, func(o ops) { o.ReleaseEntry("c1", seq, uint16(100+i)) })
			})
		}
		if i%4 == 3 {
			steps = append(steps, func() error {
				a, b := d.oldest("c2", false), d.oldest("c2", true)
				return d.batch(i%8 == 3, func(o ops) { o.SetPacketID("c2", a, uint16(200+i)); o.SetPacketID("c2", b, uint16(300+i)) })
			})
		}
		if i%4 == 2 {
			steps = append(steps, func() error {
				a, b := d.oldest("c0", false), d.oldest("c1", true)
				return d.batch(i%8 == 2, func(o ops) { o.DeleteEntry("c0", a); o.DeleteEntry("c1", b) })
			})
		}
		switch i % 5 {
		case 0:
			id := d.s.NextMessageID()
			steps = append(steps, func() error {
				return d.batch(true, func(o ops) {
					o.PutMessage(&Message{ID: id, Topic: fmt.Sprint("r/", i%2), Retain: true, Payload: []byte("retained")})
					o.PutRetained(fmt.Sprint("r/", i%2), id)
				})
			})
		case 3:
			steps = append(steps, func() error { return d.batch(true, func(o ops) { o.DeleteRetained("r/0") }) })
		}
		switch i % 6 {
		case 0:
			steps = append(steps, func() error { return d.batch(true, func(o ops) { o.PutInQoS2("c3", uint16(i)) }) })
		case 3:
			steps = append(steps, func() error { return d.batch(false, func(o ops) { o.DeleteInQoS2("c3", uint16(i-3)) }) })
		}
		switch i {
		case 8, 17:
			steps = append(steps, d.s.Checkpoint)
		case 12:
			steps = append(steps, func() error {
				return d.batch(true, func(o ops) { o.Disconnected("c0", testNow); o.DeleteSub("c0", "g", "x/c0") })
			})
		case 15:
			steps = append(steps, func() error { return d.batch(true, func(o ops) { o.Connected("c0") }) })
		case 20:
			steps = append(steps, func() error { return d.batch(true, func(o ops) { o.DeleteSession("c3") }) })
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
	return nil
}

// random is a workload of 30 random steps drawn from the same kinds as scripted.
func (d *driver) random() error {
	if err := d.setup(); err != nil {
		return err
	}
	r := d.rng
	for range 30 {
		c := clients[r.IntN(len(clients))]
		wait := r.IntN(3) != 0
		var err error
		switch k := r.IntN(10); {
		case k < 4:
			err = d.publish(wait, c, clients[r.IntN(len(clients))])
			if c == clients[0] {
				err = errors.Join(err, d.publish(wait, "c1"))
			}
		case k == 4 && r.IntN(2) == 0:
			seq, pid := d.oldest(c, false), uint16(r.Uint32())
			err = d.batch(wait, func(o ops) { o.ReleaseEntry(c, seq, pid) })
		case k == 4:
			a, b, pid := d.oldest(c, false), d.oldest(c, true), uint16(r.Uint32())
			err = d.batch(wait, func(o ops) { o.SetPacketID(c, a, pid); o.SetPacketID(c, b, pid+1) })
		case k == 5:
			seq, rel := d.oldest(c, false), d.oldest(c, true)
			err = d.batch(wait, func(o ops) { o.DeleteEntry(c, seq); o.DeleteEntry(c, rel) })
		case k == 6:
			id := d.s.NextMessageID()
			err = d.batch(wait, func(o ops) {
				o.PutMessage(&Message{ID: id, Topic: "r/" + c, Payload: []byte(c)})
				o.PutRetained("r/"+c, id)
			})
		case k == 7:
			pid := uint16(r.IntN(4))
			err = d.batch(wait, func(o ops) { o.PutInQoS2(c, pid); o.DeleteInQoS2(c, pid+1) })
		case k == 8:
			err = d.s.Checkpoint()
		default:
			err = d.batch(wait, func(o ops) {
				o.DeleteSession(c)
				o.PutSession(&Session{ClientID: c, Version: 5})
				o.PutSub(c, Sub{Filter: "t/#", QoS: 1})
			})
			d.seq[c] = 0
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// run runs work on a fresh store (log on a MemFS cut at FS operation k, checkpoint.db in a temp
// directory), then cuts the power. It returns the options to reopen with (on the crashed
// MemFS) and whether the cut happened.
func run(t *testing.T, k int, rng *rand.Rand, work func(*driver) error, wrng *rand.Rand) (Options, *history, bool) {
	t.Helper()
	mem := waltest.NewMemFS()
	f := waltest.NewFaultFS(mem)
	if k > 0 {
		f.FailAt(k, errPowerCut, true)
	}
	o := testOptions(t, f)
	var h *history
	s, _, err := Open(o)
	if err == nil {
		d := newDriver(s, wrng)
		h = d.h
		werr := work(d)
		cerr := s.Close()
		if werr == nil && f.Fired() {
			werr = cerr
		}
		if werr != nil && !errors.Is(werr, errPowerCut) {
			t.Fatalf("cut at %d: workload error %v does not wrap the cut", k, werr)
		}
	} else if !errors.Is(err, errPowerCut) {
		t.Fatalf("cut at %d: Open: %v", k, err)
	} else {
		h = &history{snaps: []string{dump(newModel().state())}}
	}
	fired := f.Fired()
	mem.Crash(rng)
	o.WAL.FS = mem
	return o, h, fired
}

// verify opens the crashed store and checks it against h: the state is the model's after some
// prefix of the committed batches that includes every batch reported durable. The store then
// takes a commit, and a second Open finds that too.
func verify(t *testing.T, o Options, h *history) {
	t.Helper()
	s, st, err := Open(o)
	if err != nil {
		t.Fatalf("Open after the cut: %v", err)
	}
	assertShared(t, st)
	checkBodyAccounting(t, s)
	got := dump(withQueued(t, s, st))
	if !slices.Contains(h.snaps[h.durable:], got) {
		t.Fatalf("recovered state is no prefix from durable batch %d of %d; lines differing from the last durable state:\n%s",
			h.durable, len(h.snaps)-1, lineDiff(got, h.snaps[h.durable]))
	}
	var b Batch
	b.PutSession(&Session{ClientID: "after", Version: 5})
	if err := s.Sync(&b); err != nil {
		t.Fatalf("Sync after recovery: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close after recovery: %v", err)
	}
	s, st, err = Open(o)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	defer s.Close()
	if st.Sessions["after"] == nil {
		t.Fatal("the session committed after recovery is lost")
	}
}

// cloneDir copies the data directory's checkpoint.db to a new directory, and the log's MemFS,
// so that one crashed state can be recovered many times.
func cloneStore(t *testing.T, o Options) Options {
	t.Helper()
	c := o
	c.Dir = t.TempDir()
	src, err := os.Open(dbPath(o.Dir))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(dbPath(c.Dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	c.WAL.FS = o.WAL.FS.(*waltest.MemFS).Clone()
	// The directories of the log and the body files are named after Dir: copy them under
	// the new one.
	mem := c.WAL.FS.(*waltest.MemFS)
	for _, dir := range []string{walDir, bodyDirName} {
		if err := mem.CopyDir(filepath.Join(o.Dir, dir), filepath.Join(c.Dir, dir)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func opCount(t *testing.T, work func(*driver) error) int {
	t.Helper()
	f := waltest.NewFaultFS(waltest.NewMemFS())
	s := mustOpenWith(t, testOptions(t, f))
	if err := work(newDriver(s, rand.New(rand.NewPCG(1, 1)))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Count()
}

func mustOpenWith(t *testing.T, o Options) *Store {
	s, _ := mustOpen(t, o)
	return s
}

// TestPowerCutAtEveryOperation cuts the power at every file operation of the scripted
// workload in turn, and checks recovery; every 20th cut (every one without -short) is also
// recovered with a cut at every operation of the recovery itself.
func TestPowerCutAtEveryOperation(t *testing.T) {
	n := opCount(t, (*driver).scripted)
	rng := newRand(t)
	t.Logf("%d operations", n)
	for k := 1; k <= n+1; k++ {
		o, h, fired := run(t, k, rng, (*driver).scripted, nil)
		if !fired && k <= n/2 {
			t.Fatalf("cut at %d of %d never happened", k, n)
		}
		verify(t, cloneStore(t, o), h)
		if k%20 == 0 || !testing.Short() {
			crashDuringRecovery(t, o, h, rng)
		}
	}
}

// crashDuringRecovery cuts the power at every log operation of Open on copies of the crashed
// store, and checks that the next Open still recovers.
func crashDuringRecovery(t *testing.T, o Options, h *history, rng *rand.Rand) {
	t.Helper()
	for j := 1; ; j++ {
		c := cloneStore(t, o)
		mem := c.WAL.FS.(*waltest.MemFS)
		f := waltest.NewFaultFS(mem)
		f.FailAt(j, errPowerCut, true)
		c.WAL.FS = f
		if s, _, err := Open(c); err == nil {
			s.Close()
		} else if !errors.Is(err, errPowerCut) {
			t.Fatalf("Open with a cut at operation %d: %v", j, err)
		}
		if !f.Fired() {
			return
		}
		mem.Crash(rng)
		c.WAL.FS = mem
		verify(t, c, h)
	}
}

// randomOps bounds the cut point of TestPowerCutRandom: about the FS operations of a random
// workload.
const randomOps = 250

func TestPowerCutRandom(t *testing.T) {
	runs := 200
	if !testing.Short() {
		runs = 3000
	}
	rng := newRand(t)
	fired := 0
	for range runs {
		seed := rng.Uint64()
		o, h, ok := run(t, 1+rng.IntN(randomOps), rng, (*driver).random, rand.New(rand.NewPCG(seed, 3)))
		verify(t, o, h)
		if ok {
			fired++
		}
	}
	if fired < runs/2 {
		t.Fatalf("only %d of %d cuts happened: raise randomOps", fired, runs)
	}
}

// lineDiff returns the lines of got not in want (+) and of want not in got (-).
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var out []string
	for _, l := range g {
		if !slices.Contains(w, l) {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}
