// Package topic holds the broker's subscription tree and its retained-message
// index: the two structures that turn a topic name into the set of sessions
// that receive a PUBLISH, and a topic filter into the retained messages that a
// new subscription receives.
//
// # Matching
//
// Topic names and filters are split into levels on '/'. An empty level is a
// level: "a//b" has three levels and is matched by "a/+/b". In a filter, '+'
// matches exactly one level (which may be empty) and '#', which must be the
// last level, matches its parent level and any number of child levels, so
// "a/#" matches "a", "a/" and "a/b/c". A topic whose first character is '$'
// (such as "$SYS/uptime") is never matched by a filter whose first level is a
// wildcard [MQTT-4.7.2-1]; "$SYS/#" matches it. Tree.Match and Retained.Match
// follow exactly the same rules. Spec tags in this package use the numbering
// of MQTT 5.0; the matching rules are the same in 3.1.1.
//
// # Subscriptions
//
// A Tree is a trie of filter levels; each node holds the non-shared
// subscriptions whose filter ends there, keyed by client identifier, and the
// shared-subscription groups ("$share/{ShareName}/{filter}") for that filter,
// keyed by share name. A subscription is identified by (ClientID, Group,
// Filter): subscribing again with the same key replaces its options. Nodes left
// without subscriptions or children are removed at once, so memory does not
// grow with subscribe/unsubscribe churn. A per-client index makes
// UnsubscribeAll proportional to the client's own subscriptions.
//
// Tree.Match runs under the read lock, walks only the branches that can match
// (for each level the literal child, the '+' child and the '#' child), and
// appends to a caller-owned Matches value. A Matches reused with Reset does not
// allocate once its slices have grown to the fan-out of the busiest topic.
// When one client holds several overlapping subscriptions, Match reports each
// of them; choosing between them (or delivering once per subscription, as
// MQTT 5.0 allows) is the engine's decision.
//
// # Shared subscriptions
//
// Match reports a shared group once if its filter matches, whatever the number
// of its members; the engine then calls Group.Pick to choose the one member
// that receives the message. Pick goes round robin, starting after the member
// it chose last, and skips members that the caller's accept function rejects
// (offline, or with a full queue). Group membership is copy-on-write, so Pick
// never holds a lock while accept runs and accept may take any lock of its own.
//
// # Retained messages
//
// Retained is a trie of topic levels holding one value per topic. Its Match
// walks the trie along the filter, so a subscription to "a/+/c" visits only
// the children of "a" and their "c" children, not every retained topic.
// Deleting a topic removes the nodes it leaves empty.
//
// # Locks
//
// Tree and Retained each have one sync.RWMutex. A Group has a mutex of its own
// that is taken inside the Tree's write lock (order: Tree, then Group) and
// never while calling out. Retained.Match and Retained.Each call fn with the
// read lock held: fn must not call methods of the same Retained.
//
// # Validation
//
// The Tree and the Retained index trust their callers to pass valid topic
// names and filters (the codec rejects invalid ones when decoding SUBSCRIBE
// and PUBLISH). Invalid input never makes them panic: a malformed filter is
// stored like any other and matches what its levels literally say.
// ParseShared checks only the shared-subscription prefix and share name; the
// wildcard placement in the rest is the codec's check.
package topic
