package auth

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Format constants of Mosquitto's password file. Never change them: files
// written by mosquitto_passwd and by HashPassword must keep verifying.
const (
	// DefaultIterations is the PBKDF2 iteration count HashPassword writes:
	// the default of current Mosquitto (2.0 wrote 101; every version reads
	// the count from the line, so both verify everywhere).
	DefaultIterations = 1000

	saltLen = 12 // bytes of salt before base64; Mosquitto rejects any other length
	hashLen = 64 // bytes of SHA-512 output before base64

	// maxIterations bounds the iteration count read from a file, so that one
	// mistyped line cannot make every CONNECT of that user take minutes.
	maxIterations = 1 << 24

	// maxLine bounds a line of a password or ACL file.
	maxLine = 1 << 20
)

// The two hash schemes of Mosquitto's password file, named by the digit
// between the first two '$' of the hash field.
const (
	schemeSHA512 = '6' // base64(sha512(password || salt))
	schemePBKDF2 = '7' // base64(PBKDF2-HMAC-SHA512(password, salt, iterations, 64))
)

var (
	// ErrSyntax reports a malformed line in a password or ACL file; the
	// wrapping error names the file and line.
	ErrSyntax = errors.New("auth: syntax error")
	// ErrUsername reports a user name that a password file cannot hold.
	ErrUsername = errors.New("auth: invalid username")
)

// entry is one user's stored hash.
type entry struct {
	scheme byte
	iter   int
	salt   []byte
	sum    []byte
}

// digest hashes password the way e was hashed. The error comes only from
// PBKDF2 parameters that parsing already bounded.
func (e *entry) digest(password []byte) ([]byte, error) {
	if e.scheme == schemeSHA512 {
		h := sha512.New()
		h.Write(password)
		h.Write(e.salt)
		return h.Sum(nil), nil
	}
	return pbkdf2.Key(sha512.New, string(password), e.salt, e.iter, hashLen)
}

// Passwords is a parsed password file. It is immutable once loaded and safe
// for concurrent use; to reload, load a new value and swap a pointer.
type Passwords struct {
	users map[string]entry
	// decoy is hashed instead when the user is unknown, so that an unknown
	// user costs what a known one does. It has the scheme and iteration
	// count of the file's last entry and a sum that no password produces.
	decoy entry
}

// LoadPasswords reads and parses the password file at path.
func LoadPasswords(path string) (*Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: password file: %w", err)
	}
	defer f.Close()
	return ParsePasswords(f, path)
}

// ParsePasswords parses a password file in Mosquitto's format from r; name is
// used in error messages. Every non-blank line that does not start with '#'
// must be "user:$7$iterations$salt$hash" or "user:$6$salt$hash" with standard
// padded base64, a 12-byte salt and a 64-byte hash; a user may appear once.
// The first offending line is reported as "auth: syntax error: name:line: why".
func ParsePasswords(r io.Reader, name string) (*Passwords, error) {
	p := &Passwords{
		users: make(map[string]entry),
		decoy: entry{scheme: schemePBKDF2, iter: DefaultIterations, salt: make([]byte, saltLen), sum: make([]byte, hashLen)},
	}
	err := eachLine(r, name, func(line string) error {
		user, e, err := parseEntry(line)
		if err != nil {
			return err
		}
		if _, dup := p.users[user]; dup {
			return fmt.Errorf("user %q appears twice", user)
		}
		p.users[user] = e
		p.decoy.scheme, p.decoy.iter = e.scheme, e.iter
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// eachLine calls fn with every line of r that is neither blank nor a '#'
// comment, trimmed of surrounding white space, and turns fn's error into a
// one-line ErrSyntax naming name and the line number.
func eachLine(r io.Reader, name string, fn func(line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%w: %s:%d: %v", ErrSyntax, name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s:%d: %v", ErrSyntax, name, n+1, err)
	}
	return nil
}

// parseEntry parses one "user:hash" line.
func parseEntry(line string) (string, entry, error) {
	user, hash, ok := strings.Cut(line, ":")
	if !ok {
		return "", entry{}, errors.New(`want "user:hash"`)
	}
	user, hash = strings.TrimSpace(user), strings.TrimSpace(hash)
	if err := validUser(user); err != nil {
		return "", entry{}, err
	}
	fields := strings.Split(hash, "$")
	var e entry
	var salt, sum string
	switch {
	case len(fields) == 4 && fields[0] == "" && fields[1] == string(rune(schemeSHA512)):
		e.scheme, salt, sum = schemeSHA512, fields[2], fields[3]
	case len(fields) == 5 && fields[0] == "" && fields[1] == string(rune(schemePBKDF2)):
		iter, err := strconv.Atoi(fields[2])
		if err != nil || iter < 1 || iter > maxIterations {
			return "", entry{}, fmt.Errorf("user %q: iteration count %q is not in 1..%d", user, fields[2], maxIterations)
		}
		e.scheme, e.iter, salt, sum = schemePBKDF2, iter, fields[3], fields[4]
	default:
		return "", entry{}, fmt.Errorf("user %q: password is not a $6$salt$hash or $7$iterations$salt$hash value", user)
	}
	var err error
	if e.salt, err = decodeExact(salt, saltLen); err != nil {
		return "", entry{}, fmt.Errorf("user %q: salt: %v", user, err)
	}
	if e.sum, err = decodeExact(sum, hashLen); err != nil {
		return "", entry{}, fmt.Errorf("user %q: hash: %v", user, err)
	}
	return user, e, nil
}

// decodeExact decodes standard padded base64 that must hold exactly n bytes.
func decodeExact(s string, n int) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(b) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), n)
	}
	return b, nil
}

