package auth

import (
	"io"
	"strings"
	"testing"
)

// FuzzParsePasswords: no input panics, an accepted file's users all answer
// Check, and splitting the input across two reads changes nothing.
func FuzzParsePasswords(f *testing.F) {
	f.Add(fixturePBKDF2+"\n"+fixtureSHA512+"\n", 10)
	f.Add("# c\n\nalice:$7$1$sS+uXKQOcDh5lr0I$"+strings.Split(fixturePBKDF2, "$")[4], 3)
	f.Add("bob:$6$$\n", 0)
	f.Add("a:b:c\n:\n", 2)
	f.Fuzz(func(t *testing.T, text string, cut int) {
		p, err := ParsePasswords(strings.NewReader(text), "f")
		if cut < 0 || cut > len(text) {
			cut = len(text) / 2
		}
		p2, err2 := ParsePasswords(io.MultiReader(strings.NewReader(text[:cut]), strings.NewReader(text[cut:])), "f")
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("split read changed the result: %v vs %v", err, err2)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if p.Len() != p2.Len() {
			t.Fatalf("split read changed Len: %d vs %d", p.Len(), p2.Len())
		}
		for user, e := range p.users {
			if e.iter > 1000 {
				continue // keep each run fast
			}
			p.Check(user, []byte("secret"))
		}
	})
}

// FuzzParseACL: no input panics, and an accepted file answers every kind of
// request without panicking; a topic name and the same string as a filter
// get the same read verdict when it holds no wildcard.
func FuzzParseACL(f *testing.F) {
	f.Add(testACL, "c1", "alice", "alice/x")
	f.Add(crossACL, "dev1", "", "devices/dev1/up")
	f.Add("pattern read %c/%u/%\n", "+", "#", "$SYS/x")
	f.Add("topic\t#\nuser \t\n", "", "", "/")
	f.Fuzz(func(t *testing.T, text, id, user, topic string) {
		a, err := ParseACL(strings.NewReader(text), "f")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		for _, anon := range []bool{false, true} {
			a.CanPublish(id, user, anon, topic)
			r := a.CanRead(id, user, anon, topic)
			s := a.CanSubscribe(id, user, anon, topic)
			if !strings.ContainsAny(topic, "+#") && r != s {
				t.Fatalf("CanRead %v != CanSubscribe %v for %q", r, s, topic)
			}
		}
	})
}

// matchRef is the subscription matching rule written the obvious way, as an
// oracle for covers on topic names.
func matchRef(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// FuzzCovers checks covers against matchRef on topic names, and checks that
// whenever a rule covers a filter it matches every topic the filter matches
// among a few derived topics.
func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{{"a/#", "a"}, {"+/b", "$x/b"}, {"a/+/c", "a//c"}, {"#", "a/+/#"}, {"a/+", "a/#"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rule, f string) {
		if !validFilter(rule) || !validFilter(f) {
			return
		}
		if !strings.ContainsAny(f, "+#") {
			if got, want := covers(rule, f), matchRef(rule, f); got != want {
				t.Fatalf("covers(%q, %q) = %v, reference says %v", rule, f, got, want)
			}
			return
		}
		if !covers(rule, f) {
			return
		}
		// Instantiate the filter's wildcards a few ways; the rule must match each.
		for _, fill := range []string{"x", "", "$x", "x/y"} {
			topic := strings.ReplaceAll(strings.ReplaceAll(f, "+", fill), "/#", "/"+fill)
			topic = strings.ReplaceAll(topic, "#", fill)
			if strings.Contains(fill, "/") && strings.Contains(f, "+") {
				continue // '+' stands for one level only
			}
			if topic == "" || !matchRef(f, topic) {
				continue
			}
			if !matchRef(rule, topic) {
				t.Fatalf("covers(%q, %q) but %q matches only the filter", rule, f, topic)
			}
		}
	})
}
