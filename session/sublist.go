package session

import "edgebroker/session/topic"

// subList is a session's own record of its subscriptions (the topic tree holds them for
// routing). Most sessions have one or a few: a slice of them costs a few dozen bytes each,
// where a map's smallest table costs about a kilobyte per session. Past indexAbove
// subscriptions an index keeps lookups constant-time. Not safe for concurrent use: Session.mu.
type subList struct {
	subs  []topic.Sub
	index map[subKey]int // position in subs; nil until there are more than indexAbove
}

// indexAbove is the number of subscriptions up to which subList scans instead of indexing.
const indexAbove = 16

// subKey identifies one subscription of a session.
type subKey struct{ group, filter string }

func keyOf(s *topic.Sub) subKey { return subKey{s.Group, s.Filter} }

// Len returns the number of subscriptions.
func (l *subList) Len() int { return len(l.subs) }

// All returns the subscriptions, in no particular order. The slice is the list's own: do not
// keep it past a change.
func (l *subList) All() []topic.Sub { return l.subs }

// find returns the position of the subscription (group, filter), -1 if there is none.
func (l *subList) find(k subKey) int {
	if l.index != nil {
		if i, ok := l.index[k]; ok {
			return i
		}
		return -1
	}
	for i := range l.subs {
		if l.subs[i].Filter == k.filter && l.subs[i].Group == k.group {
			return i
		}
	}
	return -1
}

// Has reports whether there is a subscription to filter in group ("" if not shared).
func (l *subList) Has(group, filter string) bool { return l.find(subKey{group, filter}) >= 0 }

// Put adds sub, replacing the subscription with the same group and filter.
func (l *subList) Put(sub topic.Sub) {
	k := keyOf(&sub)
	if i := l.find(k); i >= 0 {
		l.subs[i] = sub
		return
	}
	l.subs = append(l.subs, sub)
	switch {
	case l.index != nil:
		l.index[k] = len(l.subs) - 1
	case len(l.subs) > indexAbove:
		l.index = make(map[subKey]int, len(l.subs))
		for i := range l.subs {
			l.index[keyOf(&l.subs[i])] = i
		}
	}
}

// Remove removes the subscription to filter in group, if there is one.
func (l *subList) Remove(group, filter string) {
	k := subKey{group, filter}
	i := l.find(k)
	if i < 0 {
		return
	}
	last := len(l.subs) - 1
	l.subs[i] = l.subs[last]
	l.subs[last] = topic.Sub{}
	l.subs = l.subs[:last]
	if l.index != nil {
		delete(l.index, k)
		if i < last {
			l.index[keyOf(&l.subs[i])] = i
		}
	}
}

// Clear removes every subscription.
func (l *subList) Clear() { *l = subList{} }
