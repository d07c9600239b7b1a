// Package codec reads and writes MQTT control packets of protocol versions 3.1 (V31), 3.1.1
// (V311) and 5.0 (V5). It knows nothing of sessions: the broker engine decides what a packet
// means; the codec only decides whether its bytes are well formed.
//
// # Packet layout
//
// Every packet is a fixed header, a variable header and a payload:
//
//	byte 0     packet type (high nibble) and flags (low nibble; DUP/QoS/RETAIN on PUBLISH,
//	           0010 on PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0000 elsewhere)
//	bytes 1-4  remaining length: variable byte integer, 7 bits per byte, at most 4 bytes
//	...        variable header: packet identifier where the type has one; in 5.0 a property
//	           block (variable byte integer length, then identifier/value pairs)
//	...        payload: PUBLISH message, SUBSCRIBE filters, SUBACK codes, CONNECT fields
//
// Strings and binary data carry a two-byte big-endian length. Before 5.0 there are no properties
// and no reason codes beyond CONNACK's return code and SUBACK's granted QoS. In 5.0 the PUBACK
// family, DISCONNECT and AUTH may leave out a Success reason code and an empty property block;
// Encode always uses that short form when it can.
//
// # Reading
//
// A Reader decodes from an io.Reader (wrap connections in a small bufio.Reader). It does not know
// the protocol version until the engine tells it with SetVersion after CONNECT; a CONNECT is
// decoded by its own protocol level, anything else as 3.1.1 until then.
//
// Size limit: the remaining length is read first and the total size (fixed header plus
// remaining length) is compared with the maximum packet size before any buffer is allocated; a
// larger packet fails with PacketTooLarge and its body is not read. A remaining length with a
// fifth length byte is MalformedPacket.
//
// Slice lifetime: the body of each packet is read into one new slice of exactly the remaining
// length. Payload and every other []byte and string of the decoded packet alias that slice (the
// strings without a copy), and the Reader never touches it again, so they stay valid forever.
// Keeping any of them keeps the whole body alive; clone small strings kept from large packets.
// A decoded PUBLISH costs two allocations: the body and the Publish struct.
//
// # Writing
//
// Each packet's Encode appends its wire form for a given version to a caller's buffer and does
// not allocate when the buffer has room; Size returns the length Encode would produce so the
// engine can honour a client's Maximum Packet Size without encoding. Fields a version cannot
// carry are left out, and so are properties the packet type cannot carry.
//
// # Errors
//
// Decoding fails with io.EOF (clean end before a packet), io.ErrUnexpectedEOF (end inside a
// packet), the underlying reader's error, or an error such as
// "codec: PUBLISH topic: malformed packet (0x81)" that wraps the ReasonCode the 5.0
// specification names for the violation; errors.As(err, &rc) retrieves it and errors.Is(err,
// codec.MalformedPacket) tests it. The checks carry the specification's rule tags (for example
// [MQTT-3.3.1-4]) in comments beside them. Rules that need session state (topic alias ranges,
// receive maximum, client identifier rules, a Subscription Identifier sent by a client, payload
// format validation) are the engine's. Encoding fails with errors wrapping ErrFieldTooLong,
// ErrInvalidField or PacketTooLarge.
package codec
