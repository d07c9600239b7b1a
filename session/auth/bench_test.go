package auth

import (
	"strings"
	"testing"
)

// BenchmarkCheck measures one password check per scheme: the cost the engine
// pays once per CONNECT.
func BenchmarkCheck(b *testing.B) {
	h, err := HashPassword([]byte("secret"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := ParsePasswords(strings.NewReader(fixturePBKDF2+"\n"+fixtureSHA512+"\ncarol:"+h+"\n"), "pw")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, user string }{
		{"pbkdf2-1000", "carol"},
		{"pbkdf2-101", "alice"},
		{"sha512", "bob"},
		{"unknown-user", "nobody"}, // decoy: the file's last entry, pbkdf2-1000
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Check(bc.user, []byte("secret"))
			}
		})
	}
}

// BenchmarkACL measures the per-message checks: publish by a user with a
// section, delivery through a %c pattern, and a subscription by a user
// whose section is the tenth in the file.
func BenchmarkACL(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(testACL)
	for i := range 10 {
		sb.WriteString("user u" + string(rune('0'+i)) + "\ntopic read x/+/y\ntopic deny x/secret/y\ntopic readwrite sensors/#\n")
	}
	a, err := ParseACL(strings.NewReader(sb.String()), "acl")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		fn   func() bool
	}{
		{"publish-topic-rule", func() bool { return a.CanPublish("c1", "alice", false, "alice/kitchen/temperature") }},
		{"read-pattern-rule", func() bool { return a.CanRead("dev7", "", true, "devices/dev7/down/config") }},
		{"subscribe", func() bool { return a.CanSubscribe("c1", "u9", false, "sensors/+/temperature") }},
		{"refused", func() bool { return !a.CanPublish("c1", "bob", false, "alice/kitchen/temperature") }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !bc.fn() {
					b.Fatal("wrong verdict")
				}
			}
		})
	}
}
