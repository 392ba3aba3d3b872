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
	outFlag      = flag.String("realism.out", "", "write the matrix as Markdown to this file")
	healthyFlag  = flag.Duration("realism.healthy", 0, "with -realism.full: how long healthy cases run (default 3h)")
	fastFlag     = flag.Duration("realism.healthy-fast", 0, "with -realism.full: how long healthy cases at 1,000 req/s run (default: as -realism.healthy)")
)

// matrix is the matrix the test runs: the full one on request, else the
// reduced one, shorter still under -race or -short.
func matrix() Matrix {
	if *fullFlag {
		m := FullMatrix()
		if *healthyFlag > 0 {
			m.Healthy = *healthyFlag
		}
		m.HealthyFast = *fastFlag
		return m
	}
	if raceEnabled || testing.Short() {
		m := ReducedMatrix(12 * time.Minute)
		m.Onsets = []time.Duration{20 * time.Second, 5 * time.Minute}
		return m
	}
	return ReducedMatrix(45 * time.Minute)
}

// knownMisses are the cases of the matrix that miss issue #15's targets
// today, with the reason (the issue asks that anything below precision and
// recall 1.0 be listed with its reason). TestMatrix logs them instead of
// failing, and says when one starts meeting its targets so that it can go.
// Every other case must meet them.
var knownMisses = map[string]string{
	"retry-storm/1rps/onset=30m0s": "at 1 req/s the first failing span arrives 3.6 s after the onset, so the storm must fire by the evaluation at +15 s; " +
		"then the collector holds 3 retries among the 13 calls of the newest buckets (1 among 15 at +10 s), as the retries pair only when their caller's next export (every 5 s) arrives. " +
		"Firing on 3 of 13 would page on a healthy edge with 1% background errors and a retry policy once in 3,800 evaluations (5 h; 0.5% errors: once in 40 h), " +
		"and holding from one retry at +10 s would start the hold on 14% of healthy evaluations; it is pending at +20 s (11 retries among 22) and fires at +25 s, 21.4 s after the first failing span",
}

// TestMatrix runs the realism matrix and asserts issue #15's targets:
// precision 1.0 and recall 1.0 for every finding kind, each fault detected
// within its budget and no finding on a healthy system; and issue #20's:
// no incident on a healthy system, and the fault's node named first by
// the incident holding its finding. Each case is a
// subtest that fails with its verdict.
func TestMatrix(t *testing.T) {
	m := matrix()
	cases := m.Cases()
	start := time.Now()
	results, err := RunMatrix(context.Background(), cases, runtime.GOMAXPROCS(0), func(r Result) {
		if *fullFlag {
			t.Logf("done: %s (wall %v)", r.Verdict(), r.Wall.Round(time.Millisecond))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d cases in %v", len(cases), time.Since(start).Round(time.Millisecond))
	var judged []Result
	for _, r := range results {
		t.Run(r.Case.Name(), func(t *testing.T) {
			t.Logf("%s (simulated %v: %d traces, %d spans in %d export requests, %d re-sent; wall %v)", r.Verdict(), r.Case.Duration,
				r.Stats.Traces, r.Stats.Spans, r.Stats.Requests, r.Stats.Resent, r.Wall.Round(time.Millisecond))
			var problems []string
			if r.Case.Shape.Fault() && !r.TruePositive {
				problems = append(problems, fmt.Sprintf("fault not found within %v: %s", r.Case.Budget(r.Settings), r.Verdict()))
			}
			for _, f := range r.FalsePositives {
				problems = append(problems, fmt.Sprintf("false positive: %s fired at +%v: %s", f, f.FiredAt().Sub(Start).Round(time.Second), f.Summary))
			}
			problems = append(problems, r.IncidentProblems()...)
			why, known := knownMisses[r.Case.Name()]
			switch {
			case known && len(problems) > 0:
				t.Logf("known miss (%s): %v", why, problems)
			case known:
				t.Logf("%s now meets its targets: remove it from knownMisses (%s)", r.Case.Name(), why)
			default:
				for _, p := range problems {
					t.Error(p)
				}
				judged = append(judged, r)
			}
		})
	}
	sum := Summarize(results)
	for _, k := range Summarize(judged).Kinds {
		if k.Precision() != 1 || k.Recall() != 1 {
			t.Errorf("%s: precision %.2f (TP %d, FP %d), recall %.2f (TP %d, FN %d) over the cases not listed in knownMisses; want 1.0 and 1.0",
				k.Kind, k.Precision(), k.TP, k.FP, k.Recall(), k.TP, k.FN)
		}
	}
	for _, k := range sum.Kinds {
		t.Logf("%s over every case: precision %.2f (TP %d, FP %d), recall %.2f (TP %d, FN %d)", k.Kind, k.Precision(), k.TP, k.FP, k.Recall(), k.TP, k.FN)
	}
	if *markdownFlag {
		fmt.Fprintf(os.Stdout, "\n%s\n", sum.Markdown())
	}
	if *outFlag != "" {
		if err := os.WriteFile(*outFlag, []byte(sum.Markdown()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
