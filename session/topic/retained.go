package topic

import "sync"

// Retained holds the retained message of each topic, as a trie of topic
// levels. It is safe for concurrent use: Get, Len, Match and Each take the
// read lock, Set and Delete the write lock.
type Retained[V any] struct {
	mu    sync.RWMutex
	root  rnode[V]
	len   int // topics with a value
	nodes int // nodes besides the root, for the pruning tests
}

// rnode is one topic level. topic is the full topic name when set is true.
type rnode[V any] struct {
	parent   *rnode[V]
	level    string
	children map[string]*rnode[V]
	topic    string
	value    V
	set      bool
}

// NewRetained returns an empty Retained.
func NewRetained[V any]() *Retained[V] {
	return &Retained[V]{}
}

// Set stores v as the retained message of topic and returns the one it replaced, if any.
// topic must be a topic name (no wildcards).
func (r *Retained[V]) Set(topic string, v V) (old V, replaced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	for t, more := topic, true; more; {
		var lvl string
		lvl, t, more = level(t)
		c := n.children[lvl]
		if c == nil {
			c = &rnode[V]{parent: n, level: lvl}
			if n.children == nil {
				n.children = make(map[string]*rnode[V], 1)
			}
			n.children[lvl] = c
			r.nodes++
		}
		n = c
	}
	if !n.set {
		r.len++
	}
	old, replaced = n.value, n.set
	n.topic, n.value, n.set = topic, v, true
	return old, replaced
}

// Delete removes the retained message of topic, returning it if there was one, and the nodes
// it leaves empty.
func (r *Retained[V]) Delete(topic string) (old V, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.find(topic)
	if n == nil || !n.set {
		return old, false
	}
	var zero V
	old = n.value
	n.topic, n.value, n.set = "", zero, false
	r.len--
	for n != &r.root && !n.set && len(n.children) == 0 {
		p := n.parent
		delete(p.children, n.level)
		if len(p.children) == 0 {
			p.children = nil
		}
		r.nodes--
		n = p
	}
	return old, true
}

// Get returns the retained message of topic.
func (r *Retained[V]) Get(topic string) (V, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.find(topic); n != nil && n.set {
		return n.value, true
	}
	var zero V
	return zero, false
}

// find returns the node of topic, or nil. The caller holds a lock.
func (r *Retained[V]) find(topic string) *rnode[V] {
	n := &r.root
	for t, more := topic, true; more && n != nil; {
		var lvl string
		lvl, t, more = level(t)
		n = n.children[lvl]
	}
	return n
}

// Len returns the number of retained messages.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.len
}

// Match calls fn for every retained message whose topic matches filter, by
// the rules of Tree.Match, until fn returns false. It visits only the branches
// of the trie that the filter can match. fn runs with the read lock held and
// must not call methods of r; the order of the calls is unspecified.
func (r *Retained[V]) Match(filter string, fn func(topic string, v V) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.root.match(filter, true, fn)
}

// match calls fn for the values below n that match filter, the filter levels
// still to match, and reports whether to go on. root is true at the root,
// where wildcards do not match '$' topics [MQTT-4.7.2-1].
func (n *rnode[V]) match(filter string, root bool, fn func(string, V) bool) bool {
	lvl, rest, more := level(filter)
	switch lvl {
	case "#":
		// "#" matches the parent level ("a/#" matches "a") and every level
		// below; the root never holds a topic.
		if n.set && !fn(n.topic, n.value) {
			return false
		}
		for _, c := range n.children {
			if !(root && dollar(c.level)) && !c.each(fn) {
				return false
			}
		}
	case "+":
		for _, c := range n.children {
			if !(root && dollar(c.level)) && !c.matchLevel(rest, more, fn) {
				return false
			}
		}
	default:
		if c := n.children[lvl]; c != nil {
			return c.matchLevel(rest, more, fn)
		}
	}
	return true
}

// matchLevel goes on matching at n, whose level matched the filter level
// before rest; more reports whether rest holds levels.
func (n *rnode[V]) matchLevel(rest string, more bool, fn func(string, V) bool) bool {
	if more {
		return n.match(rest, false, fn)
	}
	return !n.set || fn(n.topic, n.value)
}

// Each calls fn for every retained message until fn returns false. fn runs
// with the read lock held and must not call methods of r.
func (r *Retained[V]) Each(fn func(topic string, v V) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.root.each(fn)
}

// each calls fn for n and every node below it, and reports whether to go on.
func (n *rnode[V]) each(fn func(string, V) bool) bool {
	if n.set && !fn(n.topic, n.value) {
		return false
	}
	for _, c := range n.children {
		if !c.each(fn) {
			return false
		}
	}
	return true
}
