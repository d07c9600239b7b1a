package auth

// Tests against Debian's mosquitto package (mosquitto, mosquitto_passwd,
// mosquitto_pub): files it writes must verify here, files written here must
// work in the real broker, and ACL decisions must agree with it. CI installs
// the package; a missing command fails the test with the fix.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

const (
	waitLong  = 15 * time.Second
	pollEvery = 10 * time.Millisecond
)

// command returns the path of a program of the mosquitto package.
func command(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s not found: install Debian's mosquitto and mosquitto-clients packages (apt-get install mosquitto mosquitto-clients)", name)
	return ""
}

// mosquittoPasswd runs mosquitto_passwd with args.
func mosquittoPasswd(t *testing.T, path string, args ...string) {
	t.Helper()
	out, err := exec.Command(command(t, "mosquitto_passwd"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_passwd %v: %v\n%s", args, err, out)
	}
}

// startMosquitto starts the real broker on a free loopback port with the
// given configuration lines and returns its port; it is killed at cleanup.
func startMosquitto(t *testing.T, conf ...string) int {
	t.Helper()
	bin := command(t, "mosquitto")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		lines := append([]string{
			fmt.Sprintf("listener %d 127.0.0.1", port),
			"persistence false",
			"user " + u.Username, // as root, stay root so the test's files stay readable
		}, conf...)
		cfg := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var log syncBuffer
		cmd := exec.Command(bin, "-c", cfg)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if up(port, exited) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("mosquitto log:\n%s", log.String())
				}
			})
			return port
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("mosquitto did not start on port %d (attempt %d):\n%s", port, attempt+1, log.String())
	}
	t.Fatal("mosquitto did not start")
	return 0
}

// up polls until the port accepts connections or the broker exits.
func up(port int, exited <-chan struct{}) bool {
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return true
		}
		time.Sleep(pollEvery)
	}
	return false
}

