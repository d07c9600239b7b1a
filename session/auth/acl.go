package auth

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// access is what a rule grants: read, write, both, or nothing (deny).
type access byte

const (
	deny  access = 0
	read  access = 1 << 0
	write access = 1 << 1
)

// accessWords maps the optional second word of a topic or pattern line.
var accessWords = map[string]access{"read": read, "write": write, "readwrite": read | write, "deny": deny}

// rule is one topic or pattern line.
type rule struct {
	filter string
	access access
	// subst: the filter holds %c or %u and must be expanded per client;
	// user: it holds %u, so it never applies to an anonymous client.
	subst, user bool
}

// ACL is a parsed ACL file. It is immutable once loaded and safe for
// concurrent use; to reload, load a new value and swap a pointer. A nil *ACL
// (no ACL file configured) allows everything.
type ACL struct {
	anon     []rule            // topic lines before the first user line
	users    map[string][]rule // topic lines after "user NAME"
	patterns []rule            // pattern lines, wherever they stand
}

// LoadACL reads and parses the ACL file at path.
func LoadACL(path string) (*ACL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: ACL file: %w", err)
	}
	defer f.Close()
	return ParseACL(f, path)
}

// ParseACL parses an ACL file in Mosquitto's acl_file syntax from r; name is
// used in error messages. Lines are "user NAME", "topic [ACCESS] FILTER" and
// "pattern [ACCESS] FILTER", where ACCESS is read, write, readwrite (the
// default) or deny and FILTER, the rest of the line, is a valid topic filter;
// blank lines and lines starting with '#' are skipped. Words are separated by
// spaces or tabs and are case-sensitive. The first offending line is reported
// as "auth: syntax error: name:line: why".
func ParseACL(r io.Reader, name string) (*ACL, error) {
	a := &ACL{users: make(map[string][]rule)}
	var user *string // nil until the first user line
	err := eachLine(r, name, func(line string) error {
		word, rest := cutWord(line)
		switch word {
		case "user":
			if rest == "" {
				return errors.New("user line without a name")
			}
			user = &rest
			return nil
		case "topic", "pattern":
		default:
			return fmt.Errorf("unknown keyword %q (want user, topic or pattern)", word)
		}
		rl := rule{access: read | write, filter: rest}
		if w, after := cutWord(rest); after != "" {
			acc, ok := accessWords[w]
			if !ok {
				return fmt.Errorf("unknown access %q (want read, write, readwrite or deny)", w)
			}
			rl.access, rl.filter = acc, after
		} else if _, ok := accessWords[rest]; ok {
			return fmt.Errorf("%s line with access %q but no topic", word, rest)
		}
		if !validFilter(rl.filter) {
			return fmt.Errorf("invalid topic filter %q", rl.filter)
		}
		switch {
		case word == "pattern":
			rl.user = strings.Contains(rl.filter, "%u")
			rl.subst = rl.user || strings.Contains(rl.filter, "%c")
			a.patterns = append(a.patterns, rl)
		case user == nil:
			a.anon = append(a.anon, rl)
		default:
			a.users[*user] = append(a.users[*user], rl)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// cutWord splits line at its first run of spaces or tabs; rest is trimmed.
func cutWord(line string) (word, rest string) {
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.Trim(line[i:], " \t")
}

// CanPublish reports whether the client may publish to the topic name topic.
// anonymous is true when CONNECT carried no user name; username is then
// ignored. (For a will message, check it at CONNECT and again at delivery.)
func (a *ACL) CanPublish(clientID, username string, anonymous bool, topic string) bool {
	return a.allowed(clientID, username, anonymous, topic, write)
}

// CanRead reports whether a message on the topic name topic may be delivered
// to the client: call it for every delivery, retained messages included.
func (a *ACL) CanRead(clientID, username string, anonymous bool, topic string) bool {
	return a.allowed(clientID, username, anonymous, topic, read)
}

// CanSubscribe reports whether the client may subscribe to filter (without a
// "$share/NAME/" prefix: strip it first). It is granted when one read rule
// covers the whole filter (every topic the filter matches, the rule matches:
// "a/#" covers "a/+/b") and no deny rule covers the whole filter. A deny rule
// that covers only part of the filter does not refuse the subscription; the
// messages it denies are filtered by CanRead at delivery. For a filter without
// wildcards CanSubscribe and CanRead agree.
func (a *ACL) CanSubscribe(clientID, username string, anonymous bool, filter string) bool {
	return a.allowed(clientID, username, anonymous, filter, read)
}

// verdict is what one rule says about one request.
type verdict byte

const (
	silent verdict = iota // the rule does not cover the topic, or grants other access
	grant
	refuse
)

// judge returns r's verdict on want access to topic, with r's filter f (the
// rule's own, or its expansion).
func judge[S text](f S, acc access, topic string, want access) verdict {
	switch {
	case !covers(f, topic):
		return silent
	case acc == deny:
		return refuse
	case acc&want != 0:
		return grant
	}
	return silent
}

// allowed decides a request: the client's own rules (its user section, or the
// anonymous section) and the pattern rules are all consulted; access is
// granted when some rule grants it and no deny rule covers the topic.
func (a *ACL) allowed(clientID, username string, anonymous bool, topic string, want access) bool {
	if a == nil {
		return true
	}
	rules := a.anon
	if !anonymous {
		rules = a.users[username]
	}
	granted := false
	for i := range rules {
		switch judge(rules[i].filter, rules[i].access, topic, want) {
		case refuse:
			return false
		case grant:
			granted = true
		}
	}
	if len(a.patterns) == 0 {
		return granted
	}
	// A client id or user name holding a wildcard would turn a pattern into
	// a wider filter than its author meant: such clients get nothing once
	// pattern rules exist (Mosquitto refuses them too).
	if strings.ContainsAny(clientID, "+#") || !anonymous && strings.ContainsAny(username, "+#") {
		return false
	}
	var buf [256]byte
	for i := range a.patterns {
		p := &a.patterns[i]
		var v verdict
		switch {
		case p.user && anonymous:
			continue
		case p.subst:
			v = judge(expand(buf[:0], p.filter, clientID, username), p.access, topic, want)
		default:
			v = judge(p.filter, p.access, topic, want)
		}
		switch v {
		case refuse:
			return false
		case grant:
			granted = true
		}
	}
	return granted
}

// expand appends pattern to dst with every %c replaced by clientID and every
// %u by username; any other '%' stays as it is.
func expand(dst []byte, pattern, clientID, username string) []byte {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '%' && i+1 < len(pattern) {
			switch pattern[i+1] {
			case 'c':
				dst = append(dst, clientID...)
				i++
				continue
			case 'u':
				dst = append(dst, username...)
				i++
				continue
			}
		}
		dst = append(dst, pattern[i])
	}
	return dst
}
