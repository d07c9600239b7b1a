// Package idle keeps quiet network connections without a goroutine each.
//
// A server that gives every connection a reader goroutine pays for that goroutine's stack, and
// for its read buffer, for as long as the client stays quiet: with thousands of clients that
// is most of a small broker's memory. Here a reader with nothing left to read parks its
// connection and returns. A Poller watches every parked connection in one epoll set, and runs
// the connection's resume function in a new goroutine when one of these happens first:
//   - the socket becomes readable (data, end of stream, or an error);
//   - the deadline given to Park passes;
//   - Stop is called.
//
// Call order for one connection: Watch once; then, from the goroutine that reads it, Park
// whenever there is nothing to read. If Park returns true, that goroutine must stop touching
// the connection: resume will run (exactly once per successful Park). If it returns false,
// the connection was not parked and the caller goes on reading. Stop may be called from any
// goroutine, at any time, and more than once; after it the connection never parks again.
// Release it when the connection ends.
//
// Resumes run at most maxResuming at a time, so that thousands of connections woken together
// (clients leaving at once after a drain) do not bring back thousands of goroutines at once. A
// resume holds its slot until it calls Settle, parks or is released; a woken connection waits
// for a slot, without a goroutine, for resumeWait at most, and then runs anyway: a resume may
// block on what only a waiting connection would bring.
//
// A resume may occasionally come without anything to read (an event of an earlier park seen
// late): the reader then simply blocks in its read as it would have without parking, holding
// its slot until something comes.
//
// Only plain sockets (net.TCPConn, net.UnixConn) on Linux can be parked; Watch returns nil
// for anything else (a TLS connection keeps decrypted bytes of its own), and New fails on
// other systems. The caller then keeps a reader goroutine per connection.
package idle
