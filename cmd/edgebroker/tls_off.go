//go:build notls

package main

import (
	"errors"
	"net"
)

// Builds with the notls tag leave Go's TLS and certificate code out: about 2 MB, which the
// smallest routers' flash feels (the ipk for mips and mipsle is built so, as OpenWrt's
// mosquitto-nossl is). The TLS flags are refused with a line saying so.

// tlsBuilt says this binary does not speak TLS.
const tlsBuilt = false

// tlsSettings is empty without TLS.
type tlsSettings struct{}

// newTLSSettings refuses TLS listeners.
func newTLSSettings(cfg *config) (*tlsSettings, error) {
	if len(cfg.tlsListen) > 0 {
		return nil, errors.New("this build has no TLS: use the edgebroker-linux-<arch>-tls binary")
	}
	return nil, nil
}

func (*tlsSettings) load() error { return nil }

func tlsListener(ln net.Listener, _ *tlsSettings) net.Listener { return ln }

func peerCommonName(net.Conn) (string, bool) { return "", false }
