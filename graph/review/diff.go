package review

import (
	"slices"
	"sync"
	"time"
)

// Diff is what changed in the review between two times: the observations
// of the later review that the earlier had not (by id), and those of the
// earlier that the later has not. An observation whose severity changed is
// in neither.
type Diff struct {
	// From and To are when the two reviews compared were made (the
	// evaluations nearest at or before the times asked for).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Appeared and WentAway hold the observations as the review that had
	// them last saw them.
	Appeared []Observation `json:"appeared"`
	WentAway []Observation `json:"went_away"`
}

// DiffReports compares the review from (the earlier) with to, by
// observation id.
func DiffReports(from, to Report) Diff {
	d := Diff{From: from.GeneratedAt, To: to.GeneratedAt, Appeared: []Observation{}, WentAway: []Observation{}}
	before := make(map[string]bool, len(from.Observations))
	for _, o := range from.Observations {
		before[o.ID] = true
	}
	after := make(map[string]bool, len(to.Observations))
	for _, o := range to.Observations {
		after[o.ID] = true
		if !before[o.ID] {
			d.Appeared = append(d.Appeared, o)
		}
	}
	for _, o := range from.Observations {
		if !after[o.ID] {
			d.WentAway = append(d.WentAway, o)
		}
	}
	return d
}

// History keeps the reviews of past evaluations in memory, so that a
// review can be read as of a past time: call patterns come from sampled
// traces held only for the live window, so a past review cannot be
// computed again from stored history. It keeps one review per distinct
// set of observation ids (a review whose ids are those of the one before
// is not kept: the span the one before stands for grows), at most max of
// them: the oldest are forgotten first. It is safe for concurrent use.
type History struct {
	max int

	mu      sync.Mutex
	entries []historyEntry // oldest first
}

// historyEntry is one review, standing for [its GeneratedAt, the next
// entry's): the reviews in between had the same observation ids.
type historyEntry struct {
	since time.Time
	ids   []string  // sorted
	rep   Report    // the first review of the span
	until time.Time // the newest review of the span
}

// NewHistory returns a History of at most n reviews (at least 1).
func NewHistory(n int) *History {
	return &History{max: max(n, 1)}
}

// Add records rep, a review made after every review added before.
func (h *History) Add(rep Report) {
	ids := make([]string, len(rep.Observations))
	for i, o := range rep.Observations {
		ids[i] = o.ID
	}
	slices.Sort(ids)
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.entries); n > 0 {
		last := &h.entries[n-1]
		if !rep.GeneratedAt.After(last.until) {
			return // out of order: the history only moves forward
		}
		last.until = rep.GeneratedAt
		if slices.Equal(last.ids, ids) {
			return
		}
	}
	if len(h.entries) >= h.max {
		h.entries = slices.Delete(h.entries, 0, len(h.entries)-h.max+1)
	}
	h.entries = append(h.entries, historyEntry{since: rep.GeneratedAt, until: rep.GeneratedAt, ids: ids, rep: rep})
}

// At returns the review that stood at t: the first of the reviews made at
// or before t with the observations the newest of them had (its numbers
// are those of when these observations first stood together). ok is
// false when the history begins after t (or is empty).
func (h *History) At(t time.Time) (rep Report, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, found := slices.BinarySearchFunc(h.entries, t, func(e historyEntry, t time.Time) int { return e.since.Compare(t) })
	if !found {
		i--
	}
	if i < 0 {
		return Report{}, false
	}
	return h.entries[i].rep, true
}

// Since returns when the oldest review kept was made (zero: none).
func (h *History) Since() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == 0 {
		return time.Time{}
	}
	return h.entries[0].since
}

// Len returns the reviews kept.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}
