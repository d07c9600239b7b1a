package session

import (
	"edgebroker/codec"
)

// ClientInfo identifies a connected client to an Authorizer.
type ClientInfo struct {
	ClientID    string
	Username    string
	HasUsername bool   // CONNECT carried a user name (or a certificate supplied one)
	Certified   bool   // the user name is a verified TLS client certificate's common name
	Remote      string // the peer's address
}

// Authorizer decides who may connect and what a client may publish, subscribe to and receive.
// Implementations must be safe for concurrent use and cheap: CanRead is asked for every
// delivery, and Authenticate once per connection (which is the place to pay for a slow
// password hash).
type Authorizer interface {
	// Authenticate checks CONNECT's credentials. It returns Success, BadUsernameOrPassword or
	// NotAuthorized (for example an anonymous client where anonymous access is off).
	Authenticate(c ClientInfo, password []byte, hasPassword bool) codec.ReasonCode
	// CanPublish reports whether the client may publish to topic (its will included).
	CanPublish(c ClientInfo, topic string) bool
	// CanSubscribe reports whether the client may subscribe to filter.
	CanSubscribe(c ClientInfo, filter string) bool
	// CanRead reports whether a message on topic may be delivered to the client.
	CanRead(c ClientInfo, topic string) bool
}

// clientInfo builds what the Authorizer sees of this connection. With Options.CertAsUsername
// the verified client certificate's common name (from Options.PeerName) is the user name,
// whatever CONNECT says.
func (c *conn) clientInfo(cp *codec.Connect) ClientInfo {
	info := ClientInfo{ClientID: c.clientID, Username: cp.Username, HasUsername: cp.UsernameFlag, Remote: c.remote}
	if o := c.b.o(); o.CertAsUsername {
		info.Username, info.HasUsername = "", false
		if o.PeerName != nil {
			if name, ok := o.PeerName(c.nc); ok {
				info.Username, info.HasUsername, info.Certified = name, true, true
			}
		}
	}
	return info
}
