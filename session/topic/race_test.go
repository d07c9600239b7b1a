package topic

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestConcurrent runs Subscribe, Unsubscribe, UnsubscribeAll, Match, Pick and
// the Retained methods in parallel; run it with -race. Every match must obey
// the matching rules, and the tree must be empty once everyone has left.
func TestConcurrent(t *testing.T) {
	filters := []string{"a/b", "a/+", "a/#", "#", "+/b", "$SYS/#", "a//b", "+/+/+"}
	topics := []string{"a/b", "a", "a//b", "$SYS/x", "b/b/b", "x/b"}
	rounds := 2000
	if testing.Short() {
		rounds = 300
	}
	tr := NewTree()
	r := NewRetained[int]()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range rounds {
				s := Sub{ClientID: fmt.Sprint("w", w, "c", rng.IntN(4)), Filter: filters[rng.IntN(len(filters))]}
				if rng.IntN(3) == 0 {
					s.Group = fmt.Sprint("g", rng.IntN(2))
				}
				switch rng.IntN(4) {
				case 0, 1:
					tr.Subscribe(s)
				case 2:
					tr.Unsubscribe(s.ClientID, s.Group, s.Filter)
				default:
					tr.UnsubscribeAll(s.ClientID)
				}
				topic := topics[rng.IntN(len(topics))]
				if i%2 == 0 {
					r.Set(topic, i)
				} else {
					r.Delete(topic)
				}
			}
			for c := range 4 {
				tr.UnsubscribeAll(fmt.Sprint("w", w, "c", c))
			}
		})
	}
	errs := make(chan error, 2)
	for m := range 2 {
		wg.Go(func() {
			var ms Matches
			for i := range rounds {
				topic := topics[(i+m)%len(topics)]
				ms.Reset()
				tr.Match(topic, &ms)
				for _, s := range ms.Subs {
					if !refMatch(s.Filter, topic) {
						errs <- fmt.Errorf("topic %q matched filter %q", topic, s.Filter)
						return
					}
				}
				for _, g := range ms.Groups {
					if s, ok := g.Pick(all); ok && s.Filter != g.Filter {
						errs <- fmt.Errorf("group %s/%s picked a member of %q", g.Name, g.Filter, s.Filter)
						return
					}
				}
				r.Match(filters[i%len(filters)], func(string, int) bool { return true })
				tr.Count()
				r.Len()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if tr.nodes != 0 || tr.Count() != 0 || len(tr.clients) != 0 {
		t.Fatalf("after everyone left: %d nodes, count %d, %d clients", tr.nodes, tr.Count(), len(tr.clients))
	}
	for _, topic := range topics {
		r.Delete(topic)
	}
	if r.nodes != 0 || r.Len() != 0 {
		t.Fatalf("retained after deleting all: %d nodes, Len %d", r.nodes, r.Len())
	}
}
