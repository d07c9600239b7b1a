package topic

import (
	"slices"
	"strings"
	"testing"

	"edgebroker/codec"
)

// FuzzMatch checks Tree.Match and Retained.Match against refMatch for a
// filter, subscribed plainly and in a shared group, and a topic name; then it
// checks that unsubscribing leaves no node behind.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"a/+/c", "a/b/c"}, {"a/#", "a"}, {"#", "$SYS/x"}, {"+/+", "/"},
		{"$SYS/#", "$SYS"}, {"a//b", "a//b"}, {"+/#", "$a/b"}, {"/#", "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		// The engine hands the tree only what the codec accepts.
		if !codec.ValidTopicFilter(filter) || strings.HasPrefix(filter, sharePrefix) || !codec.ValidTopicName(topic) {
			return
		}
		want := refMatch(filter, topic)

		tr := NewTree()
		tr.Subscribe(Sub{ClientID: "x", Filter: filter})
		tr.Subscribe(Sub{ClientID: "y", Filter: filter})
		tr.Subscribe(Sub{ClientID: "x", Filter: filter, Group: "g"})
		tr.Subscribe(Sub{ClientID: "x", Filter: "other/level"})
		var m Matches
		tr.Match(topic, &m)
		var got []string
		for _, s := range m.Subs {
			got = append(got, s.ClientID+"|"+s.Filter)
		}
		for _, g := range m.Groups {
			got = append(got, g.Name+"|"+g.Filter)
		}
		slices.Sort(got)
		var exp []string
		if want {
			exp = append(exp, "g|"+filter, "x|"+filter, "y|"+filter)
		}
		if filter != "other/level" && refMatch("other/level", topic) {
			exp = append(exp, "x|other/level")
		}
		slices.Sort(exp)
		if !slices.Equal(got, exp) {
			t.Fatalf("Tree.Match(%q) with filter %q = %q, want %q", topic, filter, got, exp)
		}
		xSubs := 3
		if filter == "other/level" {
			xSubs = 2 // the plain subscription was replaced
		}
		if tr.UnsubscribeAll("x") != xSubs || !tr.Unsubscribe("y", "", filter) || tr.nodes != 0 {
			t.Fatalf("filter %q: the tree is not empty after unsubscribing: %d nodes", filter, tr.nodes)
		}

		r := NewRetained[bool]()
		r.Set(topic, true)
		r.Set("other/level", false)
		var rgot []string
		r.Match(filter, func(tp string, _ bool) bool { rgot = append(rgot, tp); return true })
		var rwant []string
		if want {
			rwant = append(rwant, topic)
		}
		if topic != "other/level" && refMatch(filter, "other/level") {
			rwant = append(rwant, "other/level")
		}
		slices.Sort(rgot)
		slices.Sort(rwant)
		if !slices.Equal(rgot, rwant) {
			t.Fatalf("Retained.Match(%q) with topic %q = %q, want %q", filter, topic, rgot, rwant)
		}
		r.Delete(topic)
		r.Delete("other/level")
		if r.nodes != 0 || r.Len() != 0 {
			t.Fatalf("topic %q: retained index not empty after Delete: %d nodes", topic, r.nodes)
		}
	})
}
