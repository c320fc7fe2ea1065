package agent

import (
	"testing"
	"time"
)

// TestHeldStampsAreNew: the server keeps one point per metric and time
// stamp, so a held increment must never reuse a stamp already sent (a gap
// that starts at the sample taken with a send) or held (two increments from
// the same gap start), or the server would drop it as a duplicate.
func TestHeldStampsAreNew(t *testing.T) {
	t.Parallel()
	sent := testT0.Add(30 * time.Minute)
	c := counters{SentAt: sent, Crashes: 9, Unexpected: 1}
	c.hold(MetricCrashes, sent, 7) // the gap starts at the last send
	c.holdUnsent(sent)             // the boot that ended it
	c.Unexpected++                 // and ended unexpectedly, at a stamp before the others
	c.hold(MetricUnexpectedReboots, testT0, 1)
	if len(c.Held) != 4 {
		t.Fatalf("held %+v", c.Held)
	}
	prev := sent
	for _, p := range c.Held {
		if !p.At.After(prev) || p.At.Sub(sent) > time.Millisecond {
			t.Fatalf("held %+v: stamps must follow %s, each after the last, and stay at the gap's start", c.Held, sent.Format(time.RFC3339Nano))
		}
		prev = p.At
	}
	if c.held(MetricCrashes) != 9 || c.held(MetricUnexpectedReboots) != 2 {
		t.Fatalf("held %+v, want all 9 crashes and both reboots", c.Held)
	}
	for i := range 2 * maxHeld {
		c.hold(MetricCrashes, sent, int64(i))
	}
	if len(c.Held) != maxHeld {
		t.Fatalf("%d held, want at most %d", len(c.Held), maxHeld)
	}
}
