package topic

import (
	"fmt"
	"slices"
	"testing"
)

func TestRetainedSetGetDelete(t *testing.T) {
	r := NewRetained[int]()
	if _, ok := r.Get("a"); ok {
		t.Fatal("Get on an empty index found a value")
	}
	if _, replaced := r.Set("a/b", 1); replaced {
		t.Fatal("Set on a new topic replaced something")
	}
	if old, replaced := r.Set("a/b", 2); !replaced || old != 1 {
		t.Fatalf("replacing Set returned %d, %v; want 1, true", old, replaced)
	}
	r.Set("a", 3)
	r.Set("a//b", 4)
	if r.Len() != 3 {
		t.Fatalf("Len = %d, want 3", r.Len())
	}
	for topic, want := range map[string]int{"a/b": 2, "a": 3, "a//b": 4} {
		if v, ok := r.Get(topic); !ok || v != want {
			t.Errorf("Get(%q) = %d, %v; want %d", topic, v, ok, want)
		}
	}
	for _, topic := range []string{"a/", "a/b/c", "b", "a/+"} {
		if _, ok := r.Get(topic); ok {
			t.Errorf("Get(%q) found a value", topic)
		}
		if _, ok := r.Delete(topic); ok {
			t.Errorf("Delete(%q) = true", topic)
		}
	}
	nodes := r.nodes // a, a/b, a/, a//b
	if old, ok := r.Delete("a"); !ok || old != 3 || r.nodes != nodes {
		t.Fatalf("Delete(a) removed an inner node: %d nodes, want %d", r.nodes, nodes)
	}
	if _, ok := r.Delete("a"); ok {
		t.Fatal("second Delete(a) = true")
	}
	if _, ok := r.Delete("a//b"); !ok {
		t.Fatal("Delete(a//b) found nothing")
	}
	if _, ok := r.Delete("a/b"); !ok {
		t.Fatal("Delete of a set topic = false")
	}
	if r.Len() != 0 || r.nodes != 0 || len(r.root.children) != 0 {
		t.Fatalf("after deleting all: Len %d, %d nodes", r.Len(), r.nodes)
	}
}

// retainedTopics are stored for TestRetainedMatch.
var retainedTopics = []string{
	"a", "a/b", "a/c", "a/b/c", "a/x/c", "a//c", "a/", "/", "/a", "b/b",
	"$SYS/x", "$SYS", "$SYS/x/y", "x/$SYS",
}

func TestRetainedMatch(t *testing.T) {
	r := NewRetained[string]()
	for _, topic := range retainedTopics {
		r.Set(topic, "v:"+topic)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"a", []string{"a"}},
		{"a/b", []string{"a/b"}},
		{"nope", nil},
		{"a/b/c/d", nil},
		{"a/+", []string{"a/", "a/b", "a/c"}},
		{"a/+/c", []string{"a//c", "a/b/c", "a/x/c"}},
		{"+/b", []string{"a/b", "b/b"}},
		{"+", []string{"a"}},
		{"+/+", []string{"/", "/a", "a/", "a/b", "a/c", "b/b", "x/$SYS"}},
		{"/+", []string{"/", "/a"}},
		{"a/#", []string{"a", "a/", "a//c", "a/b", "a/b/c", "a/c", "a/x/c"}},
		{"a/b/#", []string{"a/b", "a/b/c"}},
		{"+/#", []string{"/", "/a", "a", "a/", "a//c", "a/b", "a/b/c", "a/c", "a/x/c", "b/b", "x/$SYS"}},
		{"#", []string{"/", "/a", "a", "a/", "a//c", "a/b", "a/b/c", "a/c", "a/x/c", "b/b", "x/$SYS"}},
		{"+/$SYS", []string{"x/$SYS"}},
		// [MQTT-4.7.2-1]
		{"$SYS/#", []string{"$SYS", "$SYS/x", "$SYS/x/y"}},
		{"$SYS/+", []string{"$SYS/x"}},
		{"$SYS", []string{"$SYS"}},
		{"+/x", nil},
	}
	for _, tt := range tests {
		var got []string
		r.Match(tt.filter, func(topic, v string) bool {
			if v != "v:"+topic {
				t.Errorf("Match(%q) gave %q for topic %q", tt.filter, v, topic)
			}
			got = append(got, topic)
			return true
		})
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %q, want %q", tt.filter, got, tt.want)
		}
		var ref []string
		for _, topic := range retainedTopics {
			if refMatch(tt.filter, topic) {
				ref = append(ref, topic)
			}
		}
		slices.Sort(ref)
		if !slices.Equal(ref, tt.want) {
			t.Errorf("reference matcher for %q gives %q, want %q: the table or refMatch is wrong", tt.filter, ref, tt.want)
		}
	}
}

func TestRetainedStop(t *testing.T) {
	r := NewRetained[int]()
	for i := range 50 {
		r.Set(fmt.Sprint("s/", i, "/t"), i)
	}
	for _, filter := range []string{"#", "s/#", "s/+/t", "+/+/+"} {
		calls := 0
		r.Match(filter, func(string, int) bool { calls++; return calls < 3 })
		if calls != 3 {
			t.Errorf("Match(%q) called fn %d times after it returned false at 3", filter, calls)
		}
	}
	calls := 0
	r.Each(func(string, int) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Each called fn %d times after it returned false", calls)
	}
}

func TestRetainedEach(t *testing.T) {
	r := NewRetained[int]()
	for i, topic := range retainedTopics {
		r.Set(topic, i)
	}
	var got []string
	r.Each(func(topic string, v int) bool {
		if retainedTopics[v] != topic {
			t.Errorf("Each gave %d for %q", v, topic)
		}
		got = append(got, topic)
		return true
	})
	slices.Sort(got)
	want := slices.Sorted(slices.Values(retainedTopics))
	if !slices.Equal(got, want) {
		t.Fatalf("Each visited %q, want %q", got, want)
	}
}
