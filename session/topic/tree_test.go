package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// subscribeAll subscribes each entry of subs, written "filter" for client "c"
// or "client|filter"; the filter may carry a "$share/{name}/" prefix.
func subscribeAll(t *testing.T, tr *Tree, subs []string) {
	t.Helper()
	for _, e := range subs {
		client, filter, ok := strings.Cut(e, "|")
		if !ok {
			client, filter = "c", e
		}
		group, rest, _, err := ParseShared(filter)
		if err != nil {
			t.Fatalf("ParseShared(%q): %v", filter, err)
		}
		tr.Subscribe(Sub{ClientID: client, Group: group, Filter: rest})
	}
}

// matched returns the result of Match as sorted strings: "client|filter" for
// a subscription, "$share/{name}/{filter}" for a group.
func matched(tr *Tree, topic string) []string {
	var m Matches
	tr.Match(topic, &m)
	var got []string
	for _, s := range m.Subs {
		got = append(got, s.ClientID+"|"+s.Filter)
	}
	for _, g := range m.Groups {
		got = append(got, sharePrefix+g.Name+"/"+g.Filter)
	}
	slices.Sort(got)
	return got
}

// TestMatch checks the matching rules of MQTT 5.0 §4.7 and §4.8.2 (the same in
// 3.1.1 §4.7). subs are subscribed to an empty Tree, topic is published, and
// want lists what matches, as matched writes it.
func TestMatch(t *testing.T) {
	tests := []struct {
		name  string
		subs  []string
		topic string
		want  []string
	}{
		{"exact", []string{"a/b"}, "a/b", []string{"c|a/b"}},
		{"exact other level", []string{"a/b"}, "a/c", nil},
		{"filter longer than topic", []string{"a/b"}, "a", nil},
		{"topic longer than filter", []string{"a"}, "a/b", nil},
		{"case sensitive", []string{"A/b"}, "a/b", nil},
		{"trailing separator is a level", []string{"a/b"}, "a/b/", nil},
		{"trailing empty level exact", []string{"a/b/"}, "a/b/", []string{"c|a/b/"}},
		{"leading empty level", []string{"/a"}, "a", nil},
		{"utf-8 levels", []string{"ü/+"}, "ü/ß", []string{"c|ü/+"}},
		// '+' matches exactly one level [MQTT-4.7.1-2].
		{"plus one level", []string{"+"}, "a", []string{"c|+"}},
		{"plus not two levels", []string{"+"}, "a/b", nil},
		{"plus not two empty levels", []string{"+"}, "/", nil},
		{"plus plus two empty levels", []string{"+/+"}, "/", []string{"c|+/+"}},
		{"plus matches empty last level", []string{"/+"}, "/", []string{"c|/+"}},
		{"plus matches empty first level", []string{"+/b"}, "/b", []string{"c|+/b"}},
		{"plus after literal, empty level", []string{"a/+"}, "a/", []string{"c|a/+"}},
		{"plus needs its level", []string{"a/+"}, "a", nil},
		{"plus in the middle", []string{"a/+/c"}, "a/b/c", []string{"c|a/+/c"}},
		{"plus in the middle, empty level", []string{"a/+/c"}, "a//c", []string{"c|a/+/c"}},
		{"five plus", []string{"+/+/+/+/+"}, "1/2/3/4/5", []string{"c|+/+/+/+/+"}},
		{"empty level literal", []string{"a//b"}, "a//b", []string{"c|a//b"}},
		{"empty level is not skipped", []string{"a/b"}, "a//b", nil},
		// '#' matches the parent and any number of levels [MQTT-4.7.1-1].
		{"hash one level", []string{"#"}, "a", []string{"c|#"}},
		{"hash three levels", []string{"#"}, "a/b/c", []string{"c|#"}},
		{"hash empty levels", []string{"#"}, "/", []string{"c|#"}},
		{"hash matches parent", []string{"a/#"}, "a", []string{"c|a/#"}},
		{"hash matches empty child", []string{"a/#"}, "a/", []string{"c|a/#"}},
		{"hash matches deep", []string{"a/#"}, "a/b/c", []string{"c|a/#"}},
		{"hash not a prefix of a level", []string{"a/#"}, "ab", nil},
		{"hash other parent", []string{"a/#"}, "b/a", nil},
		{"hash parent only one level up", []string{"a/b/#"}, "a", nil},
		{"plus then hash one level", []string{"+/#"}, "a", []string{"c|+/#"}},
		{"plus plus hash needs two", []string{"+/+/#"}, "a", nil},
		{"plus plus hash parent", []string{"+/+/#"}, "a/b", []string{"c|+/+/#"}},
		{"empty then hash", []string{"/#"}, "/", []string{"c|/#"}},
		{"empty then hash other", []string{"/#"}, "a", nil},
		// Wildcards first do not match '$' topics [MQTT-4.7.2-1].
		{"hash not dollar", []string{"#"}, "$SYS/x", nil},
		{"plus not dollar", []string{"+/x"}, "$SYS/x", nil},
		{"plus hash not dollar", []string{"+/#"}, "$x/y", nil},
		{"dollar hash", []string{"$SYS/#"}, "$SYS/x", []string{"c|$SYS/#"}},
		{"dollar hash parent", []string{"$SYS/#"}, "$SYS", []string{"c|$SYS/#"}},
		{"dollar plus", []string{"$SYS/+"}, "$SYS/x", []string{"c|$SYS/+"}},
		{"dollar plus hash", []string{"$SYS/+/#"}, "$SYS/a/b", []string{"c|$SYS/+/#"}},
		{"dollar exact", []string{"$SYS/x", "#"}, "$SYS/x", []string{"c|$SYS/x"}},
		{"dollar later level", []string{"+/$b"}, "a/$b", []string{"c|+/$b"}},
		// One client, overlapping filters: one Sub per filter.
		{"overlap all", []string{"a/b", "a/+", "a/#", "#", "+/b", "+/+"}, "a/b",
			[]string{"c|#", "c|+/+", "c|+/b", "c|a/#", "c|a/+", "c|a/b"}},
		{"overlap some", []string{"a/b", "a/c", "+/c", "a/b/#"}, "a/b", []string{"c|a/b", "c|a/b/#"}},
		{"several clients", []string{"x|a/+", "y|a/+", "x|a/b"}, "a/b", []string{"x|a/+", "x|a/b", "y|a/+"}},
		// Shared subscriptions: each matching group once.
		{"shared", []string{"$share/g/a/+"}, "a/b", []string{"$share/g/a/+"}},
		{"shared no match", []string{"$share/g/a/+"}, "b/b", nil},
		{"shared and plain", []string{"$share/g/a/b", "a/b"}, "a/b", []string{"$share/g/a/b", "c|a/b"}},
		{"two groups", []string{"$share/g1/a/b", "$share/g2/a/b"}, "a/b", []string{"$share/g1/a/b", "$share/g2/a/b"}},
		{"group once for two members", []string{"x|$share/g/a/#", "y|$share/g/a/#"}, "a/b", []string{"$share/g/a/#"}},
		{"same group two filters", []string{"$share/g/a/#", "$share/g/+/b"}, "a/b", []string{"$share/g/+/b", "$share/g/a/#"}},
		{"shared hash not dollar", []string{"$share/g/#"}, "$SYS/a", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTree()
			subscribeAll(t, tr, tt.subs)
			if got := matched(tr, tt.topic); !slices.Equal(got, tt.want) {
				t.Errorf("Match(%q) with %q = %q, want %q", tt.topic, tt.subs, got, tt.want)
			}
			if got, want := refMatches(tt.subs, tt.topic), tt.want; !slices.Equal(got, want) {
				t.Errorf("the reference matcher gives %q, want %q: the table or refMatch is wrong", got, want)
			}
		})
	}
}

