package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, f string
		want    bool
	}{
		// rule against topic names: the subscription matching rules
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/", true}, // '+' matches an empty level
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+/+", "/x", true},
		{"a/#", "a", true}, // '#' matches its parent level
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "/", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		// '$' topics [MQTT-4.7.2-1]
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"$SYS/+/uptime", "$SYS/broker/uptime", true},
		{"$SYS/broker/uptime", "$SYS/broker/uptime", true},
		{"a/$SYS", "a/$SYS", true},
		{"+/$SYS", "a/$SYS", true},
		// rule against filters: containment
		{"a/#", "a/+/b", true},
		{"a/#", "a/#", true},
		{"a/#", "a/b/#", true},
		{"#", "+/#", true},
		{"#", "#", true},
		{"a/+", "a/+", true},
		{"a/+/#", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "+/b", false},
		{"a/b", "a/+", false},
		{"a/+/c", "a/+/+", false},
		{"+/+", "#", false},
		{"#", "$SYS/#", false},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/broker/#", "$SYS/#", false},
	} {
		if got := covers(tc.rule, tc.f); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.rule, tc.f, got, tc.want)
		}
		if got := covers([]byte(tc.rule), tc.f); got != tc.want {
			t.Errorf("covers([]byte %q, %q) = %v, want %v", tc.rule, tc.f, got, tc.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	for f, want := range map[string]bool{
		"a": true, "a/b": true, "/": true, "#": true, "+": true, "a/+/#": true, "+/+": true, "$SYS/#": true, "%c/%u": true,
		"": false, "a#": false, "a/#/b": false, "a+/b": false, "#/": false, "a/b+": false, "a\x00b": false,
	} {
		if got := validFilter(f); got != want {
			t.Errorf("validFilter(%q) = %v, want %v", f, got, want)
		}
	}
}

// testACL exercises every feature of the format.
const testACL = `# anonymous section: before the first user line
topic read public/#
topic anon/rw
topic	write	anon/in

user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/data
topic read $SYS/broker/#
pattern deny %c/private

user bob
topic write bob/out
# a second section for alice merges with the first
user alice
topic write alice-extra

user admin
topic readwrite #
topic read $SYS/#

pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern write tenants/%u/%c
pattern read 100%/literal
`

type aclRow struct {
	client, user string
	anon         bool
	op           byte // 'w' CanPublish, 'r' CanRead, 's' CanSubscribe
	topic        string
	want         bool
}

func (r aclRow) check(a *ACL) bool {
	switch r.op {
	case 'w':
		return a.CanPublish(r.client, r.user, r.anon, r.topic)
	case 'r':
		return a.CanRead(r.client, r.user, r.anon, r.topic)
	}
	return a.CanSubscribe(r.client, r.user, r.anon, r.topic)
}

func TestACLDecisions(t *testing.T) {
	a, err := ParseACL(strings.NewReader(testACL), "acl")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []aclRow{
		// anonymous section
		{"c1", "", true, 'r', "public/news", true},
		{"c1", "", true, 'w', "public/news", false},
		{"c1", "", true, 's', "public/#", true},
		{"c1", "", true, 's', "public/+/x", true},
		{"c1", "", true, 's', "#", false},
		{"c1", "", true, 'r', "anon/rw", true}, // no access word: readwrite
		{"c1", "", true, 'w', "anon/rw", true},
		{"c1", "", true, 'w', "anon/in", true}, // tabs separate words
		{"c1", "", true, 'r', "anon/in", false},
		{"c1", "", true, 'r', "alice/x", false},
		{"c1", "alice", true, 'r', "alice/x", false}, // anonymous: the user name is ignored
		// a user's section, not the anonymous one
		{"c1", "alice", false, 'w', "alice/x/y", true},
		{"c1", "alice", false, 'r', "alice", true},
		{"c1", "alice", false, 'r', "public/news", false},
		{"c1", "alice", false, 'w', "alice-extra", true}, // merged section
		{"c1", "bob", false, 'w', "alice/x", false},
		{"c1", "bob", false, 'w', "bob/out", true},
		{"c1", "bob", false, 'r', "bob/out", false},
		{"c1", "nobody", false, 'r', "alice/x", false}, // no section
		{"c1", "", false, 'r', "public/news", false},   // empty user name is a user, not anonymous
		// deny wins over a wider grant, for publish, read and subscribe
		{"c1", "alice", false, 'w', "alice/secret", false},
		{"c1", "alice", false, 'r', "alice/secret", false},
		{"c1", "alice", false, 's', "alice/secret", false},
		{"c1", "alice", false, 'r', "alice/secret/x", true}, // deny is exact here
		{"c1", "alice", false, 's', "alice/#", true},        // deny covers only part: delivery filters it
		{"c1", "alice", false, 's', "alice/+", true},
		// a deny pattern overrides a grant of the user's own section
		{"c1", "alice", false, 'r', "alice/private", true}, // the pattern names c1/private
		{"alice", "alice", false, 'r', "alice/private", false},
		{"alice", "alice", false, 's', "alice/private", false},
		// wildcards in rules
		{"c1", "alice", false, 'r', "shared/x/data", true},
		{"c1", "alice", false, 'r', "shared//data", true},
		{"c1", "alice", false, 'r', "shared/x/y/data", false},
		{"c1", "alice", false, 'w', "shared/x/data", false},
		// wildcards in subscription filters
		{"c1", "alice", false, 's', "shared/+/data", true},
		{"c1", "alice", false, 's', "shared/#", false},
		{"c1", "alice", false, 's', "shared/x/+", false},
		{"c1", "admin", false, 's', "#", true},
		{"c1", "admin", false, 's', "+/+/#", true},
		// $SYS
		{"c1", "admin", false, 'r', "$SYS/broker/uptime", true}, // only thanks to the $SYS rule
		{"c1", "admin", false, 's', "$SYS/#", true},
		{"c1", "admin", false, 's', "$SYS/broker/+", true},
		{"c1", "alice", false, 'r', "$SYS/broker/uptime", true},
		{"c1", "alice", false, 's', "$SYS/#", false},
		{"c1", "alice", false, 's', "$SYS/broker/#", true},
		{"c1", "bob", false, 'r', "$SYS/broker/uptime", false},
		{"c1", "", true, 'r', "$SYS/broker/uptime", false},
		// %c: everybody, anonymous included
		{"dev7", "", true, 'w', "devices/dev7/up", true},
		{"dev7", "", true, 'r', "devices/dev7/down/x", true},
		{"dev7", "", true, 'w', "devices/dev8/up", false},
		{"dev7", "bob", false, 's', "devices/dev7/#", true},
		{"dev7", "bob", false, 's', "devices/+/#", false},
		{"a/b", "", true, 'w', "devices/a/b/up", true}, // textual substitution: a '/' in the id adds a level
		{"", "", true, 'w', "devices//up", true},
		// %u: never for anonymous clients
		{"c1", "carol", false, 'r', "users/carol/inbox", true},
		{"c1", "carol", false, 'r', "users/dave/inbox", false},
		{"c1", "carol", true, 'r', "users/carol/inbox", false},
		{"c1", "", true, 'r', "users//inbox", false},
		{"c1", "", false, 'r', "users//inbox", true},
		{"c9", "carol", false, 'w', "tenants/carol/c9", true},
		{"c9", "carol", false, 'w', "tenants/carol/c8", false},
		// a '%' not followed by c or u is literal
		{"c1", "", true, 'r', "100%/literal", true},
		// wildcards in a client id or user name: nothing once patterns exist
		{"+", "", true, 'w', "devices/x/up", false},
		{"#", "", true, 'r', "public/news", false},
		{"c1", "ali+ce", false, 'r', "users/ali+ce/inbox", false},
		{"c1", "a#", true, 'r', "public/news", true}, // anonymous: the user name plays no part
	} {
		if got := r.check(a); got != r.want {
			t.Errorf("client %q user %q anonymous %v op %c %q = %v, want %v", r.client, r.user, r.anon, r.op, r.topic, got, r.want)
		}
	}
}

func TestACLWithoutPatterns(t *testing.T) {
	a, err := ParseACL(strings.NewReader("user alice\ntopic read a/#\n"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	// Without pattern rules a wildcard in the client id changes nothing.
	if !a.CanRead("+", "alice", false, "a/b") || a.CanRead("+", "alice", false, "b") {
		t.Error("topic rules misjudged a client id holding '+'")
	}
	var none *ACL
	if !none.CanPublish("c", "u", false, "x") || !none.CanSubscribe("c", "", true, "#") || !none.CanRead("c", "", true, "$SYS/x") {
		t.Error("a nil *ACL refused a request")
	}
	empty, err := ParseACL(strings.NewReader("# nothing\n"), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if empty.CanRead("c", "", true, "x") || empty.CanPublish("c", "u", false, "x") {
		t.Error("an empty ACL file granted a request")
	}
}

func TestParseACLErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"topics read a", `unknown keyword "topics"`},
		{"Topic read a", `unknown keyword "Topic"`},
		{"user", "user line without a name"},
		{"topic", "invalid topic filter"},
		{"topic rw a/b", `unknown access "rw"`},
		{"topic read", `access "read" but no topic`},
		{"pattern deny", `access "deny" but no topic`},
		{"topic read a/#/b", `invalid topic filter "a/#/b"`},
		{"pattern write a+", `invalid topic filter "a+"`},
	} {
		_, err := ParseACL(strings.NewReader("# first\nuser alice\n\n"+tc.line+"\n"), "acl.conf")
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: err = %v, want ErrSyntax", tc.line, err)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "auth: syntax error: acl.conf:4: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("%q: err = %q, want acl.conf:4 and %q", tc.line, msg, tc.want)
		}
	}
	// The rest of the line is the topic, spaces included.
	if a, err := ParseACL(strings.NewReader("topic read a b  \n"), "acl"); err != nil || !a.CanRead("c", "", true, "a b") || a.CanRead("c", "", true, "a") {
		t.Errorf("topic with a space: err %v, or misjudged", err)
	}
	path := filepath.Join(t.TempDir(), "acl")
	if _, err := LoadACL(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if err := os.WriteFile(path, []byte(testACL), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := LoadACL(path); err != nil || !a.CanRead("c", "", true, "public/x") {
		t.Errorf("LoadACL: %v", err)
	}
}
