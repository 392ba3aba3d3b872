package realism

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

var (
	fullFlag     = flag.Bool("realism.full", os.Getenv("CARTOGRAPH_REALISM_FULL") != "", "run the full realism matrix (rates 1-1000 req/s, hours of simulated time; also env CARTOGRAPH_REALISM_FULL=1)")
	markdownFlag = flag.Bool("realism.markdown", false, "print the matrix as Markdown (for BENCHMARKS.md) on stdout")
)

// matrix is the matrix the test runs: the full one on request, else the
// reduced one, shorter still under -race or -short.
func matrix() Matrix {
	if *fullFlag {
		return FullMatrix()
	}
	if raceEnabled || testing.Short() {
		m := ReducedMatrix(20 * time.Minute)
		m.Onsets = []time.Duration{20 * time.Second, 12 * time.Minute}
		return m
	}
	return ReducedMatrix(75 * time.Minute)
}

// TestMatrix runs the realism matrix and asserts issue #15's targets:
// precision 1.0 and recall 1.0 for every finding kind, each fault detected
// within its budget and no finding on a healthy system. Each case is a
// subtest that fails with its verdict.
func TestMatrix(t *testing.T) {
	m := matrix()
	cases := m.Cases()
	start := time.Now()
	results, err := RunMatrix(context.Background(), cases, runtime.GOMAXPROCS(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
	for _, r := range results {
		t.Run(r.Case.Name(), func(t *testing.T) {
			t.Logf("%s (simulated %v: %d traces, %d spans in %d export requests, %d re-sent; wall %v)", r.Verdict(), r.Case.Duration,
				r.Stats.Traces, r.Stats.Spans, r.Stats.Requests, r.Stats.Resent, r.Wall.Round(time.Millisecond))
			if r.Case.Shape.Fault() && !r.TruePositive {
				t.Errorf("fault not found within %v: %s", r.Case.Budget(r.Settings), r.Verdict())
			}
			for _, f := range r.FalsePositives {
				t.Errorf("false positive: %s fired at +%v: %s", f, f.FiredAt().Sub(Start).Round(time.Second), f.Summary)
			}
		})
	}
	sum := Summarize(results)
	for _, k := range sum.Kinds {
		if k.Precision() != 1 || k.Recall() != 1 {
			t.Errorf("%s: precision %.2f (TP %d, FP %d), recall %.2f (TP %d, FN %d); want 1.0 and 1.0", k.Kind, k.Precision(), k.TP, k.FP, k.Recall(), k.TP, k.FN)
		}
	}
	if *markdownFlag {
		fmt.Fprintf(os.Stdout, "\n%s\n", sum.Markdown())
	}
}
