package store

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// testNow is the clock of every test store: expiry is judged against it.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testOptions returns options for a store whose checkpoint.db is in a fresh temporary directory
// and whose log is on fsys (a MemFS or a FaultFS over one), with small segments and padding
// and no background checkpoints unless a test asks.
func testOptions(t testing.TB, fsys wal.FS) Options {
	o := DefaultOptions(t.TempDir())
	o.WAL.FS = fsys
	o.WAL.SegmentSize = 512
	o.WAL.PadTo = 64 // padding frames in the log, a few per segment
	o.CheckpointBytes = 1 << 40
	o.CheckpointEvery = time.Hour
	o.CheckpointOps = 5 // checkpoints commit in several transactions
	o.Now = func() time.Time { return testNow }
	return o
}

func mustOpen(t testing.TB, o Options) (*Store, *State) {
	t.Helper()
	s, st, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, st
}

func mustSync(t testing.TB, s *Store, b *Batch) {
	t.Helper()
	if err := s.Sync(b); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	b.Reset()
}

func newMem() *waltest.MemFS { return waltest.NewMemFS() }

// dump renders a State deterministically, message bodies by value, so that two States compare
// as strings and a difference shows up in a diff.
func dump(st *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "next message id %d\n", st.NextMessageID)
	for _, id := range slices.Sorted(maps.Keys(st.Sessions)) {
		ss := st.Sessions[id]
		s := ss.Session
		will := s.Will
		s.Will = nil
		fmt.Fprintf(&b, "session %+v will %s next %d\n", s, dumpMsg(will), ss.NextSeq)
		subs := slices.Clone(ss.Subs)
		slices.SortFunc(subs, func(x, y Sub) int {
			return cmp.Or(cmp.Compare(x.Group, y.Group), cmp.Compare(x.Filter, y.Filter))
		})
		for _, sub := range subs {
			fmt.Fprintf(&b, "  sub %+v\n", sub)
		}
		for _, e := range ss.Entries {
			m := e.Msg
			e.Msg = nil
			if len(e.SubIDs) == 0 {
				e.SubIDs = nil
			}
			fmt.Fprintf(&b, "  entry %+v %s\n", e, dumpMsg(m))
		}
		fmt.Fprintf(&b, "  inqos2 %v\n", slices.Sorted(slices.Values(ss.InQoS2)))
	}
	for _, topic := range slices.Sorted(maps.Keys(st.Retained)) {
		fmt.Fprintf(&b, "retained %q %s\n", topic, dumpMsg(st.Retained[topic]))
	}
	return b.String()
}

func dumpMsg(m *Message) string {
	if m == nil {
		return "<nil>"
	}
	c := *m
	if len(c.Payload) == 0 {
		c.Payload = nil
	}
	if len(c.CorrelationData) == 0 {
		c.CorrelationData = nil
	}
	if len(c.User) == 0 {
		c.User = nil
	}
	payload := c.Payload
	c.Payload = nil
	return fmt.Sprintf("%+v payload %q", c, payload)
}

// model is a second, obviously correct implementation of the operations, in memory: the store
// must recover exactly what the model holds after some prefix of the committed batches.
type model struct {
	sessions map[string]*SessionState
	retained map[string]uint64
	msgs     map[uint64]*Message
	maxID    uint64
}

func newModel() *model {
	return &model{sessions: map[string]*SessionState{}, retained: map[string]uint64{}, msgs: map[uint64]*Message{}}
}

// sess returns the session id. Changes to a session that does not exist go to a scratch one:
// the store drops such orphans at Open.
func (m *model) sess(id string) *SessionState {
	if ss := m.sessions[id]; ss != nil {
		return ss
	}
	return &SessionState{}
}

