package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// checkTLSFlags checks that the TLS settings come as a usable set.
func checkTLSFlags(cfg *config) error {
	if len(cfg.tlsListen) == 0 {
		if cfg.tlsCert != "" || cfg.tlsKey != "" || cfg.tlsClientCA != "" || cfg.certAsUsername {
			return errors.New("--tls-cert, --tls-key, --tls-client-ca and --tls-cert-as-username need --tls-listen")
		}
		return nil
	}
	if cfg.tlsCert == "" || cfg.tlsKey == "" {
		return errors.New("--tls-listen needs --tls-cert and --tls-key")
	}
	if cfg.certAsUsername && cfg.tlsClientCA == "" {
		return errors.New("--tls-cert-as-username needs --tls-client-ca (client certificates must be verified)")
	}
	return nil
}

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
