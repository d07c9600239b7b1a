package topic

import (
	"errors"
	"slices"
	"testing"
)

// groupOf subscribes members to "$share/g/a" and returns the group.
func groupOf(t *testing.T, tr *Tree, members ...string) *Group {
	t.Helper()
	for _, id := range members {
		tr.Subscribe(Sub{ClientID: id, Group: "g", Filter: "a"})
	}
	var m Matches
	tr.Match("a", &m)
	if len(m.Groups) != 1 {
		t.Fatalf("Match gave %d groups, want 1", len(m.Groups))
	}
	return m.Groups[0]
}

func all(Sub) bool { return true }

func TestPickRoundRobin(t *testing.T) {
	g := groupOf(t, NewTree(), "x", "y", "z")
	counts := map[string]int{}
	prev := ""
	for range 300 {
		s, ok := g.Pick(all)
		if !ok {
			t.Fatal("Pick found no member")
		}
		if s.ClientID == prev {
			t.Fatalf("%s picked twice in a row", prev)
		}
		prev = s.ClientID
		counts[s.ClientID]++
	}
	for _, id := range []string{"x", "y", "z"} {
		if counts[id] != 100 {
			t.Errorf("%s picked %d times of 300, want 100", id, counts[id])
		}
	}
}

func TestPickSkips(t *testing.T) {
	g := groupOf(t, NewTree(), "x", "y", "z")
	notY := func(s Sub) bool { return s.ClientID != "y" }
	var got []string
	for range 6 {
		s, ok := g.Pick(notY)
		if !ok {
			t.Fatal("Pick found no member")
		}
		got = append(got, s.ClientID)
	}
	if want := []string{"x", "z", "x", "z", "x", "z"}; !slices.Equal(got, want) {
		t.Fatalf("picks skipping y = %q, want %q", got, want)
	}

	// When nobody accepts, the rotation does not move: the next pick is the
	// member that was due.
	var asked []string
	none := func(s Sub) bool { asked = append(asked, s.ClientID); return false }
	if s, ok := g.Pick(none); ok {
		t.Fatalf("Pick with no member accepting gave %+v", s)
	}
	if want := []string{"x", "y", "z"}; !slices.Equal(asked, want) {
		t.Fatalf("Pick asked %q, want each member once: %q", asked, want)
	}
	if s, _ := g.Pick(all); s.ClientID != "x" {
		t.Fatalf("after a failed Pick, Pick = %s, want x", s.ClientID)
	}
}

// TestPickAfterLeave checks a *Group kept from Match while its members leave.
func TestPickAfterLeave(t *testing.T) {
	tr := NewTree()
	g := groupOf(t, tr, "x", "y")
	tr.Unsubscribe("x", "g", "a")
	for range 3 {
		if s, ok := g.Pick(all); !ok || s.ClientID != "y" {
			t.Fatalf("Pick = %+v %v, want y", s, ok)
		}
	}
	tr.UnsubscribeAll("y")
	if s, ok := g.Pick(all); ok {
		t.Fatalf("Pick on an empty group = %+v", s)
	}
	if tr.nodes != 0 {
		t.Fatalf("%d nodes left", tr.nodes)
	}
}

func TestMembersCopy(t *testing.T) {
	g := groupOf(t, NewTree(), "x", "y")
	m := g.Members()
	m[0].ClientID = "changed"
	if got := g.Members(); got[0].ClientID == "changed" {
		t.Fatal("Members returned the group's own slice")
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		in          string
		group, rest string
		shared      bool
		err         error
	}{
		{"a/b", "", "a/b", false, nil},
		{"$SYS/#", "", "$SYS/#", false, nil},
		{"$shared/g/a", "", "$shared/g/a", false, nil}, // not the prefix
		{"$share/g/a/b", "g", "a/b", true, nil},
		{"$share/g/#", "g", "#", true, nil},
		{"$share/g//", "g", "/", true, nil},
		{"$share/g/$share/h/a", "g", "$share/h/a", true, nil},
		{"$share//a", "", "", true, ErrShareName},   // [MQTT-4.8.2-1] empty name
		{"$share/g+/a", "", "", true, ErrShareName}, // [MQTT-4.8.2-2]
		{"$share/#/a", "", "", true, ErrShareName},  // [MQTT-4.8.2-2]
		{"$share/g", "", "", true, ErrShareFilter},  // no '/' after the name
		{"$share/g/", "", "", true, ErrShareFilter}, // empty filter
		{"$share/", "", "", true, ErrShareName},
	}
	for _, tt := range tests {
		group, rest, shared, err := ParseShared(tt.in)
		if group != tt.group || rest != tt.rest || shared != tt.shared || !errors.Is(err, tt.err) {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
				tt.in, group, rest, shared, err, tt.group, tt.rest, tt.shared, tt.err)
		}
	}
}

func TestTreeGroupLookup(t *testing.T) {
	tr := NewTree()
	tr.Subscribe(Sub{ClientID: "a", Group: "g", Filter: "x/+"})
	g := tr.Group("g", "x/+")
	if g == nil || g.Name != "g" || len(g.Members()) != 1 {
		t.Fatalf("Group(g, x/+) = %+v", g)
	}
	for _, miss := range [][2]string{{"h", "x/+"}, {"g", "x"}, {"g", "x/+/y"}, {"g", "x/y"}} {
		if got := tr.Group(miss[0], miss[1]); got != nil {
			t.Errorf("Group(%q, %q) = %+v, want nil", miss[0], miss[1], got)
		}
	}
	tr.Unsubscribe("a", "g", "x/+")
	if tr.Group("g", "x/+") != nil {
		t.Fatal("group still found after its last member left")
	}
}
