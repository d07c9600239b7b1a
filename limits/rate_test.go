package limits

import (
	"math"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	type call struct {
		at    time.Duration // since t0
		allow bool
		delay time.Duration // Delay, asked after Allow
	}
	tests := []struct {
		name      string
		perSecond float64
		burst     int
		calls     []call
	}{
		{
			name:      "burst then steady rate",
			perSecond: 2, // one token every 500ms
			burst:     3,
			calls: []call{
				{0, true, 0}, {0, true, 0}, {0, true, 500 * ms}, // the bucket starts full
				{0, false, 500 * ms},
				{499 * ms, false, 1 * ms},
				{500 * ms, true, 500 * ms},
				{500 * ms, false, 500 * ms},
				{1500 * ms, true, 0}, // two tokens accrued in a second
				{1500 * ms, true, 500 * ms},
				{1500 * ms, false, 500 * ms},
			},
		},
		{
			name:      "tokens stop at the burst",
			perSecond: 2,
			burst:     3,
			calls: []call{
				{0, true, 0},
				{time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 500 * ms},
				{time.Hour, false, 500 * ms},
			},
		},
		{
			name:      "burst below one is one",
			perSecond: 10,
			burst:     0,
			calls: []call{
				{0, true, 100 * ms}, {0, false, 100 * ms}, {50 * ms, false, 50 * ms},
				{100 * ms, true, 100 * ms},
			},
		},
		{
			name:      "clock stepping back admits nothing extra",
			perSecond: 1,
			burst:     1,
			calls: []call{
				{10 * time.Second, true, time.Second},
				{5 * time.Second, false, 6 * time.Second},
				{11 * time.Second, true, time.Second},
			},
		},
		{
			name:      "fractional rate",
			perSecond: 0.5, // one every two seconds
			burst:     1,
			calls: []call{
				{0, true, 2 * time.Second}, {1999 * ms, false, ms}, {2 * time.Second, true, 2 * time.Second},
			},
		},
		{
			name:      "zero rate is unlimited",
			perSecond: 0,
			burst:     1,
			calls:     []call{{0, true, 0}, {0, true, 0}, {0, true, 0}, {-time.Hour, true, 0}},
		},
		{
			name:      "rates below one a day are one a day",
			perSecond: 1e-30,
			burst:     math.MaxInt, // and bursts are capped
			calls: []call{
				{0, true, 0}, {0, true, 0},
				// The window is exactly maxBurst days: two days used, one more for the next.
				{-maxBurst * 24 * time.Hour, false, 72 * time.Hour},
			},
		},
		{
			name:      "NaN rate is unlimited",
			perSecond: math.NaN(),
			burst:     1,
			calls:     []call{{0, true, 0}, {0, true, 0}},
		},
		{
			name:      "negative rate is unlimited",
			perSecond: -1,
			burst:     5,
			calls:     []call{{0, true, 0}, {0, true, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewRateLimiter(tt.perSecond, tt.burst)
			for i, c := range tt.calls {
				now := t0.Add(c.at)
				if got := l.Allow(now); got != c.allow {
					t.Fatalf("call %d at %v: Allow = %v, want %v", i, c.at, got, c.allow)
				}
				if got := l.Delay(now); got != c.delay {
					t.Fatalf("call %d at %v: Delay = %v, want %v", i, c.at, got, c.delay)
				}
			}
		})
	}
}

// TestRateLimiterLongRun checks the average rate over many calls, where floating-point drift
// would show.
func TestRateLimiterLongRun(t *testing.T) {
	l := NewRateLimiter(3, 1) // one token every 333.333333ms
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	for step := range 100_000 { // one call every 10ms for 1000s
		if l.Allow(t0.Add(time.Duration(step) * 10 * time.Millisecond)) {
			allowed++
		}
	}
	// Each token takes 333.333333ms, rounded up to the next 10ms call: one every 340ms.
	if want := 1000_000 / 340; allowed < want || allowed > want+1 {
		t.Errorf("allowed %d in 1000s at 3/s polled every 10ms, want %d or %d", allowed, want, want+1)
	}
}
