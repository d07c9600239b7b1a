package topic

// keyer is an element of a keyedSet: a Sub is keyed by its client, a *Group by
// its share name, a subKey by itself.
type keyer[K comparable] interface{ key() K }

// indexAbove is the size above which a keyedSet keeps a map from key to slot.
// Most filters have one or a few subscribers, and most clients a few
// subscriptions; for them a scan of the slice is as fast as a map and saves
// the map's memory.
const indexAbove = 8

// keyedSet is a set of values with distinct keys, stored in a slice so that
// Match can append a node's subscriptions in one copy. put and remove are O(1)
// (amortized) at any size; the order of items is not kept.
type keyedSet[K comparable, T keyer[K]] struct {
	items []T
	index map[K]int // nil while len(items) <= indexAbove
}

// find returns the slot of key, or -1.
func (s *keyedSet[K, T]) find(key K) int {
	if s.index != nil {
		if i, ok := s.index[key]; ok {
			return i
		}
		return -1
	}
	for i := range s.items {
		if s.items[i].key() == key {
			return i
		}
	}
	return -1
}

// get returns the value with key.
func (s *keyedSet[K, T]) get(key K) (T, bool) {
	if i := s.find(key); i >= 0 {
		return s.items[i], true
	}
	var zero T
	return zero, false
}

// put adds v or replaces the value with the same key, reporting whether one
// was replaced.
func (s *keyedSet[K, T]) put(v T) (replaced bool) {
	k := v.key()
	if i := s.find(k); i >= 0 {
		s.items[i] = v
		return true
	}
	s.items = append(s.items, v)
	switch {
	case s.index != nil:
		s.index[k] = len(s.items) - 1
	case len(s.items) > indexAbove:
		s.index = make(map[K]int, len(s.items))
		for i := range s.items {
			s.index[s.items[i].key()] = i
		}
	}
	return false
}

// remove deletes the value with key, reporting whether there was one. The
// last item moves into the freed slot.
func (s *keyedSet[K, T]) remove(key K) bool {
	i := s.find(key)
	if i < 0 {
		return false
	}
	last := len(s.items) - 1
	if i != last {
		s.items[i] = s.items[last]
		if s.index != nil {
			s.index[s.items[i].key()] = i
		}
	}
	var zero T
	s.items[last] = zero // drop the reference for the garbage collector
	s.items = s.items[:last]
	if s.index != nil {
		delete(s.index, key)
		if len(s.items) <= indexAbove/2 {
			s.index = nil
		}
	}
	if len(s.items) == 0 {
		s.items = nil
	}
	return true
}