// refMatches applies refMatch to each entry of subs, written as for
// subscribeAll, and returns the matches as matched writes them.
func refMatches(subs []string, topic string) []string {
	var got []string
	for _, e := range subs {
		client, filter, ok := strings.Cut(e, "|")
		if !ok {
			client, filter = "c", e
		}
		group, rest, shared, _ := ParseShared(filter)
		switch {
		case !refMatch(rest, topic):
		case shared:
			if s := sharePrefix + group + "/" + rest; !slices.Contains(got, s) {
				got = append(got, s)
			}
		default:
			got = append(got, client+"|"+rest)
		}
	}
	slices.Sort(got)
	return got
}

// refMatch is the plain matcher the Tree is checked against: split both on
// '/' and compare level by level.
func refMatch(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, l := range f {
		if l == "#" {
			return true
		}
		if i >= len(tp) || (l != "+" && l != tp[i]) {
			return false
		}
	}
	return len(f) == len(tp)
}

func TestSubscribeReplace(t *testing.T) {
	tr := NewTree()
	first := Sub{ClientID: "c", Filter: "a/+", QoS: 0}
	if tr.Subscribe(first) {
		t.Fatal("first Subscribe reported an existing subscription")
	}
	second := first
	second.QoS, second.SubID, second.NoLocal = 2, 7, true
	if !tr.Subscribe(second) {
		t.Fatal("second Subscribe of the same key did not report the existing one")
	}
	if n := tr.Count(); n != 1 {
		t.Fatalf("Count after replace = %d, want 1", n)
	}
	var m Matches
	tr.Match("a/b", &m)
	if len(m.Subs) != 1 || m.Subs[0] != second {
		t.Fatalf("Match after replace = %+v, want only %+v", m.Subs, second)
	}

	// The same client and filter in a shared group, and in another group,
	// are separate subscriptions.
	g1 := Sub{ClientID: "c", Filter: "a/+", Group: "g1", QoS: 1}
	g2 := Sub{ClientID: "c", Filter: "a/+", Group: "g2", QoS: 1}
	if tr.Subscribe(g1) || tr.Subscribe(g2) {
		t.Fatal("a shared subscription was taken for the plain one")
	}
	g1.QoS = 2
	if !tr.Subscribe(g1) {
		t.Fatal("re-subscribing to a group did not report the existing member")
	}
	if n := tr.Count(); n != 3 {
		t.Fatalf("Count = %d, want 3", n)
	}
	m.Reset()
	tr.Match("a/b", &m)
	if len(m.Subs) != 1 || len(m.Groups) != 2 {
		t.Fatalf("Match = %d subs %d groups, want 1 and 2", len(m.Subs), len(m.Groups))
	}
	for _, g := range m.Groups {
		members := g.Members()
		if len(members) != 1 {
			t.Fatalf("group %s has %d members, want 1", g.Name, len(members))
		}
		if g.Name == "g1" && members[0] != g1 {
			t.Errorf("group g1 member = %+v, want the replacement %+v", members[0], g1)
		}
	}
}