// syncBuffer is a bytes.Buffer that the broker's output goroutine and the
// test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMosquittoPasswdFilesVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pw")
	mosquittoPasswd(t, path, "-c", "-b", path, "pbkdf2", "s3cret:with$signs")
	mosquittoPasswd(t, path, "-H", "sha512", "-b", path, "sha", "pässwörd")
	mosquittoPasswd(t, path, "-H", "sha512-pbkdf2", "-I", "2000", "-b", path, "iter", "x")
	mosquittoPasswd(t, path, "-b", path, "empty", "")
	p, err := LoadPasswords(path)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("LoadPasswords: %v\n%s", err, b)
	}
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"pbkdf2", "s3cret:with$signs", true},
		{"pbkdf2", "s3cret:with$sign", false},
		{"sha", "pässwörd", true},
		{"sha", "passwort", false},
		{"iter", "x", true},
		{"iter", "y", false},
		{"empty", "", true},
		{"empty", " ", false},
		{"nobody", "x", false},
	} {
		if got := p.Check(tc.user, []byte(tc.password)); got != tc.want {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

// pub runs mosquitto_pub as user and reports whether the broker accepted it.
func pub(t *testing.T, port int, user, password string) bool {
	t.Helper()
	cmd := exec.Command(command(t, "mosquitto_pub"), "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-u", user, "-P", password, "-t", "t", "-m", "x", "-q", "1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("mosquitto_pub: %v", err)
	}
	t.Logf("mosquitto_pub -u %s: err %v %s", user, err, bytes.TrimSpace(out))
	return err == nil
}

func TestMosquittoAcceptsSetPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	// A file begun by mosquitto_passwd, then edited here: one user replaced,
	// one added, one left alone.
	mosquittoPasswd(t, path, "-c", "-b", path, "old", "kept")
	mosquittoPasswd(t, path, "-b", path, "alice", "before")
	if err := SetPassword(path, "alice", []byte("wonder land")); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "bob", []byte("b:o$b")); err != nil {
		t.Fatal(err)
	}
	port := startMosquitto(t, "allow_anonymous false", "password_file "+path)
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"alice", "wonder land", true},
		{"alice", "before", false},
		{"bob", "b:o$b", true},
		{"bob", "b:o$", false},
		{"old", "kept", true},
		{"carol", "wonder land", false},
	} {
		if got := pub(t, port, tc.user, tc.password); got != tc.want {
			t.Errorf("mosquitto with our file: user %q password %q accepted = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

// crossACL is loaded by both the real broker and ParseACL. Every client may
// write and read sentinel/<client id>, which marks the end of a probe.
const crossACL = `topic read public/#
topic write anon/in
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/+/data
user admin
topic readwrite #
pattern readwrite sentinel/%c
pattern write devices/%c/up
pattern read users/%u/inbox
`

// client connects a 3.1.1 client to port; user "" connects anonymously.
// Every message it receives is appended to got.
func client(t *testing.T, port int, id, user string, got *syncBuffer) mqtt3.Client {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", port)).
		SetClientID(id).SetUsername(user).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
			fmt.Fprintf(got, "%s=%s\n", m.Topic(), m.Payload())
		})
	c := mqtt3.NewClient(o)
	wait(t, c.Connect(), "connect "+id)
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func wait(t *testing.T, tok mqtt3.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// waitFor polls got until it holds line.
func waitFor(t *testing.T, got *syncBuffer, line string) string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		if s := got.String(); strings.Contains(s, line+"\n") {
			return s
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("%q never arrived; got:\n%s", line, got.String())
	return ""
}

// TestMosquittoACLAgrees runs each row against the real broker and against
// ParseACL of the same file. A publish probe is the row's topic followed by
// the client's sentinel on one connection, watched by admin; a read probe is
// admin publishing the topic and then the sentinel to the subscribed client.
// Messages on one connection keep their order, so the sentinel's arrival
// without the probe before it proves the probe was refused: no timeouts.
func TestMosquittoACLAgrees(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(path, []byte(crossACL), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadACL(path)
	if err != nil {
		t.Fatal(err)
	}
	port := startMosquitto(t, "allow_anonymous true", "acl_file "+path)
	var adminGot syncBuffer
	admin := client(t, port, "admin-client", "admin", &adminGot)
	wait(t, admin.Subscribe("#", 1, nil), "admin subscribe")

	for i, r := range []aclRow{
		{"c1", "", true, 'r', "public/news", true},
		{"c2", "", true, 'w', "public/news", false},
		{"c3", "", true, 'w', "anon/in", true},
		{"c4", "", true, 'r', "anon/in", false},
		{"c5", "alice", false, 'w', "alice/x", true},
		{"c6", "alice", false, 'w', "alice/secret", false},
		{"c7", "alice", false, 'r', "alice/secret", false},
		{"c8", "alice", false, 'r', "alice/secret/x", true},
		{"c9", "alice", false, 'r', "public/news", false},
		{"c10", "alice", false, 'r', "shared/x/data", true},
		{"c11", "alice", false, 'r', "shared/x/y/data", false},
		{"c12", "alice", false, 'w', "shared/x/data", false},
		{"dev1", "", true, 'w', "devices/dev1/up", true},
		{"dev2", "", true, 'w', "devices/dev1/up", false},
		{"c13", "carol", false, 'r', "users/carol/inbox", true},
		{"c14", "carol", false, 'r', "users/dave/inbox", false},
		{"c15", "", true, 'r', "users//inbox", false},
		{"c16", "bob", false, 'w', "alice/x", false},
	} {
		if got := r.check(a); got != r.want {
			t.Errorf("ParseACL: client %q user %q op %c %q = %v, want %v", r.client, r.user, r.op, r.topic, got, r.want)
		}
		probe, end := fmt.Sprintf("probe-%d", i), fmt.Sprintf("end-%d", i)
		sentinel := "sentinel/" + r.client
		var got syncBuffer
		c := client(t, port, r.client, r.user, &got)
		var seen string
		if r.op == 'w' {
			wait(t, c.Publish(r.topic, 1, false, probe), "publish probe")
			wait(t, c.Publish(sentinel, 1, false, end), "publish sentinel")
			seen = waitFor(t, &adminGot, sentinel+"="+end)
		} else {
			wait(t, c.Subscribe(r.topic, 1, nil), "subscribe probe")
			wait(t, c.Subscribe(sentinel, 1, nil), "subscribe sentinel")
			wait(t, admin.Publish(r.topic, 1, false, probe), "admin publish probe")
			wait(t, admin.Publish(sentinel, 1, false, end), "admin publish sentinel")
			seen = waitFor(t, &got, sentinel+"="+end)
		}
		if mosq := strings.Contains(seen, r.topic+"="+probe+"\n"); mosq != r.want {
			t.Errorf("mosquitto: client %q user %q op %c %q = %v, want %v", r.client, r.user, r.op, r.topic, mosq, r.want)
		}
		c.Disconnect(0)
	}
}
