package realism

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// TestDiag is a diagnosis aid, skipped unless DIAG names a fault (retry,
// circuit, bottleneck, lag): it logs, evaluation by evaluation around the
// onset, the numbers that fault's detector judges and the engine's
// findings, e.g. DIAG=retry go test -run TestDiag -v ./detect/realism
// (DIAG_RATE and DIAG_ONSET change the rate and the onset).
func TestDiag(t *testing.T) {
	kind := os.Getenv("DIAG")
	if kind == "" {
		t.Skip()
	}
	var c Case
	switch kind {
	case "retry":
		c = Case{Shape: RetryStormFault, Rate: 10, Onset: 30 * time.Minute, Duration: 31 * time.Minute}
	case "circuit":
		c = Case{Shape: OpenCircuitFault, Rate: 10, Onset: 30 * time.Minute, Duration: 31*time.Minute + 30*time.Second}
	case "bottleneck":
		c = Case{Shape: BottleneckFault, Rate: 10, Onset: 30 * time.Minute, Duration: 31 * time.Minute}
	case "lag":
		c = Case{Shape: ConsumerLagFault, Rate: 10, Onset: 10 * time.Minute, Duration: 12 * time.Minute}
	}
	if r := os.Getenv("DIAG_RATE"); r != "" {
		if _, err := fmt.Sscan(r, &c.Rate); err != nil {
			t.Fatal(err)
		}
	}
	if o := os.Getenv("DIAG_ONSET"); o != "" {
		d, err := time.ParseDuration(o)
		if err != nil {
			t.Fatal(err)
		}
		c.Duration += d - c.Onset
		c.Onset = d
	}
	onset := Start.Add(c.Onset)
	simulate(t, c, func(x *sim) {
		x.onEval = func(at time.Time, snap *graph.Snapshot) {
			if at.Before(onset.Add(-10*time.Second)) && kind != "lag" {
				return
			}
			line := fmt.Sprintf("+%v vis=%v", at.Sub(onset), !x.faultVisible.IsZero())
			for _, e := range snap.Edges {
				src, _ := snap.Node(e.Source)
				dst, _ := snap.Node(e.Target)
				switch {
				case kind == "retry" && src.Name == "checkout" && dst.Name == "payments":
					line += fmt.Sprintf(" req=%d err=%d retries=%d ratio=%.3f", e.Requests, e.Errors, e.Retries, e.RetryRatio)
					if r := e.Recent; r != nil {
						line += fmt.Sprintf(" recent req=%d err=%d retries=%d", r.Requests, r.Errors, r.Retries)
					}
				case kind == "circuit" && src.Name == "orders":
					line += fmt.Sprintf(" %s req=%d unans=%d", dst.Name, e.Requests, e.Unanswered)
				case kind == "lag" && e.Lag != nil:
					line += fmt.Sprintf(" lag=%s %q", e.Lag.Status, e.Lag.Reason)
				}
			}
			if kind == "bottleneck" {
				for _, p := range snap.Paths {
					line += fmt.Sprintf(" path %s traces=%d", p.Operation, p.Traces)
				}
			}
			for _, f := range x.engine.Findings(0) {
				if f.State != finding.StateResolved {
					line += fmt.Sprintf(" [%s %s %s]", f.State, f.Kind, subjectString(f.Subject))
				}
			}
			t.Log(line)
		}
	})
}
