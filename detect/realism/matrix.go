package realism

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// Matrix is a set of cases: every fault at every rate and onset, every
// healthy shape at every rate.
type Matrix struct {
	Rates  []float64
	Onsets []time.Duration
	// Tail is how long a fault case runs after its onset (enough to see a
	// late detection and collateral findings).
	Tail time.Duration
	// Healthy is how long a healthy case runs; HealthyFast, when set, how
	// long those at 1,000 req/s or more run (they cost the most).
	Healthy, HealthyFast time.Duration
	Faults               []Shape
	Shapes               []Shape
}

// FullMatrix is issue #15's matrix: rates 1, 10, 100 and 1,000 requests/s
// per entry, faults 20 s and 30 min after start-up, healthy shapes for 3
// simulated hours.
func FullMatrix() Matrix {
	return Matrix{Rates: []float64{1, 10, 100, 1000}, Onsets: []time.Duration{20 * time.Second, 30 * time.Minute},
		Tail: 3 * time.Minute, Healthy: 3 * time.Hour, Faults: FaultShapes, Shapes: HealthyShapes}
}

// ReducedMatrix keeps every fault, every healthy shape, both onsets and the
// low rates (1 and 10 requests/s), with healthy shapes run for healthy
// (long enough for a rolling restart and a cron burst: at least 15m).
func ReducedMatrix(healthy time.Duration) Matrix {
	m := FullMatrix()
	m.Rates = []float64{1, 10}
	m.Healthy = healthy
	return m
}

// Cases lists the matrix's cases, faults first.
func (m Matrix) Cases() []Case {
	var out []Case
	for _, f := range m.Faults {
		for _, r := range m.Rates {
			for _, on := range m.Onsets {
				out = append(out, Case{Shape: f, Rate: r, Onset: on, Duration: on + m.Tail})
			}
		}
	}
	for _, sh := range m.Shapes {
		for _, r := range m.Rates {
			d := m.Healthy
			if r >= 1000 && m.HealthyFast > 0 {
				d = m.HealthyFast
			}
			out = append(out, Case{Shape: sh, Rate: r, Duration: d})
		}
	}
	return out
}

