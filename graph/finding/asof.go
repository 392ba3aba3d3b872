package finding

import (
	"slices"
	"time"
)

// AsOf returns f as it was at `at`, reconstructed from its timeline, and
// whether it was open then: started at or before `at` and not resolved
// before it (a finding that resolved exactly at `at` is returned resolved).
// f is the finding's latest state, as storage keeps it.
//
//   - State and Severity are those of the last timeline step at or before
//     `at`. A timeline that lost middle steps (it keeps the first and the
//     newest) can leave `at` in the gap after a pending first step; if the
//     finding had fired by `at` (FiredAt), it is returned firing, at the
//     severity of that step. Without a timeline (findings stored before
//     timelines were kept), State comes from FiredAt and ResolvedAt and
//     Severity stays the latest.
//   - FiredAt and ResolvedAt later than `at` are cleared; a finding
//     resolved by `at` that fired again later gets the time of that
//     resolution. The timeline is cut at `at`; a Peak later than `at` is
//     dropped (what was worst by then is not known).
//   - LastSeen is clamped to the newest evaluation known at or before
//     `at` (a timeline step or the peak), when the finding was seen later.
//   - Summary and Evidence are those of the latest evaluation kept at or
//     before `at`: the last one when LastSeen is not after `at`, else the
//     peak when it was by then and at the same severity; otherwise the
//     last ones stay (storage keeps no other), as does the BlastRadius.
//
// AsOf does not modify f: the result's timeline is its own; Evidence and
// BlastRadius are shared, read-only.
func AsOf(f Finding, at time.Time) (Finding, bool) {
	if f.StartedAt.After(at) {
		return Finding{}, false
	}
	out := f
	n := 0 // steps at or before at
	for n < len(f.Timeline) && !f.Timeline[n].At.After(at) {
		n++
	}
	out.Timeline = slices.Clone(f.Timeline[:n])
	if n == 0 {
		out.Timeline = nil
	}
	if out.FiredAt != nil && out.FiredAt.After(at) {
		out.FiredAt = nil
	}
	switch {
	case n > 0:
		step := f.Timeline[n-1]
		out.State, out.Severity = step.State, step.Severity
		if step.State == StatePending && out.FiredAt != nil {
			out.State = StateFiring // the steps between were dropped
		}
		out.ResolvedAt = nil
		if out.State == StateResolved {
			out.ResolvedAt = &step.At
		}
	case len(f.Timeline) > 0:
		// Started by at, yet its first step is later: the step was
		// recorded at the evaluation after the start. Pending then.
		out.State, out.ResolvedAt = StatePending, nil
	default:
		switch {
		case f.ResolvedAt != nil && !f.ResolvedAt.After(at):
			out.State = StateResolved
		case out.FiredAt != nil:
			out.State, out.ResolvedAt = StateFiring, nil
		default:
			out.State, out.ResolvedAt = StatePending, nil
		}
	}
	if out.State == StateResolved && out.ResolvedAt.Before(at) {
		return Finding{}, false
	}
	if out.Peak != nil && out.Peak.At.After(at) {
		out.Peak = nil
	}
	if f.LastSeen.After(at) {
		seen := f.StartedAt
		if n > 0 {
			seen = f.Timeline[n-1].At
		}
		if pk := out.Peak; pk != nil && pk.At.After(seen) {
			seen = pk.At
		}
		out.LastSeen = seen
		if pk := out.Peak; pk != nil && pk.Severity == out.Severity {
			out.Summary, out.Evidence = pk.Summary, pk.Evidence
		}
	}
	return out, true
}
