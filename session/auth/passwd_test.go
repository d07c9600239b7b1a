package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Lines written by Debian's mosquitto_passwd 2.0.11; the password of each is
// "secret".
const (
	// mosquitto_passwd -b FILE alice secret
	//   user  : scheme $ iterations $ salt (12 bytes b64) $ PBKDF2 (64 bytes b64)
	fixturePBKDF2 = "alice:$7$101$sS+uXKQOcDh5lr0I$8ou3wzJSINBPM6xTlud1cn6SL3/b530Ub7DTSG/f3hJesYFWKKdFMIpF4lou8CuhtCx+eTJg71oUSKIO4x/mtA=="
	// mosquitto_passwd -H sha512 -b FILE bob secret
	//   user: scheme $ salt (12 bytes b64) $ sha512(password||salt) (64 bytes b64)
	fixtureSHA512 = "bob:$6$Ilbub7Q/+1h3sJsp$ReWXGSdphHMVXTvPGWQOl+vBzm98reZooWWURlONtfb+VdJXmJnvFeItbxsA5h+WZPtYYbTXD8NWNo4rYCC51A=="
)

func parsePW(t *testing.T, text string) *Passwords {
	t.Helper()
	p, err := ParsePasswords(strings.NewReader(text), "pw")
	if err != nil {
		t.Fatalf("ParsePasswords: %v", err)
	}
	return p
}

func TestCheckFixtures(t *testing.T) {
	p := parsePW(t, "# users\n\n"+fixturePBKDF2+"\n  "+fixtureSHA512+"  \r\n")
	if p.Len() != 2 {
		t.Fatalf("Len = %d, want 2", p.Len())
	}
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"alice", "secret", true},
		{"alice", "secreT", false},
		{"alice", "", false},
		{"bob", "secret", true},
		{"bob", "secret ", false},
		{"carol", "secret", false}, // unknown user
		{"", "", false},
		{"Alice", "secret", false}, // user names are case-sensitive
	} {
		if got := p.Check(tc.user, []byte(tc.password)); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
	var none *Passwords
	if none.Check("alice", []byte("secret")) || none.Len() != 0 {
		t.Error("a nil *Passwords accepted a user")
	}
}

func TestParsePasswordsErrors(t *testing.T) {
	salt := "sS+uXKQOcDh5lr0I" // 12 bytes
	sum := strings.Split(fixturePBKDF2, "$")[4]
	for _, tc := range []struct {
		name, line, want string
	}{
		{"no colon", "alice", `want "user:hash"`},
		{"plain text", "alice:secret", "not a $6$"},
		{"empty user", ":$7$101$" + salt + "$" + sum, "empty"},
		{"unknown scheme", "alice:$5$" + salt + "$" + sum, "not a $6$"},
		{"$7$ missing iterations", "alice:$7$" + salt + "$" + sum, "not a $6$"},
		{"$6$ with iterations", "alice:$6$101$" + salt + "$" + sum, "not a $6$"},
		{"zero iterations", "alice:$7$0$" + salt + "$" + sum, "iteration count"},
		{"negative iterations", "alice:$7$-5$" + salt + "$" + sum, "iteration count"},
		{"huge iterations", "alice:$7$99999999999$" + salt + "$" + sum, "iteration count"},
		{"salt not base64", "alice:$7$101$sS+uXKQOcDh5lr0!$" + sum, "salt: not base64"},
		{"salt 9 bytes", "alice:$7$101$sS+uXKQOcDh5$" + sum, "salt: 9 bytes, want 12"},
		{"hash 63 bytes", "alice:$7$101$" + salt + "$" + sum[:84] + "", "hash: 63 bytes, want 64"},
		{"hash unpadded", "alice:$7$101$" + salt + "$" + strings.TrimRight(sum, "="), "hash: not base64"},
		{"extra field", "alice:$7$101$" + salt + "$" + sum + "$x", "not a $6$"},
		{"extra colon", "alice:$7$101$" + salt + "$" + sum + ":x", "hash: not base64"},
		{"control char in user", "al\x01ice:$7$101$" + salt + "$" + sum, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "# header\n" + fixtureSHA512 + "\n\n" + tc.line + "\n"
			_, err := ParsePasswords(strings.NewReader(text), "pw.txt")
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("err = %v, want ErrSyntax", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "auth: syntax error: pw.txt:4: ") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("err = %q, want one line naming pw.txt:4 and %q", msg, tc.want)
			}
		})
	}
	if _, err := ParsePasswords(strings.NewReader(fixtureSHA512+"\n"+fixtureSHA512), "pw"); err == nil || !strings.Contains(err.Error(), "pw:2: user \"bob\" appears twice") {
		t.Errorf("duplicate user: err = %v", err)
	}
	if _, err := ParsePasswords(strings.NewReader(strings.Repeat("x", maxLine+1)), "pw"); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "pw:1:") {
		t.Errorf("over-long line: err = %v", err)
	}
	if _, err := LoadPasswords(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestHashPasswordRoundTrip(t *testing.T) {
	h1, err := HashPassword([]byte("pässword"))
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword([]byte("pässword"))
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	// $7$ iterations $ 16 chars of salt $ 88 chars of hash
	if f := strings.Split(h1, "$"); len(f) != 5 || f[1] != "7" || f[2] != "1000" || len(f[3]) != 16 || len(f[4]) != 88 {
		t.Errorf("hash %q does not have mosquitto_passwd's shape", h1)
	}
	p := parsePW(t, "u1:"+h1+"\nu2:"+h2+"\n")
	if !p.Check("u1", []byte("pässword")) || !p.Check("u2", []byte("pässword")) || p.Check("u1", []byte("password")) {
		t.Error("a HashPassword value does not verify its password only")
	}
}

func TestSetPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := SetPassword(path, "alice", []byte("one")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// Comments, another user (written by mosquitto_passwd), a later
	// duplicate of alice's line and a final line without a newline.
	head := "# managed by hand\n" + fixtureSHA512 + "\n\n"
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(head+string(b)+"# tail\nalice:junk\n# last, no newline"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "alice", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "carol", []byte("three")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	if len(lines) != 8 || lines[0] != "# managed by hand" || lines[1] != fixtureSHA512 || lines[2] != "" ||
		!strings.HasPrefix(lines[3], "alice:$7$1000$") || lines[4] != "# tail" || lines[5] != "# last, no newline" ||
		!strings.HasPrefix(lines[6], "carol:$7$") || lines[7] != "" {
		t.Fatalf("file after SetPassword:\n%s", b)
	}
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	for user, pw := range map[string]string{"alice": "two", "bob": "secret", "carol": "three"} {
		if !p.Check(user, []byte(pw)) {
			t.Errorf("%s does not verify after SetPassword", user)
		}
	}
	if p.Check("alice", []byte("one")) {
		t.Error("alice's old password still verifies")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after replacing a 0644 file, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temp files left behind?)", len(ents))
	}
}

func TestSetPasswordRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	for _, user := range []string{"", "a:b", "#admin", " alice", "alice\n", "bad\xff", "del\x7f"} {
		if err := SetPassword(path, user, []byte("x")); !errors.Is(err, ErrUsername) {
			t.Errorf("SetPassword(%q) = %v, want ErrUsername", user, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused SetPassword created the file")
	}
	if err := SetPassword(filepath.Join(dir, "no", "such", "dir"), "alice", []byte("x")); err == nil {
		t.Error("SetPassword into a missing directory succeeded")
	}
}
