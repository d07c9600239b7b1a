package topic

import (
	"sync"
	"sync/atomic"
)

// Group is one shared-subscription group: the members that subscribed with
// the same "$share/{Name}/{Filter}". A matching message goes to one member,
// chosen by Pick. A *Group obtained from Match stays safe to use after the
// group loses its last member; Pick then reports no member.
type Group struct {
	Name   string // the share name
	Filter string // the topic filter, without the "$share/{Name}/" prefix

	mu sync.Mutex // guards members; taken inside Tree.mu, never while calling out
	// members is copy-on-write: a slice, once stored, is never written again,
	// so Pick and Members read a snapshot without holding mu.
	members []Sub
	next    atomic.Uint64 // position of the next Pick, modulo len(members)
}

func (g *Group) key() string { return g.Name }

func (s Sub) key() string { return s.ClientID }

// snapshot returns the current members; the caller must not modify them.
func (g *Group) snapshot() []Sub {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members
}

// Pick chooses the member that receives the next message: round robin,
// starting after the member chosen last, skipping members for which accept
// returns false (offline, or with a full queue). ok is false if accept
// rejected every member or the group is empty. accept runs with no lock of the
// Group or the Tree held. Pick is safe for concurrent use; concurrent calls
// start from different members, so the rotation stays fair under load.
func (g *Group) Pick(accept func(Sub) bool) (s Sub, ok bool) {
	members := g.snapshot()
	n := uint64(len(members))
	if n == 0 {
		return Sub{}, false
	}
	start := g.next.Add(1) - 1
	for i := range n {
		if s = members[(start+i)%n]; accept(s) {
			if i > 0 {
				// Continue after the member chosen, unless another Pick
				// has moved the rotation on meanwhile.
				g.next.CompareAndSwap(start+1, start+i+1)
			}
			return s, true
		}
	}
	// Nobody was chosen: give the turn back.
	g.next.CompareAndSwap(start+1, start)
	return Sub{}, false
}

// Members returns a copy of the group's members.
func (g *Group) Members() []Sub {
	m := g.snapshot()
	return append(make([]Sub, 0, len(m)), m...)
}

// put adds s, or replaces the member with the same client, reporting whether
// one was replaced. Its cost is linear in the size of the group.
func (g *Group) put(s Sub) (replaced bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make([]Sub, len(g.members), len(g.members)+1)
	copy(m, g.members)
	for i := range m {
		if m[i].ClientID == s.ClientID {
			m[i] = s
			g.members = m
			return true
		}
	}
	g.members = append(m, s)
	return false
}

// remove deletes the member clientID, reporting whether it was a member and
// how many members are left.
func (g *Group) remove(clientID string) (removed bool, left int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.members {
		if g.members[i].ClientID == clientID {
			m := make([]Sub, 0, len(g.members)-1)
			m = append(m, g.members[:i]...)
			g.members = append(m, g.members[i+1:]...)
			return true, len(g.members)
		}
	}
	return false, len(g.members)
}
