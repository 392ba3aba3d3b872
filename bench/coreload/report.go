package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// row is one measurement of one binary.
type row struct {
	Name  string // dotted: scenario.phase.what
	Value float64
	Unit  string
	Note  string
}

// report collects a binary's measurements and prints them: each row as it
// comes as a machine-readable RESULT line, and a table per scenario. Safe
// for concurrent use.
type report struct {
	rev string
	out io.Writer

	mu   sync.Mutex
	rows []row
	from int // first row not yet in a table
}

func newReport(rev string, out io.Writer) *report { return &report{rev: rev, out: out} }

// add records a measurement and prints its RESULT line:
// RESULT <rev> <name> <value> <unit>.
func (r *report) add(name string, v float64, unit, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row{Name: name, Value: v, Unit: unit, Note: note})
	fmt.Fprintf(r.out, "RESULT %s %s %s %s\n", r.rev, name, formatValue(v), unit)
}

// notef prints a comment line.
func (r *report) notef(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "# "+format+"\n", args...)
}

// table prints the rows added since the last table.
func (r *report) table(title string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows := r.rows[r.from:]
	r.from = len(r.rows)
	w := len("measurement")
	for _, x := range rows {
		w = max(w, len(x.Name))
	}
	fmt.Fprintf(r.out, "\n## %s\n", title)
	fmt.Fprintf(r.out, "%-12s  %-*s  %14s  %-8s  %s\n", "revision", w, "measurement", "value", "unit", "note")
	for _, x := range rows {
		fmt.Fprintf(r.out, "%-12s  %-*s  %14s  %-8s  %s\n", r.rev, w, x.Name, formatValue(x.Value), x.Unit, x.Note)
	}
	fmt.Fprintln(r.out)
}

// formatValue prints v with three significant decimals at most, or "NaN"
// when not measured.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
}

// latencies summarises durations.
type latencies struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// summarise returns the nearest-rank quantiles of d (zero when empty).
func summarise(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return latencies{N: len(s), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// machineNote describes who else used the CPU during a reading.
func machineNote(r meterReading) string {
	return fmt.Sprintf("tool %.0f%%, other processes %.0f%% of a core", r.share(r.Tool), r.share(r.Others))
}

// safeDiv is a/b, NaN when b is 0.
func safeDiv(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// joinArgs prints a command line.
func joinArgs(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		if s == "" || strings.ContainsAny(s, " \t\"'") {
			s = strconv.Quote(s)
		}
		q[i] = s
	}
	return strings.Join(q, " ")
}