func (m *model) PutSession(s *Session) {
	c := *s
	if s.Will != nil {
		w := *s.Will
		c.Will = &w
	}
	if m.sessions[s.ClientID] == nil {
		m.sessions[s.ClientID] = &SessionState{NextSeq: 1}
	}
	m.sessions[s.ClientID].Session = c
}
func (m *model) DeleteSession(id string) { delete(m.sessions, id) }
func (m *model) Disconnected(id string, at time.Time) {
	m.sess(id).Session.DisconnectedAt = at.UnixNano()
}
func (m *model) Connected(id string) { m.sess(id).Session.DisconnectedAt = 0 }
func (m *model) PutSub(id string, s Sub) {
	m.DeleteSub(id, s.Group, s.Filter)
	ss := m.sess(id)
	ss.Subs = append(ss.Subs, s)
}
func (m *model) DeleteSub(id, group, filter string) {
	ss := m.sess(id)
	ss.Subs = slices.DeleteFunc(ss.Subs, func(s Sub) bool { return s.Group == group && s.Filter == filter })
}
func (m *model) PutMessage(msg *Message) {
	c := *msg
	m.msgs[msg.ID] = &c
	m.maxID = max(m.maxID, msg.ID)
}
func (m *model) PutEntry(id string, e *Entry) {
	ss := m.sess(id)
	m.DeleteEntry(id, e.Seq)
	c := *e
	c.Msg = m.msgs[e.MsgID]
	i, _ := slices.BinarySearchFunc(ss.Entries, e.Seq, func(x Entry, seq uint64) int { return cmp.Compare(x.Seq, seq) })
	ss.Entries = slices.Insert(ss.Entries, i, c)
	ss.NextSeq = max(ss.NextSeq, e.Seq+1)
}
func (m *model) ReleaseEntry(id string, seq uint64, pid uint16) {
	ss := m.sess(id)
	for i := range ss.Entries {
		if e := &ss.Entries[i]; e.Seq == seq {
			e.PacketID, e.Released = pid, true
		}
	}
}
func (m *model) SetPacketID(id string, seq uint64, pid uint16) {
	ss := m.sess(id)
	for i := range ss.Entries {
		if e := &ss.Entries[i]; e.Seq == seq {
			e.PacketID = pid
		}
	}
}
func (m *model) DeleteEntry(id string, seq uint64) {
	ss := m.sess(id)
	ss.Entries = slices.DeleteFunc(ss.Entries, func(e Entry) bool { return e.Seq == seq })
}
func (m *model) PutInQoS2(id string, pid uint16) {
	m.DeleteInQoS2(id, pid)
	ss := m.sess(id)
	ss.InQoS2 = append(ss.InQoS2, pid)
}
func (m *model) DeleteInQoS2(id string, pid uint16) {
	ss := m.sess(id)
	ss.InQoS2 = slices.DeleteFunc(ss.InQoS2, func(p uint16) bool { return p == pid })
}
func (m *model) PutRetained(topic string, id uint64) { m.retained[topic] = id }
func (m *model) DeleteRetained(topic string)         { delete(m.retained, topic) }

// state is what Open should return for the model, at testNow.
func (m *model) state() *State {
	st := &State{Sessions: map[string]*SessionState{}, Retained: map[string]*Message{}, NextMessageID: m.maxID + 1}
	for id, ss := range m.sessions {
		c := *ss
		if c.Session.DisconnectedAt == 0 {
			c.Session.DisconnectedAt = testNow.UnixNano()
		}
		st.Sessions[id] = &c
	}
	for topic, id := range m.retained {
		st.Retained[topic] = m.msgs[id]
	}
	return st
}

// ops is the set of operations both Batch and model implement; rec drives both at once.
type ops interface {
	PutSession(*Session)
	DeleteSession(string)
	Disconnected(string, time.Time)
	Connected(string)
	PutSub(string, Sub)
	DeleteSub(string, string, string)
	PutMessage(*Message)
	PutEntry(string, *Entry)
	ReleaseEntry(string, uint64, uint16)
	SetPacketID(string, uint64, uint16)
	DeleteEntry(string, uint64)
	PutInQoS2(string, uint16)
	DeleteInQoS2(string, uint16)
	PutRetained(string, uint64)
	DeleteRetained(string)
}

var (
	_ ops = (*Batch)(nil)
	_ ops = (*model)(nil)
)

// newRand returns a random source with a logged seed.
func newRand(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, 7))
}

// withQueued reads every session's queued entries back with ReadQueued, a few at a time, and
// puts them into its Entries in Seq order, so that st holds what the store holds (Open leaves
// queued entries on disk). It fails the test if the store disagrees with the counts of Open.
func withQueued(t testing.TB, s *Store, st *State) *State {
	t.Helper()
	for id, ss := range st.Sessions {
		from, n := ss.QueuedFrom, 0
		for n < ss.Queued {
			es, err := s.ReadQueued(id, from, 3)
			if err != nil {
				t.Fatalf("ReadQueued(%q, %d): %v", id, from, err)
			}
			if len(es) == 0 {
				t.Fatalf("session %q: read %d queued entries, Open counted %d", id, n, ss.Queued)
			}
			for _, e := range es {
				if e.Msg == nil || e.Msg.ID != e.MsgID {
					t.Fatalf("session %q entry %d: message %d read back as %+v", id, e.Seq, e.MsgID, e.Msg)
				}
			}
			ss.Entries = append(ss.Entries, es...)
			n += len(es)
			from = es[len(es)-1].Seq + 1
		}
		if es, _ := s.ReadQueued(id, from, 1); len(es) != 0 {
			t.Fatalf("session %q: more queued entries than the %d Open counted: %+v", id, ss.Queued, es[0])
		}
		slices.SortFunc(ss.Entries, func(x, y Entry) int { return cmp.Compare(x.Seq, y.Seq) })
		ss.Queued, ss.QueuedFrom = 0, 0
	}
	return st
}
