package e2e

import "testing"

// TestSessionSurvivesRestart: a persistent session, its subscription and the messages queued for
// it survive a graceful restart (SIGTERM) and a crash (SIGKILL) of the broker.
func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down func(*broker)
	}{
		{"sigterm", (*broker).Stop},
		{"sigkill", (*broker).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{})
			sub := connect3(t, b, "durable", opts3{})
			sub.subscribe(t, "durable/t", 1)
			sub.disconnect()
			pub := connect3(t, b, "durable-pub", opts3{clean: true})
			pub.publishSeq(t, "durable/t", 1, "m", 20) // each PUBACK means durable
			pub.disconnect()

			tc.down(b)
			b.Start()
			again := connect3(t, b, "durable", opts3{})
			if !again.sessionPresent {
				t.Fatal("Session Present = 0 after the restart")
			}
			equalStrings(t, "queued before the restart", payloads(again.in.waitExactly(t, 20)), seq("m", 0, 20))

			// The subscription itself was restored: a new message routes to it.
			b.Restart()
			again = connect3(t, b, "durable", opts3{})
			pub = connect3(t, b, "durable-pub", opts3{clean: true})
			pub.publish(t, "durable/t", 1, false, "after")
			equalStrings(t, "after the second restart", payloads(again.in.waitExactly(t, 1)), []string{"after"})
		})
	}
}