// validUser reports why user cannot be a password file's user name: empty,
// starting with '#' (read as a comment), holding ':' (the field separator), a
// control character or invalid UTF-8 (not an MQTT string), or white space at
// either end (trimmed when read).
func validUser(user string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: empty", ErrUsername)
	case user[0] == '#':
		return fmt.Errorf("%w: %q starts with '#'", ErrUsername, user)
	case !utf8.ValidString(user):
		return fmt.Errorf("%w: not UTF-8", ErrUsername)
	case strings.TrimSpace(user) != user:
		return fmt.Errorf("%w: %q has white space at an end", ErrUsername, user)
	case strings.ContainsFunc(user, func(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %q holds ':' or a control character", ErrUsername, user)
	}
	return nil
}

// Len returns the number of users in the file.
func (p *Passwords) Len() int {
	if p == nil {
		return 0
	}
	return len(p.users)
}

// Check reports whether password is user's password. The comparison is
// constant-time, and an unknown user costs the same hash computation as a
// known one. Check is deliberately expensive (a PBKDF2 derivation for $7$
// entries): callers check once per CONNECT, never per packet. A nil
// *Passwords accepts nobody.
func (p *Passwords) Check(user string, password []byte) bool {
	if p == nil {
		return false
	}
	e, known := p.users[user]
	if !known {
		e = p.decoy
	}
	got, err := e.digest(password)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, e.sum) == 1 && known
}

// HashPassword returns the hash field of a password file line for password:
// "$7$1000$" then a fresh random 12-byte salt and the PBKDF2-HMAC-SHA512
// derivation, both in standard base64, exactly as mosquitto_passwd writes.
func HashPassword(password []byte) (string, error) {
	e := entry{scheme: schemePBKDF2, iter: DefaultIterations, salt: make([]byte, saltLen)}
	if _, err := rand.Read(e.salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	sum, err := e.digest(password)
	if err != nil {
		return "", fmt.Errorf("auth: hash: %w", err)
	}
	enc := base64.StdEncoding
	return "$7$" + strconv.Itoa(e.iter) + "$" + enc.EncodeToString(e.salt) + "$" + enc.EncodeToString(sum), nil
}

// SetPassword adds user with password to the password file at path, or
// replaces the user's line where it stands; every other line is kept byte for
// byte (a later duplicate of user's line is dropped). A missing file is
// created. The new file is written beside the old one, synced and renamed over
// it, then the directory is synced: a crash leaves the old file or the new,
// never a mix. The file gets mode 0600 and the caller's ownership.
func SetPassword(path, user string, password []byte) error {
	if err := validUser(user); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("auth: password file: %w", err)
	}
	newLine := []byte(user + ":" + hash)
	var out bytes.Buffer
	replaced := false
	for line := range bytes.Lines(old) {
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(name)) == user {
			if !replaced {
				out.Write(newLine)
				out.WriteByte('\n')
				replaced = true
			}
			continue
		}
		out.Write(line)
		if !bytes.HasSuffix(line, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	if !replaced {
		out.Write(newLine)
		out.WriteByte('\n')
	}
	return writeAtomic(path, out.Bytes())
}

// writeAtomic replaces the file at path with data, mode 0600: temp file in
// the same directory, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("auth: password file: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("auth: password file directory: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("auth: password file directory: %w", err)
	}
	return nil
}
