package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests run the real binary with Debian's mosquitto clients: who may connect (password
// files written by mosquitto_passwd), what they may do (ACL), and TLS with client certificates.

var brokerBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgebroker-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokerBinary = filepath.Join(dir, "edgebroker")
	if out, err := exec.Command("go", "build", "-o", brokerBinary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the broker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// runBroker starts the binary with args plus a temporary data dir, waits until addr accepts
// connections, and stops it when the test ends.
func runBroker(t *testing.T, addr string, args ...string) {
	t.Helper()
	var log strings.Builder
	cmd := exec.Command(brokerBinary, append(args, "--data-dir", t.TempDir())...)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not listening on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mosquitto runs one of Debian's mosquitto clients and reports whether it succeeded.
func mosquitto(t *testing.T, tool string, args ...string) (bool, string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is missing: install Debian's mosquitto-clients (.ci/run does)", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	return err == nil, string(out)
}

func TestPasswordFileAndACL(t *testing.T) {
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Fatal("mosquitto_passwd is missing: install Debian's mosquitto package (.ci/run does)")
	}
	for _, u := range [][2]string{{"alice", "wonder"}, {"bob", "builder"}} {
		args := []string{"-b", pwFile, u[0], u[1]}
		if u[0] == "alice" {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	os.WriteFile(aclFile, []byte("user alice\ntopic readwrite sensors/#\n\nuser bob\ntopic read sensors/#\n"), 0o600)
	port := freePort(t)
	runBroker(t, "127.0.0.1:"+port, "--listen", "127.0.0.1:"+port, "--password-file", pwFile, "--acl-file", aclFile)

	pub := func(user, pass, topic string) (bool, string) {
		args := []string{"-h", "127.0.0.1", "-p", port, "-t", topic, "-m", "x", "-q", "1", "-V", "mqttv5"}
		if user != "" {
			args = append(args, "-u", user, "-P", pass)
		}
		return mosquitto(t, "mosquitto_pub", args...)
	}
	if ok, out := pub("alice", "wonder", "sensors/t"); !ok {
		t.Fatalf("alice with her password refused: %s", out)
	}
	if ok, _ := pub("alice", "wrong", "sensors/t"); ok {
		t.Fatal("a wrong password was accepted")
	}
	if ok, _ := pub("", "", "sensors/t"); ok {
		t.Fatal("an anonymous client got in with a password file and no --allow-anonymous")
	}
	// bob may read but not write sensors/#: a 5.0 publish is refused with 0x87, which
	// mosquitto_pub reports as a failure.
	if ok, out := pub("bob", "builder", "sensors/t"); ok && !strings.Contains(out, "authoriz") {
		t.Fatalf("bob's publish was not refused: %q", out)
	}
	// bob subscribes and receives what alice publishes; a retained message proves the read
	// check on delivery.
	if ok, out := mosquitto(t, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", "alice", "-P", "wonder",
		"-t", "sensors/r", "-m", "kept", "-r", "-q", "1"); !ok {
		t.Fatalf("retained publish: %s", out)
	}
	ok, out := mosquitto(t, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-u", "bob", "-P", "builder",
		"-t", "sensors/#", "-C", "1", "-W", "5", "-q", "1")
	if !ok || strings.TrimSpace(out) != "kept" {
		t.Fatalf("bob did not get the retained message: ok=%v %q", ok, out)
	}
}

func TestAnonymousOnTheNetworkNeedsConsent(t *testing.T) {
	out, err := exec.Command(brokerBinary, "--listen", "0.0.0.0:0", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--password-file") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("want a one-line refusal naming --password-file, got %v: %q", err, out)
	}
	if code := err.(*exec.ExitError).ExitCode(); code != 2 {
		t.Fatalf("exit code %d, want 2 (bad configuration)", code)
	}
}

// certs writes a CA, a server certificate for 127.0.0.1 and a client certificate with common
// name "device1", all signed by the CA, and returns their file names.
func certs(t *testing.T) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, name string) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.crt", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, "server")
	clientCert, clientKey = leaf(3, "device1", x509.ExtKeyUsageClientAuth, "client")
	return
}

func TestTLSWithClientCertificates(t *testing.T) {
	ca, srvCert, srvKey, cliCert, cliKey := certs(t)
	aclFile := filepath.Join(t.TempDir(), "acl")
	os.WriteFile(aclFile, []byte("user device1\ntopic readwrite devices/%u/#\npattern readwrite devices/%u/#\n"), 0o600)
	plain, secure := freePort(t), freePort(t)
	runBroker(t, "127.0.0.1:"+secure, "--listen", "127.0.0.1:"+plain, "--tls-listen", "127.0.0.1:"+secure,
		"--tls-cert", srvCert, "--tls-key", srvKey, "--tls-client-ca", ca, "--tls-cert-as-username", "--acl-file", aclFile)
	tlsArgs := []string{"-h", "127.0.0.1", "-p", secure, "--cafile", ca, "-q", "1", "-m", "x"}
	if ok, out := mosquitto(t, "mosquitto_pub", append(tlsArgs, "--cert", cliCert, "--key", cliKey, "-t", "devices/device1/t")...); !ok {
		t.Fatalf("a client with a certificate was refused: %s", out)
	}
	if ok, _ := mosquitto(t, "mosquitto_pub", append(tlsArgs, "-t", "devices/device1/t")...); ok {
		t.Fatal("a client without a certificate got in")
	}
	// The certificate's name is the user name the ACL sees: another device's topics are off
	// limits (5.0: PUBACK 0x87).
	if ok, out := mosquitto(t, "mosquitto_pub", append(tlsArgs, "--cert", cliCert, "--key", cliKey,
		"-t", "devices/device2/t", "-V", "mqttv5")...); ok && !strings.Contains(out, "authoriz") {
		t.Fatalf("device1 published to device2's topic: %q", out)
	}
}
