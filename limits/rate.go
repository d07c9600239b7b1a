package limits

import "time"

// RateLimiter is a token bucket for a client's publish rate: tokens accrue at a fixed rate up
// to a burst, and each allowed message takes one. The bucket starts full.
//
// It keeps its state as the theoretical arrival time of the next message, an integer time, so
// the result depends only on the times passed in: no clock is read and no floating-point error
// accumulates. A clock that steps backwards can only delay messages, never admit extra ones.
//
// A RateLimiter is not safe for concurrent use: it belongs to one connection's reader.
type RateLimiter struct {
	interval time.Duration // time for one token to accrue; 0 means unlimited
	window   time.Duration // burst * interval: how far ahead of now the bucket may be drawn
	tat      time.Time     // when the bucket will be full again
}

// Bounds that keep burst * interval within a time.Duration.
const (
	maxInterval = 24 * time.Hour
	maxBurst    = 100_000
)

// NewRateLimiter returns a full bucket that allows perSecond messages a second on average and
// up to burst at once. A burst below 1 is taken as 1 and one above 100,000 as 100,000; a rate
// below one a day as one a day. A perSecond of 0 or less (or NaN), or one so high that a token
// takes under a nanosecond, means no limit: Allow always returns true.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	l := &RateLimiter{}
	if perSecond > 0 {
		l.interval = time.Duration(min(float64(time.Second)/perSecond, float64(maxInterval)))
	}
	l.window = time.Duration(min(max(burst, 1), maxBurst)) * l.interval
	return l
}

// Allow reports whether a message arriving at now is within the rate, and if so takes its
// token.
func (l *RateLimiter) Allow(now time.Time) bool {
	if l.Delay(now) > 0 {
		return false
	}
	l.tat = l.next(now)
	return true
}

// Delay returns how long after now the next message would be allowed: 0 if it would be allowed
// now. A reader that must slow its publisher down rather than refuse it (MQTT 3 has no way to
// refuse a publish) can stop reading from the socket for that long.
func (l *RateLimiter) Delay(now time.Time) time.Duration {
	if l.interval == 0 {
		return 0
	}
	return max(l.next(now).Sub(now)-l.window, 0)
}

// next returns the state after one more message at now.
func (l *RateLimiter) next(now time.Time) time.Time {
	if l.tat.After(now) {
		return l.tat.Add(l.interval)
	}
	return now.Add(l.interval)
}
