package review

import (
	"context"
	"log/slog"
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

// History keeps the reviews of past evaluations, so that a review can be
// read as of a past time: call patterns come from sampled traces held only
// for the live window, so a past review cannot be computed again from
// stored history. In memory it keeps one review per run of reviews with
// the same observation ids (the first of the run: a review whose ids are
// those of the one before is not kept, the run it belongs to grows), at
// most Max of them, the oldest forgotten first. With a Store, the first
// review of each run is also written there (by Run, off the caller's
// path), and a time before the memory begins is read from it: a diff over
// past times works after a restart. It is safe for concurrent use.
type History struct {
	o HistoryOptions

	mu      sync.Mutex
	entries []historyEntry // oldest first
	pending chan Report    // runs begun, to write to the store
	dropped int            // runs not written: the queue was full
}

// HistoryStore keeps the first review of each run beyond the process
// (storage/clickhouse's Store).
type HistoryStore interface {
	// AppendReview writes rep.
	AppendReview(ctx context.Context, rep Report) error
	// ReviewAt returns the newest review written at or before t; ok is
	// false when there is none.
	ReviewAt(ctx context.Context, t time.Time) (rep Report, ok bool, err error)
}

// HistoryOptions configure a History.
type HistoryOptions struct {
	// Max is the reviews kept in memory (at least 1; the flag
	// --max-review-history).
	Max int
	// Store, when set, keeps the runs beyond the process.
	Store HistoryStore
	// MaxPending bounds the runs waiting to be written to Store (default
	// 64); more are dropped and logged.
	MaxPending int
	Logger     *slog.Logger
}

// historyEntry is one review, standing for [its GeneratedAt, the next
// entry's): the reviews in between had the same observation ids.
type historyEntry struct {
	since time.Time
	until time.Time // the newest review of the run
	ids   []string  // sorted
	rep   Report    // the first review of the run
}

// NewHistory returns a History for o.
func NewHistory(o HistoryOptions) *History {
	o.Max = max(o.Max, 1)
	if o.MaxPending <= 0 {
		o.MaxPending = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &History{o: o}
	if o.Store != nil {
		h.pending = make(chan Report, o.MaxPending)
	}
	return h
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
	if len(h.entries) >= h.o.Max {
		h.entries = slices.Delete(h.entries, 0, len(h.entries)-h.o.Max+1)
	}
	h.entries = append(h.entries, historyEntry{since: rep.GeneratedAt, until: rep.GeneratedAt, ids: ids, rep: rep})
	if h.pending != nil {
		select {
		case h.pending <- rep:
		default:
			h.dropped++
		}
	}
}

// Run writes the runs begun to the Store until ctx is done (without a
// Store it only waits). A review that cannot be written is logged and
// left out: the memory still has it.
func (h *History) Run(ctx context.Context) error {
	if h.pending == nil {
		<-ctx.Done()
		return nil
	}
	reported := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case rep := <-h.pending:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := h.o.Store.AppendReview(wctx, rep)
			cancel()
			if err != nil && ctx.Err() == nil {
				h.o.Logger.Warn("writing the review history", "generated_at", rep.GeneratedAt, "err", err)
			}
			h.mu.Lock()
			dropped := h.dropped
			h.mu.Unlock()
			if dropped > reported {
				h.o.Logger.Warn("review history runs not written: the queue was full", "dropped", dropped-reported)
				reported = dropped
			}
		}
	}
}

// At returns the review that stood at t in memory: the first of the
// reviews made at or before t with the observations the newest of them
// had (its numbers are those of when these observations first stood
// together). ok is false when the memory begins after t (or is empty).
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

// Read returns the review that stood at t: from memory, else, for a time
// before the memory begins, from the Store. ok is false when neither
// reaches back to t.
func (h *History) Read(ctx context.Context, t time.Time) (rep Report, ok bool, err error) {
	if rep, ok := h.At(t); ok {
		return rep, true, nil
	}
	if h.o.Store == nil {
		return Report{}, false, nil
	}
	return h.o.Store.ReviewAt(ctx, t)
}

// Stored says whether the history has a Store.
func (h *History) Stored() bool { return h.o.Store != nil }

// Since returns when the oldest review kept in memory was made (zero:
// none).
func (h *History) Since() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == 0 {
		return time.Time{}
	}
	return h.entries[0].since
}

// Len returns the reviews kept in memory.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}
