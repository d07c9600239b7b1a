package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is what Open recovered: every persistent session and retained message.
type State struct {
	Sessions      map[string]*SessionState // by client id
	Retained      map[string]*Message      // by topic
	NextMessageID uint64                   // the first ID Store.NextMessageID returns
}

// SessionState is one recovered session.
type SessionState struct {
	Session Session
	Subs    []Sub
	// Entries are the messages in flight (PacketID set) in ascending Seq. Msg is resolved: every
	// entry and retained topic of the State that refers to one message ID shares one *Message.
	// An entry with Released set is awaiting PUBCOMP: resend PUBREL with its PacketID.
	Entries []Entry
	// Queued counts the entries waiting in the queue, which stay on disk: Store.ReadQueued
	// reads them from QueuedFrom on, in order, when they are to be delivered. Recovery does not
	// read their bodies, so an expired one is dropped on delivery, not here.
	Queued     int
	QueuedFrom uint64
	InQoS2     []uint16 // inbound QoS 2 packet ids awaiting PUBREL, ascending
	NextSeq    uint64   // one more than the highest Seq this session ever used
}

// loader reads the state out of checkpoint.db and collects what must be dropped.
type loader struct {
	a    *applier
	now  int64
	log  *slog.Logger
	msgs map[uint64]*Message
	// purge holds the operations that delete expired or dangling data, and record the
	// disconnection of sessions connected at the stop, applied after the scan.
	purge []op
}

// load reads the state from the buckets of a (after the log is applied), drops expired
// sessions, expired messages in flight or retained and data that refers to nothing, and
// deletes them through a, in the same transaction. Queued entries are only counted: their
// bodies are not read (an expired one goes when the engine reads it back).
func load(a *applier, now time.Time, log *slog.Logger) (*State, error) {
	l := &loader{a: a, now: now.UnixNano(), log: log, msgs: map[uint64]*Message{}}
	st := &State{Sessions: map[string]*SessionState{}, Retained: map[string]*Message{}}
	err := a.sessions.ForEach(func(k, v []byte) error {
		ss, err := l.session(k, v)
		if ss != nil {
			st.Sessions[ss.Session.ClientID] = ss
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, parent := range []*bolt.Bucket{a.subs, a.entries, a.inqos2} {
		err := parent.ForEach(func(k, v []byte) error {
			if v == nil && a.sessions.Get(k) == nil {
				l.drop(opDeleteSession, string(k), 0, "data of a session that does not exist")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err = a.retain.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: retained %q: value of %d bytes", ErrDamaged, k, len(v))
		}
		m, err := l.message(binary.BigEndian.Uint64(v))
		switch {
		case err != nil:
			return err
		case m == nil:
			l.drop(opDeleteRetained, string(k), 0, "retained message missing")
		case l.expired(m):
			l.drop(opDeleteRetained, string(k), 0, "")
		default:
			st.Retained[string(k)] = m
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range l.purge {
		if err := a.apply(&l.purge[i]); err != nil {
			return nil, err
		}
	}
	st.NextMessageID = a.maxMsgID + 1
	return st, nil
}

// drop schedules the deletion of a session, an entry or a retained topic; why, if set, is
// logged (expiry is routine and is not).
func (l *loader) drop(k opKind, key string, seq uint64, why string) {
	if why != "" {
		l.log.Warn("store: dropping "+why, "key", key, "seq", seq)
	}
	l.purge = append(l.purge, op{kind: k, key: key, seq: seq})
}

func (l *loader) expired(m *Message) bool { return m.Expires != 0 && m.Expires <= l.now }

// session loads one session, or returns nil if it has expired.
func (l *loader) session(k, v []byte) (*SessionState, error) {
	ss := &SessionState{NextSeq: 1}
	s := &ss.Session
	if _, err := s.UnmarshalMsg(v); err != nil || s.ClientID != string(k) {
		return nil, fmt.Errorf("%w: session %q: %v", ErrDamaged, k, err)
	}
	if s.DisconnectedAt != 0 && s.Expiry > 0 && s.DisconnectedAt+s.Expiry <= l.now {
		l.drop(opDeleteSession, s.ClientID, 0, "")
		return nil, nil
	}
	if s.DisconnectedAt == 0 {
		// It was connected when the broker stopped: disconnected now, and stored so, or each
		// restart before its client returns would start its expiry clock again.
		s.DisconnectedAt = l.now
		l.purge = append(l.purge, op{kind: opDisconnected, key: s.ClientID, at: l.now})
	}
	if w := s.Will; w != nil && w.Expires < 0 {
		w.Expires = s.DisconnectedAt - w.Expires // relative to the disconnection
	}
	if b := l.a.subs.Bucket(k); b != nil {
		err := b.ForEach(func(_, v []byte) error {
			var sub Sub
			if _, err := sub.UnmarshalMsg(v); err != nil {
				return fmt.Errorf("%w: subscription of %q: %w", ErrDamaged, k, err)
			}
			ss.Subs = append(ss.Subs, sub)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if b := l.a.inqos2.Bucket(k); b != nil {
		err := b.ForEach(func(id, _ []byte) error {
			if len(id) != 2 {
				return fmt.Errorf("%w: inbound QoS 2 id of %q: %d bytes", ErrDamaged, k, len(id))
			}
			ss.InQoS2 = append(ss.InQoS2, binary.BigEndian.Uint16(id))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if b := l.a.entries.Bucket(k); b != nil {
		ss.NextSeq = max(1, getUint64(b, keyNextSeq))
		if err := b.ForEach(func(k, v []byte) error { return l.entry(ss, k, v) }); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// entry loads one queue entry of ss.
func (l *loader) entry(ss *SessionState, k, v []byte) error {
	if len(k) != 8 {
		return nil // keyNextSeq
	}
	var e Entry
	if _, err := e.UnmarshalMsg(v); err != nil || e.Seq != binary.BigEndian.Uint64(k) {
		return fmt.Errorf("%w: entry %x of %q: %v", ErrDamaged, k, ss.Session.ClientID, err)
	}
	ss.NextSeq = max(ss.NextSeq, e.Seq+1)
	if e.PacketID == 0 {
		if ss.Queued == 0 {
			ss.QueuedFrom = e.Seq
		}
		ss.Queued++
		return nil
	}
	m, err := l.message(e.MsgID)
	switch {
	case err != nil:
		return err
	case m == nil:
		l.drop(opDeleteEntry, ss.Session.ClientID, e.Seq, "an entry whose message is missing")
	case l.expired(m) && !e.Released: // a released entry still owes its PUBREL
		l.drop(opDeleteEntry, ss.Session.ClientID, e.Seq, "")
	default:
		e.Msg = m
		ss.Entries = append(ss.Entries, e)
	}
	return nil
}

// message returns the stored message id, nil if there is none (or it is damaged, which is
// reported). An error is one of reading a body file, which may pass: the body is not dropped.
func (l *loader) message(id uint64) (*Message, error) {
	if m, ok := l.msgs[id]; ok {
		return m, nil
	}
	m, err := decodeBody(l.a.spill, id, l.a.msgs.Get(seqKey(id)))
	if err != nil && !errors.Is(err, errBodyDamaged) {
		return nil, fmt.Errorf("store: message %d: %w", id, err)
	}
	if err != nil || (m != nil && m.ID != id) {
		l.log.Warn("store: message body damaged", "id", id, "err", err)
		m = nil
	}
	l.msgs[id] = m
	return m, nil
}