// TestManySubscribers goes past the size at which a node indexes its
// subscriptions by client, and back, checking every step against the
// expected set.
func TestManySubscribers(t *testing.T) {
	tr := NewTree()
	want := map[string]bool{}
	check := func(step string) {
		t.Helper()
		var m Matches
		tr.Match("x/y", &m)
		got := map[string]bool{}
		for _, s := range m.Subs {
			if got[s.ClientID] {
				t.Fatalf("%s: client %s matched twice", step, s.ClientID)
			}
			got[s.ClientID] = true
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d matches, want %d", step, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Fatalf("%s: client %s missing", step, id)
			}
		}
	}
	for i := range 3 * indexAbove {
		id := fmt.Sprint("c", i)
		tr.Subscribe(Sub{ClientID: id, Filter: "x/y"})
		want[id] = true
		check("subscribe " + id)
	}
	for i := range 3 * indexAbove {
		id := fmt.Sprint("c", (i*7)%(3*indexAbove)) // 7 is prime to 24: all ids, scrambled
		if !tr.Unsubscribe(id, "", "x/y") {
			t.Fatalf("Unsubscribe(%s) = false", id)
		}
		delete(want, id)
		check("unsubscribe " + id)
	}
	if tr.nodes != 0 {
		t.Fatalf("%d nodes left", tr.nodes)
	}
}

