package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Reloading the password, ACL and TLS files on SIGHUP, with the passwd subcommand writing the
// password file. A healthy anonymous pair (allowed by --allow-anonymous and the ACL's anonymous
// section) publishes throughout and loses nothing.

// Log lines of a failed reload.
const (
	accessNotReloaded = "password/ACL files not reloaded"
	tlsNotReloaded    = "TLS certificates not reloaded"
)

// hup sends SIGHUP to the broker.
func (b *broker) hup() {
	b.t.Helper()
	if err := syscall.Kill(b.pid(), syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
}

// hupFailing sends SIGHUP and waits for one more log line containing line: the reload failed.
func (b *broker) hupFailing(line string) {
	b.t.Helper()
	before := b.logCount(line)
	b.hup()
	checkFor(b.t, waitLong, pollEvery, func() error {
		if b.logCount(line) <= before {
			return fmt.Errorf("no new log line %q after SIGHUP", line)
		}
		return nil
	})
}

// passwd runs `edgebroker passwd file user` with the password on standard input.
func passwd(t *testing.T, file, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, brokerBin, "passwd", file, user)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("edgebroker passwd %s %s: %v\n%s", file, user, err, out)
	}
}

// writeFile writes data to name, failing t on error.
func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// login connects a 5.0 client with user name and password; the error is the refusal.
func login(b *broker, user, password string) (*client5, error) {
	c, err := dial5(b, &paho.Connect{ClientID: "login-" + user, CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// mustLogin fails t unless user gets in with password; the client is disconnected again.
func mustLogin(t *testing.T, b *broker, user, password string) {
	t.Helper()
	c, err := login(b, user, password)
	if err != nil {
		t.Fatalf("%s cannot connect: %v", user, err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
}

// mustNotLogin fails t if user gets in with password.
func mustNotLogin(t *testing.T, b *broker, user, password string) {
	t.Helper()
	if c, err := login(b, user, password); err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		t.Fatalf("%s connected, want a refusal", user)
	}
}

// subscribeReason subscribes c to filter at QoS 1 and returns the SUBACK's reason code.
func subscribeReason(t *testing.T, c *client5, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil && sa == nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	return sa.Reasons[0]
}

// TestSecurityReload: passwd adds a user and SIGHUP lets them in; a broken password file keeps
// the old one in force with an error line; an ACL rule granted on reload takes effect, and a
// broken ACL file keeps the old rules.
func TestSecurityReload(t *testing.T) {
	onlyOurs(t, "edgebroker passwd and our reload log lines")
	t.Parallel()
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	passwd(t, pwFile, "alice", "alice-pw")
	acl := "topic readwrite healthy/#\n\nuser alice\ntopic readwrite alice/#\n"
	writeFile(t, aclFile, acl)
	b := startBroker(t, brokerOptions{extraArgs: []string{"--password-file", pwFile, "--acl-file", aclFile, "--allow-anonymous"}})
	h := startHealthy(t, b, "security")

	mustLogin(t, b, "alice", "alice-pw")
	mustNotLogin(t, b, "alice", "wrong")
	mustNotLogin(t, b, "bob", "bob-pw")

	// A new user, added by the passwd subcommand.
	passwd(t, pwFile, "bob", "bob-pw")
	b.hup()
	checkFor(t, waitLong, pollEvery, func() error {
		c, err := login(b, "bob", "bob-pw")
		if err != nil {
			return fmt.Errorf("bob after reload: %w", err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
		return nil
	})
	mustLogin(t, b, "alice", "alice-pw")
	h.progress(t)

	// A broken password file: carol's valid line must not take effect, alice and bob stay.
	good, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	passwd(t, pwFile, "carol", "carol-pw")
	withCarol, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pwFile, string(withCarol)+"this line is not user:hash\n")
	b.hupFailing(accessNotReloaded)
	mustLogin(t, b, "alice", "alice-pw")
	mustLogin(t, b, "bob", "bob-pw")
	mustNotLogin(t, b, "carol", "carol-pw")
	writeFile(t, pwFile, string(good))
	h.progress(t)

	// An ACL rule granted on reload.
	alice, err := login(b, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.Disconnect(&paho.Disconnect{}) })
	if rc := subscribeReason(t, alice, "shared/news"); rc != 0x87 {
		t.Fatalf("alice subscribing to shared/news before the rule: reason 0x%02x, want 0x87 Not authorized", rc)
	}
	writeFile(t, aclFile, acl+"topic read shared/news\n")
	b.hup()
	checkFor(t, waitLong, pollEvery, func() error {
		if rc := subscribeReason(t, alice, "shared/news"); rc != 0x01 {
			return fmt.Errorf("alice subscribing to shared/news after the rule: reason 0x%02x, want 0x01", rc)
		}
		return nil
	})

	// A broken ACL file that would also drop the rule: the old rules stay.
	writeFile(t, aclFile, acl+"topic sideways shared/news\n")
	b.hupFailing(accessNotReloaded)
	if rc := subscribeReason(t, alice, "shared/news"); rc != 0x01 {
		t.Fatalf("after a broken ACL reload alice subscribing to shared/news: reason 0x%02x, want 0x01 (the old rules)", rc)
	}
	if rc := subscribeReason(t, alice, "elsewhere"); rc != 0x87 {
		t.Fatalf("after a broken ACL reload alice subscribing to elsewhere: reason 0x%02x, want 0x87", rc)
	}
	mustLogin(t, b, "bob", "bob-pw")
	h.finish(t)
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newTestCA makes a self-signed CA.
func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// writeServerCert writes a certificate for 127.0.0.1 with the given serial, signed by ca, and
// its key, as PEM files.
func (ca *testCA) writeServerCert(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "edgebroker e2e"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
}

// servedSerial makes a TLS connection to addr trusting ca and returns the serial number of the
// certificate the server presents.
func servedSerial(ca *testCA, addr string) (int64, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestSecurityTLSReload: after SIGHUP the TLS listener serves the renewed server certificate; a
// broken certificate file keeps the previous one, with an error line. The plain listener's
// healthy clients are unaffected.
func TestSecurityTLSReload(t *testing.T) {
	onlyOurs(t, "our reload log lines")
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	ca.writeServerCert(t, 100, certFile, keyFile)
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	b := startBroker(t, brokerOptions{extraArgs: []string{"--tls-listen", tlsAddr, "--tls-cert", certFile, "--tls-key", keyFile}})
	h := startHealthy(t, b, "tls")

	serialIs := func(want int64) func() error {
		return func() error {
			got, err := servedSerial(ca, tlsAddr)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("served certificate serial %d, want %d", got, want)
			}
			return nil
		}
	}
	checkFor(t, waitLong, pollEvery, serialIs(100))
	ca.writeServerCert(t, 101, certFile, keyFile)
	b.hup()
	checkFor(t, waitLong, pollEvery, serialIs(101))

	writeFile(t, certFile, "not a certificate\n")
	b.hupFailing(tlsNotReloaded)
	if err := serialIs(101)(); err != nil {
		t.Fatalf("after a broken certificate reload: %v", err)
	}
	h.progress(t) // the reloads can take less time than the healthy publisher's first tick
	h.finish(t)
}