// RunMatrix runs cases on parallel workers and returns their results in
// the order of cases. done, when not nil, is called with each result as it
// comes (from the workers' goroutines).
func RunMatrix(ctx context.Context, cases []Case, parallel int, done func(Result)) ([]Result, error) {
	parallel = max(parallel, 1)
	out := make([]Result, len(cases))
	errs := make([]error, len(cases))
	// The most expensive cases first, so that workers finish together.
	order := make([]int, len(cases))
	for i := range order {
		order[i] = i
	}
	cost := func(c Case) float64 { return c.Rate * c.Duration.Seconds() }
	slices.SortStableFunc(order, func(a, b int) int { return -cmpFloat(cost(cases[a]), cost(cases[b])) })
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = Run(ctx, cases[i])
				if done != nil && errs[i] == nil {
					done(out[i])
				}
			}
		})
	}
	for _, i := range order {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// KindScore is the score of one finding kind over a matrix.
type KindScore struct {
	Kind finding.Kind
	// Faults is how many fault cases expect this kind; TP of them fired
	// within budget, FN did not (Late of which fired after the budget).
	Faults, TP, FN, Late int
	// FP counts conditions of this kind that fired when they should not
	// have, over every case (healthy or not).
	FP int
}

// Precision is TP/(TP+FP); 1 when nothing of the kind fired at all.
func (k KindScore) Precision() float64 {
	if k.TP+k.FP == 0 {
		return 1
	}
	return float64(k.TP) / float64(k.TP+k.FP)
}

// Recall is TP/(TP+FN); 1 when no fault expects the kind.
func (k KindScore) Recall() float64 {
	if k.TP+k.FN == 0 {
		return 1
	}
	return float64(k.TP) / float64(k.TP+k.FN)
}

// Latencies is the detection latency distribution of one kind at one rate,
// over every detection (late ones included).
type Latencies struct {
	Kind          finding.Kind
	Rate          float64
	Cases, Found  int
	Budget        time.Duration
	P50, P95, Max time.Duration
}

// Summary scores a set of results.
type Summary struct {
	Kinds     []KindScore
	Latencies []Latencies
	Results   []Result
}

// Summarize scores results per kind and computes the latency distribution
// per kind and rate.
func Summarize(results []Result) Summary {
	kinds := map[finding.Kind]*KindScore{}
	for _, k := range []finding.Kind{finding.KindRetryStorm, finding.KindBottleneck, finding.KindOpenCircuit, finding.KindConsumerLag} {
		kinds[k] = &KindScore{Kind: k}
	}
	type lk struct {
		k finding.Kind
		r float64
	}
	lats := map[lk][]time.Duration{}
	counts := map[lk]int{}
	budgets := map[lk]time.Duration{}
	for _, r := range results {
		if exp := r.Case.Expect(); exp != nil {
			ks := kinds[exp.Kind]
			ks.Faults++
			key := lk{exp.Kind, r.Case.Rate}
			counts[key]++
			budgets[key] = r.Case.Budget(r.Settings)
			switch {
			case r.TruePositive:
				ks.TP++
			default:
				ks.FN++
				if r.Detected != nil {
					ks.Late++
				}
			}
			if r.Detected != nil {
				lats[key] = append(lats[key], r.Latency)
			}
		}
		for _, f := range r.FalsePositives {
			kinds[f.Kind].FP++
		}
	}
	var s Summary
	for _, k := range []finding.Kind{finding.KindRetryStorm, finding.KindBottleneck, finding.KindOpenCircuit, finding.KindConsumerLag} {
		s.Kinds = append(s.Kinds, *kinds[k])
	}
	for key, n := range counts {
		l := Latencies{Kind: key.k, Rate: key.r, Cases: n, Budget: budgets[key]}
		if ds := lats[key]; len(ds) > 0 {
			slices.Sort(ds)
			l.Found = len(ds)
			l.P50, l.P95, l.Max = quantile(ds, 0.5), quantile(ds, 0.95), ds[len(ds)-1]
		}
		s.Latencies = append(s.Latencies, l)
	}
	slices.SortFunc(s.Latencies, func(a, b Latencies) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return cmpFloat(a.Rate, b.Rate)
	})
	s.Results = results
	return s
}

// quantile is the nearest-rank quantile of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Markdown renders s as the tables of BENCHMARKS.md: precision and recall
// per kind, detection latency per kind and rate, false positives per
// healthy shape and rate, and every case's verdict.
func (s Summary) Markdown() string {
	var b strings.Builder
	b.WriteString("| finding kind | fault cases | detected in budget | late | missed | false positives | precision | recall |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range s.Kinds {
		fmt.Fprintf(&b, "| `%s` | %d | %d | %d | %d | %d | %.2f | %.2f |\n", k.Kind, k.Faults, k.TP, k.Late, k.FN-k.Late, k.FP, k.Precision(), k.Recall())
	}
	b.WriteString("\n| finding kind | rate (req/s) | detected / cases | budget | latency p50 | p95 | max |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range s.Latencies {
		p50, p95, mx := "–", "–", "–"
		if l.Found > 0 {
			p50, p95, mx = secs(l.P50), secs(l.P95), secs(l.Max)
		}
		fmt.Fprintf(&b, "| `%s` | %g | %d / %d | %s | %s | %s | %s |\n", l.Kind, l.Rate, l.Found, l.Cases, secs(l.Budget), p50, p95, mx)
	}
	b.WriteString("\n| healthy shape | rate (req/s) | simulated | findings fired | pending only |\n|---|---:|---:|---|---:|\n")
	for _, r := range s.Results {
		if r.Case.Shape.Fault() {
			continue
		}
		fired := "0"
		if len(r.FalsePositives) > 0 {
			var names []string
			for _, f := range r.FalsePositives {
				names = append(names, "`"+f.String()+"`")
			}
			slices.Sort(names)
			fired = fmt.Sprintf("%d: %s", len(names), strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, "| %s | %g | %v | %s | %d |\n", r.Case.Shape, r.Case.Rate, r.Case.Duration, fired, len(r.PendingOnly))
	}
	b.WriteString("\nCase by case:\n\n")
	for _, r := range s.Results {
		fmt.Fprintf(&b, "- %s\n", r.Verdict())
	}
	return b.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
