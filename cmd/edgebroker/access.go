package main

import (
	"fmt"
	"net"
	"sync/atomic"

	"edgebroker/codec"
	"edgebroker/session"
	"edgebroker/session/auth"
)

// access is the broker's Authorizer: the password file decides who may connect and the ACL file
// what they may do. Both are swapped whole on reload; a file that fails to load keeps the old
// one in force.
type access struct {
	allowAnonymous bool
	passwordFile   string
	aclFile        string
	passwords      atomic.Pointer[auth.Passwords] // nil without a password file
	acl            atomic.Pointer[auth.ACL]       // nil without an ACL file: everything allowed
}

// newAccess loads the files the configuration names; nil when it names none.
func newAccess(cfg *config) (*access, error) {
	if cfg.passwordFile == "" && cfg.aclFile == "" {
		return nil, nil
	}
	a := &access{allowAnonymous: cfg.allowAnonymous, passwordFile: cfg.passwordFile, aclFile: cfg.aclFile}
	return a, a.load()
}

// load reads both files and puts them in force only if both are valid.
func (a *access) load() error {
	var pw *auth.Passwords
	var acl *auth.ACL
	var err error
	if a.passwordFile != "" {
		if pw, err = auth.LoadPasswords(a.passwordFile); err != nil {
			return err
		}
	}
	if a.aclFile != "" {
		if acl, err = auth.LoadACL(a.aclFile); err != nil {
			return err
		}
	}
	a.passwords.Store(pw)
	a.acl.Store(acl)
	return nil
}

// Authenticate implements session.Authorizer. Without a password file any user name is
// accepted, as Mosquitto does; with one, a client without a user name gets in only with
// --allow-anonymous, and a certificate's identity needs no password.
func (a *access) Authenticate(c session.ClientInfo, password []byte, hasPassword bool) codec.ReasonCode {
	p := a.passwords.Load()
	switch {
	case p == nil || c.Certified:
		return codec.Success
	case !c.HasUsername:
		if a.allowAnonymous {
			return codec.Success
		}
		return codec.NotAuthorized
	case hasPassword && p.Check(c.Username, password):
		return codec.Success
	}
	return codec.BadUsernameOrPassword
}

// CanPublish implements session.Authorizer.
func (a *access) CanPublish(c session.ClientInfo, topic string) bool {
	acl := a.acl.Load()
	return acl == nil || acl.CanPublish(c.ClientID, c.Username, !c.HasUsername, topic)
}

// CanSubscribe implements session.Authorizer.
func (a *access) CanSubscribe(c session.ClientInfo, filter string) bool {
	acl := a.acl.Load()
	return acl == nil || acl.CanSubscribe(c.ClientID, c.Username, !c.HasUsername, filter)
}

// CanRead implements session.Authorizer.
func (a *access) CanRead(c session.ClientInfo, topic string) bool {
	acl := a.acl.Load()
	return acl == nil || acl.CanRead(c.ClientID, c.Username, !c.HasUsername, topic)
}

// checkExposure refuses to listen beyond this machine with nobody checked at the door: a
// gateway's LAN is full of devices nobody audits (as Mosquitto 2 does).
func checkExposure(cfg *config) error {
	if cfg.passwordFile != "" || cfg.set["allow-anonymous"] || cfg.certAsUsername {
		return nil
	}
	for _, addr := range append(append([]string{}, cfg.listen...), cfg.tlsListen...) {
		if !isLoopback(addr) {
			return fmt.Errorf("listening on %s would let anyone on the network in: give --password-file FILE "+
				"(edgebroker passwd FILE USER makes one) or say --allow-anonymous", addr)
		}
	}
	return nil
}

// isLoopback reports whether a listen address only accepts connections from this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
