package topic

import "sync"

// Sub is one subscription of one session.
type Sub struct {
	ClientID          string
	Filter            string // the filter without the "$share/{Group}/" prefix
	Group             string // the share name of a shared subscription, "" if not shared
	QoS               byte   // the maximum QoS granted
	NoLocal           bool   // 5.0: do not send the client its own publications
	RetainAsPublished bool   // 5.0: keep the RETAIN flag of forwarded messages
	RetainHandling    byte   // 5.0: 0 send retained on subscribe, 1 only if new, 2 never
	SubID             uint32 // 5.0 subscription identifier, 0 = none
}

// Tree maps topic filters to subscriptions. It is safe for concurrent use:
// Match takes only the read lock, the other methods the write lock.
type Tree struct {
	mu      sync.RWMutex
	root    node
	clients map[string]*keyedSet[subKey, subKey] // every subscription of each client
	count   int                                  // subscriptions, shared members included
	nodes   int                                  // nodes besides the root, for the pruning tests
}

// subKey names one subscription of a client.
type subKey struct{ group, filter string }

func (k subKey) key() subKey { return k }

// node is one level of a filter. Its subscriptions and groups are those whose
// filter ends here.
type node struct {
	parent *node
	level  string
	// The children for literal levels: most nodes have at most one, held in
	// one without the cost of a map; children holds two or more, and then
	// one is nil.
	one      *node
	children map[string]*node
	plus     *node // the "+" level
	hash     *node // the "#" level
	subs     keyedSet[string, Sub]
	groups   keyedSet[string, *Group]
}

// NewTree returns an empty Tree.
func NewTree() *Tree {
	return &Tree{clients: make(map[string]*keyedSet[subKey, subKey])}
}

// Subscribe adds the subscription s, or replaces the options of the one with
// the same (ClientID, Group, Filter), and reports whether one existed. The
// filter must be valid (the codec checks it); an invalid one is stored as it
// is and never panics.
func (t *Tree) Subscribe(s Sub) (existed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for f, more := s.Filter, true; more; {
		var lvl string
		lvl, f, more = level(f)
		c := n.child(lvl)
		if c == nil {
			c = &node{parent: n, level: lvl}
			n.setChild(lvl, c)
			t.nodes++
		}
		n = c
	}
	if s.Group == "" {
		existed = n.subs.put(s)
	} else {
		g, ok := n.groups.get(s.Group)
		if !ok {
			g = &Group{Name: s.Group, Filter: s.Filter}
			n.groups.put(g)
		}
		existed = g.put(s)
	}
	if !existed {
		t.count++
		keys := t.clients[s.ClientID]
		if keys == nil {
			keys = new(keyedSet[subKey, subKey])
			t.clients[s.ClientID] = keys
		}
		keys.put(subKey{s.Group, s.Filter})
	}
	return existed
}

// Unsubscribe removes the subscription of clientID to filter (in the shared
// group group, or not shared if group is "") and reports whether it existed.
// Nodes left empty are removed.
func (t *Tree) Unsubscribe(clientID, group, filter string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := subKey{group, filter}
	if !t.remove(clientID, k) {
		return false
	}
	keys := t.clients[clientID]
	if keys.remove(k); len(keys.items) == 0 {
		delete(t.clients, clientID)
	}
	return true
}

// UnsubscribeAll removes every subscription of clientID, at the end of its
// session, and returns how many there were.
func (t *Tree) UnsubscribeAll(clientID string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := t.clients[clientID]
	if keys == nil {
		return 0
	}
	delete(t.clients, clientID)
	n := 0
	for _, k := range keys.items {
		if t.remove(clientID, k) {
			n++
		}
	}
	return n
}

// remove deletes one subscription from the trie, leaving t.clients alone, and
// prunes the nodes it leaves empty. The caller holds the write lock.
func (t *Tree) remove(clientID string, k subKey) bool {
	n := t.find(k.filter)
	if n == nil {
		return false
	}
	if k.group == "" {
		if !n.subs.remove(clientID) {
			return false
		}
	} else {
		g, ok := n.groups.get(k.group)
		if !ok {
			return false
		}
		removed, left := g.remove(clientID)
		if !removed {
			return false
		}
		if left == 0 {
			n.groups.remove(k.group)
		}
	}
	t.count--
	for n != &t.root && n.empty() {
		n.parent.setChild(n.level, nil)
		t.nodes--
		n = n.parent
	}
	return true
}

// find returns the node where filter ends, or nil. The caller holds a lock.
func (t *Tree) find(filter string) *node {
	n := &t.root
	for f, more := filter, true; more && n != nil; {
		var lvl string
		lvl, f, more = level(f)
		n = n.child(lvl)
	}
	return n
}

// Group returns the shared group name of filter, or nil when it has no members. The engine
// uses it to reattach recovered deliveries to their group.
func (t *Tree) Group(name, filter string) *Group {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n := t.find(filter); n != nil {
		if g, ok := n.groups.get(name); ok {
			return g
		}
	}
	return nil
}

