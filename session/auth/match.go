package auth

// text is what a rule's filter may be: a string from the file, or the bytes
// of a pattern after %c/%u substitution (built on the stack, so a check does
// not allocate).
type text interface{ ~string | ~[]byte }

// levelEnd returns the index of the '/' that ends the level starting at i, or
// len(s) for the last level.
func levelEnd[S text](s S, i int) int {
	for i < len(s) && s[i] != '/' {
		i++
	}
	return i
}

// isLevel reports whether s[i:e] is the single byte c.
func isLevel[S text](s S, i, e int, c byte) bool { return e == i+1 && s[i] == c }

// sameLevel reports whether a[ai:ae] and b[bi:be] are equal.
func sameLevel[S text](a S, ai, ae int, b string, bi, be int) bool {
	if ae-ai != be-bi {
		return false
	}
	for ; ai < ae; ai, bi = ai+1, bi+1 {
		if a[ai] != b[bi] {
			return false
		}
	}
	return true
}

// wildFirst reports whether the first level of s is '+' or '#'.
func wildFirst[S text](s S) bool {
	e := levelEnd(s, 0)
	return isLevel(s, 0, e, '+') || isLevel(s, 0, e, '#')
}

// covers reports whether every topic name that f matches is also matched by
// the rule filter r. For a topic name f (which holds no wildcard) that is
// exactly "r matches f" under the subscription rules: '+' is one level, a
// trailing '#' is the parent level and any number of children, and a topic
// starting with '$' is not matched by a filter whose first level is a
// wildcard [MQTT-4.7.2-1]. For a filter f it is level-by-level containment: a
// '+' in f needs '+' or '#' in r at that level, a '#' in f needs '#' in r.
func covers[S text](r S, f string) bool {
	if len(f) > 0 && f[0] == '$' && wildFirst(r) {
		return false
	}
	ri, fi := 0, 0
	for {
		re := levelEnd(r, ri)
		if isLevel(r, ri, re, '#') {
			return true
		}
		fe := levelEnd(f, fi)
		switch {
		case isLevel(f, fi, fe, '#'):
			return false
		case isLevel(r, ri, re, '+'):
		case isLevel(f, fi, fe, '+') || !sameLevel(r, ri, re, f, fi, fe):
			return false
		}
		rDone, fDone := re == len(r), fe == len(f)
		switch {
		case rDone && fDone:
			return true
		case rDone:
			return false
		case fDone:
			// f has no more levels: only a final "/#" in r still covers it,
			// because '#' also matches its parent level.
			return len(r)-re == 2 && r[re+1] == '#'
		}
		ri, fi = re+1, fe+1
	}
}

// validFilter reports whether s is a well-formed topic filter: not empty, no
// NUL, '+' and '#' only as whole levels, '#' only as the last level.
func validFilter(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; ; {
		e := levelEnd(s, i)
		for j := i; j < e; j++ {
			switch s[j] {
			case 0:
				return false
			case '+', '#':
				if e != i+1 || (s[j] == '#' && e != len(s)) {
					return false
				}
			}
		}
		if e == len(s) {
			return true
		}
		i = e + 1
	}
}
