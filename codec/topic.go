package codec

import (
	"strings"
	"unicode/utf8"
)

// ValidTopicName reports whether s may be the topic of a PUBLISH or a will: 1 to 65,535 bytes of
// valid UTF-8 without U+0000 and without the wildcards '+' and '#' [MQTT-4.7.3-1] [MQTT-3.3.2-2].
func ValidTopicName(s string) bool {
	return len(s) > 0 && len(s) <= 0xFFFF && !strings.ContainsAny(s, "+#") && validUTF8(s)
}

// ValidTopicFilter reports whether f may be the filter of a SUBSCRIBE or UNSUBSCRIBE: 1 to 65,535
// bytes of valid UTF-8 without U+0000, where '#' appears only as the whole last level and '+' only
// as a whole level [MQTT-4.7.1-1] [MQTT-4.7.1-2]. A shared subscription "$share/group/filter"
// needs a non-empty group without wildcards and a valid filter after it [MQTT-4.8.2-1]
// [MQTT-4.8.2-2].
func ValidTopicFilter(f string) bool {
	if len(f) == 0 || len(f) > 0xFFFF || !validUTF8(f) {
		return false
	}
	if rest, shared := strings.CutPrefix(f, "$share/"); shared {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") || filter == "" {
			return false
		}
		f = filter
	}
	for {
		level, rest, more := strings.Cut(f, "/")
		if level == "#" {
			return !more
		}
		if level != "+" && strings.ContainsAny(level, "+#") {
			return false
		}
		if !more {
			return true
		}
		f = rest
	}
}

// validUTF8 reports whether s is well-formed UTF-8 without surrogates (which Go's decoder
// rejects) and without U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
func validUTF8(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c == 0 {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return false
		}
		i += n
	}
	return true
}