// Subscriptions returns copies of every subscription of clientID, in no
// particular order.
func (t *Tree) Subscriptions(clientID string) []Sub {
	t.mu.RLock()
	defer t.mu.RUnlock()
	keys := t.clients[clientID]
	if keys == nil {
		return nil
	}
	out := make([]Sub, 0, len(keys.items))
	for _, k := range keys.items {
		if s, ok := t.get(clientID, k); ok {
			out = append(out, s)
		}
	}
	return out
}

// Subscribed reports whether clientID subscribes to filter (in the shared group
// group, or not shared if group is ""), and how many subscriptions it has.
func (t *Tree) Subscribed(clientID, group, filter string) (ok bool, count int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	keys := t.clients[clientID]
	if keys == nil {
		return false, 0
	}
	return keys.find(subKey{group, filter}) >= 0, len(keys.items)
}

// get returns the subscription k of clientID. The caller holds a lock.
func (t *Tree) get(clientID string, k subKey) (Sub, bool) {
	n := t.find(k.filter)
	if n == nil {
		return Sub{}, false
	}
	if k.group == "" {
		return n.subs.get(clientID)
	}
	g, ok := n.groups.get(k.group)
	if !ok {
		return Sub{}, false
	}
	for _, s := range g.snapshot() {
		if s.ClientID == clientID {
			return s, true
		}
	}
	return Sub{}, false
}

// Count returns the number of subscriptions, each member of a shared group
// counting as one.
func (t *Tree) Count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// Matches collects the result of Tree.Match. The zero value is ready to use;
// reuse one value with Reset so that Match does not allocate.
type Matches struct {
	Subs   []Sub    // the matching non-shared subscriptions, one per matching filter and client
	Groups []*Group // the shared groups with a matching filter, each once
}

// Reset empties m, keeping its slices' capacity.
func (m *Matches) Reset() {
	m.Subs = m.Subs[:0]
	m.Groups = m.Groups[:0]
}

// Match appends to m every non-shared subscription whose filter matches the
// topic name topic, and every shared group whose filter matches it. The Subs
// appended are copies; the *Group values stay valid after Match returns. The
// order of the results is unspecified. Match does not allocate once m's slices
// have grown large enough.
func (t *Tree) Match(topic string, m *Matches) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	// [MQTT-4.7.2-1] a filter starting with a wildcard does not match a
	// topic starting with '$'.
	t.root.match(topic, !dollar(topic), m)
}

// match collects the subscriptions below n that match topic, the levels of the
// topic name still to match. wild is false at the root of a '$' topic.
func (n *node) match(topic string, wild bool, m *Matches) {
	for {
		lvl, rest, more := level(topic)
		if wild {
			if n.hash != nil {
				// "#" matches this level and everything below.
				m.add(n.hash)
			}
			if p := n.plus; p != nil {
				// "+" matches this level, even an empty one.
				if more {
					p.match(rest, true, m)
				} else {
					m.addLast(p)
				}
			}
		}
		c := n.literal(lvl)
		if c == nil {
			return
		}
		if !more {
			m.addLast(c)
			return
		}
		n, topic, wild = c, rest, true
	}
}

// addLast adds the subscriptions of n, the node of the last topic level, and
// those of its "#" child: "a/#" matches "a" too.
func (m *Matches) addLast(n *node) {
	m.add(n)
	if n.hash != nil {
		m.add(n.hash)
	}
}

// add adds the subscriptions and groups that end at n.
func (m *Matches) add(n *node) {
	m.Subs = append(m.Subs, n.subs.items...)
	m.Groups = append(m.Groups, n.groups.items...)
}

// child returns the child of n for the filter level lvl, or nil.
func (n *node) child(lvl string) *node {
	switch lvl {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.literal(lvl)
}

// literal returns the child of n for the literal level lvl, or nil.
func (n *node) literal(lvl string) *node {
	if n.one != nil {
		if n.one.level == lvl {
			return n.one
		}
		return nil
	}
	return n.children[lvl]
}

// setChild makes c the child of n for the filter level lvl; c nil removes it.
func (n *node) setChild(lvl string, c *node) {
	switch {
	case lvl == "+":
		n.plus = c
	case lvl == "#":
		n.hash = c
	case c != nil && n.one == nil && n.children == nil:
		n.one = c
	case c != nil:
		if n.one != nil {
			n.children = map[string]*node{n.one.level: n.one}
			n.one = nil
		}
		n.children[lvl] = c
	case n.one != nil:
		if n.one.level == lvl {
			n.one = nil
		}
	default:
		delete(n.children, lvl)
		if len(n.children) == 1 {
			for _, last := range n.children {
				n.one = last
			}
			n.children = nil
		}
	}
}

// empty reports whether n holds nothing and can be removed.
func (n *node) empty() bool {
	return n.one == nil && len(n.children) == 0 && n.plus == nil && n.hash == nil &&
		len(n.subs.items) == 0 && len(n.groups.items) == 0
}
