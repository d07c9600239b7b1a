// Package auth decides who may connect and which topics they may use: it
// reads Mosquitto's password file and acl_file formats, so existing files keep
// working, and answers the engine's questions about them. It imports nothing
// of ours; the session engine imports it.
//
// # Password file
//
// One user per line, "user:hash"; blank lines and lines starting with '#' are
// skipped, white space around either field is ignored. The hash is one of
//
//	$7$ITERATIONS$SALT$HASH  PBKDF2-HMAC-SHA512(password, salt, ITERATIONS, 64 bytes)
//	$6$SALT$HASH             SHA-512(password || salt)
//
// where SALT is 12 bytes and HASH 64 bytes, both in standard padded base64
// (the salt is used as the decoded bytes). mosquitto_passwd writes $7$ by
// default (101 iterations in Mosquitto 2.0, 1000 in its later development line) and $6$ with
// "-H sha512". HashPassword and SetPassword write $7$ with DefaultIterations.
// Where Mosquitto silently drops a bad line, ParsePasswords fails with the
// file and line: a plain-text password, a bad base64 field, a wrong salt or
// hash length, an iteration count outside 1..2^24, or a user listed twice.
//
// Check costs one PBKDF2 derivation (or one SHA-512 for a $6$ entry): about
// 3 ms at 1000 iterations and 0.5 ms at 101 on a shared x86 server core, and
// tens of times more on an ARMv6 board. That is deliberate. The engine checks
// once per CONNECT and keeps the verdict for the life of the connection; it
// never checks per packet. An unknown user is hashed against a decoy entry
// with the scheme and iteration count of the file's last line, and the
// comparison is constant-time, so response time does not tell which users
// exist (except that a file mixing $6$ and $7$ entries costs different
// amounts per user).
//
// # ACL file
//
//	# before the first user line: rules for anonymous clients
//	topic read public/#
//	# alice's own rules
//	user alice
//	topic readwrite alice/#
//	topic deny alice/secret
//	# pattern lines apply to every client, wherever they stand
//	pattern write devices/%c/up
//	pattern read users/%u/#
//
// "topic [read|write|readwrite|deny] FILTER" adds a rule for the section it is
// in: the anonymous section at the top, or the section of the latest "user
// NAME" line (sections of one name merge). "pattern ..." adds a rule for every
// client, with %c replaced by the client identifier and %u by the user name
// before matching; a pattern holding %u never applies to an anonymous client.
// The access word defaults to readwrite. FILTER is the rest of the line and
// may use '+' and '#' as in subscriptions (a '#' later in a line is part of
// the filter, not a comment); a "$" topic such as "$SYS/broker/uptime" is
// only matched by rules whose first level is literal. "topic read" without a
// filter is an error here (Mosquitto reads it as readwrite on topic "read").
//
// A request (publish = write, read and subscribe = read) is granted when a
// rule of the client's section or a pattern grants that access and no deny
// rule in either covers the topic. Everything else is refused, including every
// request of a user without a section when no pattern grants it. Two points
// differ from Mosquitto 2.0, on the safe side: a deny pattern also overrides a
// grant in the user's own section (Mosquitto looks at patterns only when the
// section granted nothing), and a client whose identifier or user name holds
// '+' or '#' is refused everything once any pattern exists (Mosquitto still
// applies the section's grants).
//
// Subscriptions: Mosquitto 2.0 accepts every SUBSCRIBE and filters only at
// delivery. CanSubscribe refuses a filter unless one read rule covers all of
// it, level by level: rule "a/#" covers filters "a/+/b" and "a/#", rule "a/+"
// covers "a/b" but not "a/#". One rule, not a union of rules, must cover the
// filter, which keeps the check linear and predictable; a deny rule refuses
// the subscription only when it covers the whole filter, and the messages a
// narrower deny rule blocks are held back by CanRead at delivery. So the
// engine calls CanSubscribe on SUBSCRIBE and CanRead on every delivery,
// retained messages and wills included.
//
// The ACL checks walk the client's section and the patterns once, expanding
// patterns into a stack buffer: they do not allocate and cost about a
// microsecond for a dozen rules, so the engine may call them per message.
//
// # Concurrency and reload
//
// Passwords and ACL are immutable after loading and safe for concurrent use
// without locks. To reload (SIGHUP), load a new value; on success swap it in
// with an atomic.Pointer, on error keep the old one and log the one-line
// error, which names the file and line. A nil *ACL allows everything (no ACL
// file); a nil *Passwords accepts nobody.
//
// # Wiring into the engine
//
// At CONNECT, with a password file, a client without a user name is anonymous
// (allowed only with --allow-anonymous) and a client with one must pass Check.
// Refuse a failed Check with CONNACK 0x04 (bad user name or password) in 3.1.1
// and 0x86 in 5.0, and a refused anonymous client with 0x05 / 0x87 (not
// authorized). Mosquitto 2.0 sends 0x05 / 0x87 in both cases; clients treat
// all four as "refused". 3.1 has the same 0x04 and 0x05.
// A denied PUBLISH is answered with reason 0x87 on PUBACK/PUBREC in 5.0 and is
// dropped silently (but still acknowledged) in 3.x, as Mosquitto does; a
// denied filter gets 0x80 in a 3.1.1 SUBACK and 0x87 in a 5.0 SUBACK.
package auth