func TestUnsubscribe(t *testing.T) {
	tr := NewTree()
	subscribeAll(t, tr, []string{"a/b/c", "a/b", "x|$share/g/a/#", "y|$share/g/a/#"})
	nodes := tr.nodes // a, a/b, a/b/c, a/#
	if nodes != 4 {
		t.Fatalf("nodes = %d, want 4", nodes)
	}
	for _, tt := range []struct{ client, group, filter string }{
		{"other", "", "a/b"}, // another client
		{"c", "g", "a/b"},    // as shared
		{"c", "", "a"},       // an inner node without subscriptions
		{"c", "", "a/b/c/d"}, // below the leaf
		{"c", "", "z"},       // no such node
		{"x", "", "a/#"},     // a group member, as plain
		{"x", "h", "a/#"},    // in another group
		{"z", "g", "a/#"},    // not a member
	} {
		if tr.Unsubscribe(tt.client, tt.group, tt.filter) {
			t.Errorf("Unsubscribe(%q, %q, %q) = true for no subscription", tt.client, tt.group, tt.filter)
		}
	}
	if tr.Count() != 4 || tr.nodes != nodes {
		t.Fatalf("failed unsubscribes changed the tree: count %d nodes %d", tr.Count(), tr.nodes)
	}
	steps := []struct {
		client, group, filter string
		nodes                 int
	}{
		{"c", "", "a/b/c", 3}, // the leaf goes
		{"x", "g", "a/#", 3},  // y is still in the group
		{"y", "g", "a/#", 2},  // the empty group and its node go
		{"c", "", "a/b", 0},   // and the rest
	}
	for _, s := range steps {
		if !tr.Unsubscribe(s.client, s.group, s.filter) {
			t.Fatalf("Unsubscribe(%q, %q, %q) = false", s.client, s.group, s.filter)
		}
		if tr.nodes != s.nodes {
			t.Fatalf("after Unsubscribe(%q, %q, %q): nodes = %d, want %d", s.client, s.group, s.filter, tr.nodes, s.nodes)
		}
		if tr.Unsubscribe(s.client, s.group, s.filter) {
			t.Fatalf("second Unsubscribe(%q, %q, %q) = true", s.client, s.group, s.filter)
		}
	}
	if tr.Count() != 0 || len(tr.clients) != 0 || !tr.root.empty() {
		t.Fatalf("tree not empty: count %d clients %d", tr.Count(), len(tr.clients))
	}
}

// TestChurnPrunes subscribes and unsubscribes many overlapping filters in a
// scrambled order; the tree must end with no node, as it started.
func TestChurnPrunes(t *testing.T) {
	tr := NewTree()
	levels := []string{"a", "b", "", "+", "$x"}
	var subs []Sub
	for i := range 2000 {
		var f []string
		for n := i; ; n /= len(levels) {
			f = append(f, levels[n%len(levels)])
			if n < len(levels) {
				break
			}
		}
		if i%3 == 0 {
			f = append(f, "#")
		}
		s := Sub{ClientID: fmt.Sprint("c", i%17), Filter: strings.Join(f, "/")}
		if i%5 == 0 {
			s.Group = fmt.Sprint("g", i%2)
		}
		if !tr.Subscribe(s) {
			subs = append(subs, s)
		}
	}
	if tr.Count() != len(subs) || tr.nodes == 0 {
		t.Fatalf("Count = %d for %d distinct subscriptions, %d nodes", tr.Count(), len(subs), tr.nodes)
	}
	for i := range subs {
		s := subs[(i*7919)%len(subs)]
		if !tr.Unsubscribe(s.ClientID, s.Group, s.Filter) {
			t.Fatalf("Unsubscribe(%+v) = false", s)
		}
	}
	if tr.nodes != 0 || tr.Count() != 0 || len(tr.clients) != 0 || !tr.root.empty() {
		t.Fatalf("after churn: %d nodes, count %d, %d clients", tr.nodes, tr.Count(), len(tr.clients))
	}
}

