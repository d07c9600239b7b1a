//go:build !notls

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

// tlsBuilt says this binary speaks TLS (see tls_off.go for builds without it).
const tlsBuilt = true

// tlsSettings holds the TLS configuration of the listeners; reload swaps in one built from the
// files again, so renewed certificates take effect on SIGHUP without dropping connections.
type tlsSettings struct {
	certFile, keyFile, caFile string
	current                   atomic.Pointer[tls.Config]
}

// newTLSSettings loads the certificate, key and client CA; nil when TLS is off.
func newTLSSettings(cfg *config) (*tlsSettings, error) {
	if len(cfg.tlsListen) == 0 {
		return nil, nil
	}
	t := &tlsSettings{certFile: cfg.tlsCert, keyFile: cfg.tlsKey, caFile: cfg.tlsClientCA}
	return t, t.load()
}

// load builds a new configuration from the files and puts it in force.
func (t *tlsSettings) load() error {
	cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: %s holds no PEM certificate", t.caFile)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	t.current.Store(c)
	return nil
}

// config is the listeners' configuration: every handshake takes the one in force.
func (t *tlsSettings) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.current.Load(), nil
		},
	}
}

// tlsListener serves TLS on ln with the configuration in force.
func tlsListener(ln net.Listener, t *tlsSettings) net.Listener {
	return tls.NewListener(ln, t.config())
}

// peerCommonName returns the common name of a TLS connection's verified client certificate.
func peerCommonName(nc net.Conn) (string, bool) {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return "", false
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.CommonName, true
	}
	return "", false
}
