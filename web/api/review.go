package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/changes"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// ReviewSource judges how the services of a snapshot talk to each other
// (graph/review's Reviewer). It reads s and must not modify it.
type ReviewSource interface {
	Review(s *graph.Snapshot) review.Report
}

// reviewOf answers the request's review, ?window= and ?namespace=, or
// answers the request itself on failure.
func (a *API) reviewOf(w http.ResponseWriter, r *http.Request) (review.Report, bool) {
	if a.o.Review == nil {
		notYet(w, r)
		return review.Report{}, false
	}
	if r.URL.Query().Has("at") {
		writeError(w, http.StatusBadRequest, errors.New("at: the review judges the live window: the call patterns it reads from traces are not stored"))
		return review.Report{}, false
	}
	s, ok := a.snapshot(w, r)
	if !ok {
		return review.Report{}, false
	}
	rep := a.o.Review.Review(s)
	if q := r.URL.Query(); q.Has("namespace") {
		ns := q.Get("namespace")
		var known []string
		for _, n := range s.Nodes {
			if n.Namespace != "" && !slices.Contains(known, n.Namespace) {
				known = append(known, n.Namespace)
			}
		}
		if ns != "" && !slices.Contains(known, ns) {
			slices.Sort(known)
			writeError(w, http.StatusBadRequest, fmt.Errorf("namespace %q: the graph has %s (or leave namespace empty for the nodes outside any)", ns, listOrNone(known)))
			return review.Report{}, false
		}
		rep = rep.InNamespace(ns)
	}
	return rep, true
}

// reviewJSON serves GET /api/v1/review.
func (a *API) reviewJSON(w http.ResponseWriter, r *http.Request) {
	if rep, ok := a.reviewOf(w, r); ok {
		writeJSON(w, http.StatusOK, rep)
	}
}

// reviewMarkdown serves GET /api/v1/review.md.
func (a *API) reviewMarkdown(w http.ResponseWriter, r *http.Request) {
	rep, ok := a.reviewOf(w, r)
	if !ok {
		return
	}
	body := rep.Markdown()
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body) // the client went away: nothing to do
}

// recordReview keeps the review of a tick's snapshot in the review
// history, when there is one.
func (a *API) recordReview(s *graph.Snapshot) {
	if a.o.Review == nil || a.o.ReviewHistory == nil || s == nil {
		return
	}
	a.o.ReviewHistory.Add(a.o.Review.Review(s))
}

// GraphDiff is GET /api/v1/graph/diff's answer: what changed in the graph
// and, when the collector keeps a review history, in its review.
type GraphDiff struct {
	graph.Diff
	// Observations are those that appeared or went away between the
	// reviews of the ticks nearest at or before from and to (nil: no
	// review history).
	Observations *ObservationDiff `json:"observations,omitempty"`
	// Changes are those recorded from the earlier time to the later one
	// (nil: changes are not recorded).
	Changes *[]changes.Change `json:"changes,omitempty"`
}

// ObservationDiff is the review's part of a diff. When the history does
// not reach back to from (kept in memory: since the collector started, at
// most --max-review-history distinct reviews), Appeared and WentAway are
// empty and Note says why.
type ObservationDiff struct {
	review.Diff
	// Since is when the oldest review kept was made.
	Since *time.Time `json:"history_since,omitempty"`
	Note  string     `json:"note,omitempty"`
}

// withObservations adds to d the observations that appeared or went away
// between from and to. A stored history that cannot be read is said in
// the note: the graph's part of the diff stands.
func (a *API) withObservations(ctx context.Context, d graph.Diff, from, to time.Time) GraphDiff {
	out := GraphDiff{Diff: d}
	h := a.o.ReviewHistory
	if h == nil {
		return out
	}
	od := &ObservationDiff{Diff: review.Diff{Appeared: []review.Observation{}, WentAway: []review.Observation{}}}
	out.Observations = od
	if since := h.Since(); !since.IsZero() {
		od.Since = &since
	}
	before, okFrom, err := h.Read(ctx, from)
	if err != nil {
		a.o.Logger.Warn("reading the stored review history", "err", err)
		od.Note = "the stored review history cannot be read: " + err.Error()
		return out
	}
	after, okTo, err := h.Read(ctx, to)
	if err != nil {
		a.o.Logger.Warn("reading the stored review history", "err", err)
		od.Note = "the stored review history cannot be read: " + err.Error()
		return out
	}
	switch {
	case okFrom && okTo:
		od.Diff = review.DiffReports(before, after)
	case od.Since == nil && !h.Stored():
		od.Note = "no review kept yet: reviews are kept in memory from the collector's first evaluation"
	case od.Since == nil:
		od.Note = "no review kept yet before " + to.UTC().Format(time.RFC3339)
	case h.Stored():
		od.Note = fmt.Sprintf("no review stored at or before %s: reviews are stored from the first evaluation of a collector with this storage", from.UTC().Format(time.RFC3339))
	default:
		od.Note = fmt.Sprintf("the review history begins at %s (kept in memory since the collector started, at most --max-review-history reviews; stored with --storage clickhouse): no review at %s to compare",
			od.Since.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	return out
}
