package realism

import (
	"context"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	for _, c := range []Case{
		{Shape: SyncChain, Rate: 10, Duration: 10 * time.Minute},
		{Shape: RetryStormFault, Rate: 10, Onset: 2 * time.Minute, Duration: 5 * time.Minute},
		{Shape: ConsumerLagFault, Rate: 10, Onset: 2 * time.Minute, Duration: 5 * time.Minute},
		{Shape: OpenCircuitFault, Rate: 100, Onset: 2 * time.Minute, Duration: 5 * time.Minute},
		{Shape: BottleneckFault, Rate: 100, Onset: 2 * time.Minute, Duration: 5 * time.Minute},
	} {
		r, err := Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s\n  stats %+v wall %v", r.Verdict(), r.Stats, r.Wall)
		for _, f := range r.PendingOnly {
			t.Logf("  pending-only %s", f)
		}
		if r.Detected != nil {
			t.Logf("  %s", r.Detected.Summary)
		}
		for _, f := range r.FalsePositives {
			t.Logf("  FP %s: %s", f, f.Summary)
		}
	}
}
