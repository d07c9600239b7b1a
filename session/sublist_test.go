package session

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"edgebroker/session/topic"
)

// subList agrees with a map under random puts, replacements and removals, below and above
// the size at which it starts indexing, and across the switch.
func TestSubListMatchesMap(t *testing.T) {
	for _, keys := range []int{3, indexAbove, 4 * indexAbove} {
		t.Run(fmt.Sprint(keys, " filters"), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(keys), 1))
			var l subList
			want := map[subKey]topic.Sub{}
			for step := range 5000 {
				k := subKey{group: []string{"", "g"}[r.IntN(2)], filter: fmt.Sprintf("a/%d", r.IntN(keys))}
				if r.IntN(3) == 0 {
					l.Remove(k.group, k.filter)
					delete(want, k)
				} else {
					sub := topic.Sub{ClientID: "c", Group: k.group, Filter: k.filter, SubID: uint32(step)}
					l.Put(sub)
					want[k] = sub
				}
				if l.Len() != len(want) {
					t.Fatalf("step %d: %d subscriptions, want %d", step, l.Len(), len(want))
				}
				for _, s := range l.All() {
					if w, ok := want[keyOf(&s)]; !ok || w != s {
						t.Fatalf("step %d: holds %+v, want %+v (present %v)", step, s, w, ok)
					}
				}
				if !l.Has(k.group, k.filter) != (want[k] == topic.Sub{}) {
					t.Fatalf("step %d: Has(%q, %q) wrong", step, k.group, k.filter)
				}
			}
			l.Clear()
			if l.Len() != 0 || l.Has("", "a/0") {
				t.Fatal("not empty after Clear")
			}
		})
	}
}
