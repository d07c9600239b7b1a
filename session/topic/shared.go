package topic

import (
	"errors"
	"strings"
)

// sharePrefix starts every shared-subscription filter [MQTT-4.8.2-1].
const sharePrefix = "$share/"

var (
	// ErrShareName reports a shared-subscription filter whose share name is
	// empty or contains '+' or '#' [MQTT-4.8.2-1] [MQTT-4.8.2-2].
	ErrShareName = errors.New("topic: invalid share name")
	// ErrShareFilter reports a shared-subscription filter with no topic filter
	// after the share name [MQTT-4.8.2-2].
	ErrShareFilter = errors.New("topic: shared subscription without a topic filter")
)

// ParseShared splits a SUBSCRIBE or UNSUBSCRIBE topic filter of the form
// "$share/{ShareName}/{filter}" into the share name and the filter:
// "$share/g/a/b" gives "g", "a/b", true. A filter without the prefix is
// returned unchanged with shared false. The error wraps ErrShareName or
// ErrShareFilter; the rest is not checked for wildcard placement.
func ParseShared(filter string) (group, rest string, shared bool, err error) {
	after, ok := strings.CutPrefix(filter, sharePrefix)
	if !ok {
		return "", filter, false, nil
	}
	group, rest, ok = strings.Cut(after, "/")
	// [MQTT-4.8.2-1] the ShareName is at least one character long;
	// [MQTT-4.8.2-2] it contains no '/', '+' or '#' and is followed by '/'.
	if group == "" || strings.ContainsAny(group, "+#") {
		return "", "", true, ErrShareName
	}
	if !ok || rest == "" {
		return "", "", true, ErrShareFilter
	}
	return group, rest, true, nil
}

// level returns the first level of s, what follows the separator after it,
// and whether there was a separator (so "a/" gives "a", "", true: an empty
// level follows).
func level(s string) (first, rest string, more bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// dollar reports whether topic starts with '$': such a topic is not matched by
// a filter whose first level is a wildcard [MQTT-4.7.2-1].
func dollar(topic string) bool {
	return topic != "" && topic[0] == '$'
}
