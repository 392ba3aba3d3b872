package ui

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Number formats for people: short, with units, never "NaN".

func fmtRate(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 0.1:
		return fmt.Sprintf("%.1f/min", r*60)
	case r < 10:
		return fmt.Sprintf("%.1f/s", r)
	case r < 10_000:
		return fmt.Sprintf("%.0f/s", r)
	default:
		return fmt.Sprintf("%.0fk/s", r/1000)
	}
}

func fmtPercent(ratio float64) string {
	p := ratio * 100
	switch {
	case p == 0:
		return "0%"
	case p < 0.1:
		return "<0.1%"
	case p < 10:
		return fmt.Sprintf("%.1f%%", p)
	default:
		return fmt.Sprintf("%.0f%%", p)
	}
}

func fmtMs(ms float64) string {
	switch {
	case math.IsNaN(ms) || math.IsInf(ms, 0):
		return "–"
	case ms < 1:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmtSeconds(ms / 1000)
	}
}

func fmtSeconds(s float64) string {
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return "∞"
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	case s < 3600:
		return fmt.Sprintf("%.0fm%02.0fs", math.Floor(s/60), math.Mod(s, 60))
	default:
		return fmt.Sprintf("%.0fh%02.0fm", math.Floor(s/3600), math.Mod(s/60, 60))
	}
}

func fmtCount(n float64) string {
	switch {
	case n < 1000:
		return strconv.FormatFloat(n, 'f', 0, 64)
	case n < 1e6:
		return fmt.Sprintf("%.1fk", n/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1fM", n/1e6)
	default:
		return fmt.Sprintf("%.1fG", n/1e9)
	}
}

func fmtFloat(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }

// fmtAge says how long ago t was, relative to now.
func fmtAge(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtEvidence renders one evidence value.
func fmtEvidence(v any) string {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 0, 64)
		}
		return strconv.FormatFloat(x, 'g', 4, 64)
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "–"
	default:
		return fmt.Sprint(x)
	}
}

// fmtTimes formats a multiplier: 1.25 -> "1.25×".
func fmtTimes(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64) + "×"
}