func TestUnsubscribeAll(t *testing.T) {
	tr := NewTree()
	subscribeAll(t, tr, []string{
		"x|a/b", "x|a/+", "x|#", "x|$share/g/a/b", "x|$share/h/a/b",
		"y|a/b", "y|$share/g/a/b",
	})
	if n := tr.UnsubscribeAll("x"); n != 5 {
		t.Fatalf("UnsubscribeAll(x) = %d, want 5", n)
	}
	if n := tr.UnsubscribeAll("x"); n != 0 {
		t.Fatalf("second UnsubscribeAll(x) = %d, want 0", n)
	}
	if n := tr.UnsubscribeAll("nobody"); n != 0 {
		t.Fatalf("UnsubscribeAll(nobody) = %d, want 0", n)
	}
	if tr.Count() != 2 {
		t.Fatalf("Count = %d, want 2", tr.Count())
	}
	want := []string{"$share/g/a/b", "y|a/b"}
	if got := matched(tr, "a/b"); !slices.Equal(got, want) {
		t.Fatalf("Match = %q, want %q", got, want)
	}
	if n := tr.UnsubscribeAll("y"); n != 2 {
		t.Fatalf("UnsubscribeAll(y) = %d, want 2", n)
	}
	if tr.nodes != 0 || tr.Count() != 0 || len(tr.clients) != 0 {
		t.Fatalf("tree not empty: %d nodes, count %d, %d clients", tr.nodes, tr.Count(), len(tr.clients))
	}
}

// TestMatchesReset checks that a reused Matches holds only the last result.
func TestMatchesReset(t *testing.T) {
	tr := NewTree()
	subscribeAll(t, tr, []string{"a", "b", "$share/g/a"})
	var m Matches
	tr.Match("a", &m)
	m.Reset()
	tr.Match("b", &m)
	if len(m.Subs) != 1 || m.Subs[0].Filter != "b" || len(m.Groups) != 0 {
		t.Fatalf("Matches after Reset = %+v", m)
	}
}

// Subscriptions and Subscribed agree with a map of one client's subscriptions under random
// subscribes (new and replacing), unsubscribes and another client's traffic on the same
// filters, below and above the size at which a client's keys are indexed, shared ones included.
func TestClientSubscriptions(t *testing.T) {
	for _, filters := range []int{3, indexAbove, 4 * indexAbove} {
		t.Run(fmt.Sprint(filters, " filters"), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(filters), 1))
			tr := NewTree()
			want := map[subKey]Sub{}
			for step := range 3000 {
				k := subKey{group: []string{"", "g"}[r.IntN(2)], filter: fmt.Sprintf("a/%d", r.IntN(filters))}
				client := []string{"c", "other"}[r.IntN(2)]
				if r.IntN(3) == 0 {
					tr.Unsubscribe(client, k.group, k.filter)
					if client == "c" {
						delete(want, k)
					}
				} else {
					s := Sub{ClientID: client, Group: k.group, Filter: k.filter, SubID: uint32(step)}
					tr.Subscribe(s)
					if client == "c" {
						want[k] = s
					}
				}
				got := tr.Subscriptions("c")
				if len(got) != len(want) {
					t.Fatalf("step %d: %d subscriptions, want %d", step, len(got), len(want))
				}
				for _, s := range got {
					if w, ok := want[subKey{s.Group, s.Filter}]; !ok || w != s {
						t.Fatalf("step %d: holds %+v, want %+v (present %v)", step, s, w, ok)
					}
				}
				_, present := want[k]
				if ok, n := tr.Subscribed("c", k.group, k.filter); ok != present || n != len(want) {
					t.Fatalf("step %d: Subscribed(%q, %q) = %v, %d; want %v, %d", step, k.group, k.filter, ok, n, present, len(want))
				}
			}
			tr.UnsubscribeAll("c")
			if got := tr.Subscriptions("c"); got != nil {
				t.Fatalf("after UnsubscribeAll: %v", got)
			}
		})
	}
}
