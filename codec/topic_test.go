package codec

import (
	"strings"
	"testing"
)

func TestValidTopicName(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"a", true},
		{"a/b/c", true},
		{"/", true},
		{"$SYS/broker/uptime", true},
		{"température/ü", true},
		{"a//b", true},
		{strings.Repeat("x", 0xFFFF), true},
		{"", false},                           // [MQTT-4.7.3-1]
		{"a/+", false},                        // [MQTT-3.3.2-2]
		{"a/#", false},                        // [MQTT-3.3.2-2]
		{"a+b", false},                        // wildcard inside a level
		{"a\x00b", false},                     // [MQTT-1.5.4-2]
		{"a\xff", false},                      // [MQTT-1.5.4-1]
		{"\xed\xa0\x80", false},               // surrogate U+D800
		{strings.Repeat("x", 0x10000), false}, // longer than a string field
	} {
		if got := ValidTopicName(c.s); got != c.want {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", c.s, got, c.want)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	for _, c := range []struct {
		f    string
		want bool
	}{
		{"a/b", true},
		{"#", true},
		{"+", true},
		{"a/#", true},
		{"+/+/c", true},
		{"a/+/#", true},
		{"/", true},
		{"$share", true}, // an ordinary filter, not a shared one
		{"$share/g/a/+", true},
		{"$share/g/#", true},
		{"", false},
		{"a/#/b", false},    // [MQTT-4.7.1-1] # only last
		{"a#", false},       // [MQTT-4.7.1-1] # a whole level
		{"a/b+", false},     // [MQTT-4.7.1-2] + a whole level
		{"+a", false},       // [MQTT-4.7.1-2]
		{"a\x00", false},    // [MQTT-1.5.4-2]
		{"\xc0", false},     // [MQTT-1.5.4-1]
		{"$share/g", false}, // no filter
		{"$share/g/", false},
		{"$share//a", false},      // empty group
		{"$share/g+/a", false},    // wildcard in group
		{"$share/#/a", false},     // wildcard group
		{"$share/g/a/#/b", false}, // invalid filter after the group
	} {
		if got := ValidTopicFilter(c.f); got != c.want {
			t.Errorf("ValidTopicFilter(%q) = %v, want %v", c.f, got, c.want)
		}
	}
}
