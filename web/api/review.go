package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/seed-a49a8342/cartograph/graph"
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
