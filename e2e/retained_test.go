package e2e

import (
	"slices"
	"testing"
)

// TestRetainedLifecycle: a retained message is delivered on subscribe, a new retained
// publication replaces it, and an empty retained payload clears it.
func TestRetainedLifecycle(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub := connect3(t, b, "ret-pub", opts3{clean: true})
	expectRetained := func(id string, want ...string) {
		t.Helper()
		c := connect3(t, b, id, opts3{clean: true})
		c.subscribe(t, "ret/#", 1)
		got := c.in.waitExactly(t, len(want))
		// The specification orders messages per topic, not across topics: compare as sets.
		equalStrings(t, id+": retained messages", sorted(payloads(got)), sorted(want))
		for _, m := range got {
			if !m.retained {
				t.Fatalf("%s: retained message delivered on subscribe with RETAIN 0", id)
			}
		}
		c.disconnect()
	}

	pub.publish(t, "ret/a", 1, true, "a1")
	pub.publish(t, "ret/b", 0, true, "b1")
	pub.publish(t, "ret/b", 2, false, "not-retained")
	expectRetained("set", "a1", "b1")

	pub.publish(t, "ret/a", 1, true, "a2")
	expectRetained("replaced", "a2", "b1")

	pub.publish(t, "ret/a", 1, true, "")
	expectRetained("cleared", "b1")
}

// TestRetainedOutlivesSession: retained messages are not session state; they stay when the
// session of the client that published them ends.
func TestRetainedOutlivesSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub := connect3(t, b, "ret-owner", opts3{})
	pub.publish(t, "ret/owned", 1, true, "stays")
	pub.disconnect()
	connect3(t, b, "ret-owner", opts3{clean: true}).disconnect() // ends the session

	c := connect3(t, b, "ret-reader", opts3{clean: true})
	c.subscribe(t, "ret/owned", 1)
	if got := c.in.waitExactly(t, 1); got[0].payload != "stays" {
		t.Fatalf("got %q", got[0].payload)
	}
}

// sorted returns a sorted copy of s.
func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}
