package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/diagram"
)

// Bounds of the export filters.
const (
	maxExportHops   = 6
	maxExportHidden = 200
)

// exportFilter reads the filters the exports add to the map's
// (?window=, ?at=, ?env=): ?namespace=, ?focus= with ?hops= (default 2,
// as on the map) and ?hide= (repeated).
func exportFilter(r *http.Request) (diagram.Filter, error) {
	q := r.URL.Query()
	f := diagram.Filter{Namespace: strings.TrimSpace(q.Get("namespace")), Focus: strings.TrimSpace(q.Get("focus")), Hops: 2}
	if v := q.Get("hops"); v != "" {
		h, err := strconv.Atoi(v)
		if err != nil || h < 0 || h > maxExportHops {
			return f, fmt.Errorf("hops %q: want 0 to %d", v, maxExportHops)
		}
		f.Hops = h
	}
	if len(q["hide"]) > maxExportHidden {
		return f, fmt.Errorf("hide: at most %d values", maxExportHidden)
	}
	for _, id := range q["hide"] {
		if id != "" {
			f.Hide = append(f.Hide, id)
		}
	}
	return f, nil
}

// exportMermaid serves GET /api/v1/graph.mmd: the graph as a Mermaid
// flowchart.
func (a *API) exportMermaid(w http.ResponseWriter, r *http.Request) {
	a.export(w, r, "text/vnd.mermaid; charset=utf-8", diagram.Mermaid)
}

// exportDOT serves GET /api/v1/graph.dot: the graph as a Graphviz digraph.
func (a *API) exportDOT(w http.ResponseWriter, r *http.Request) {
	a.export(w, r, "text/vnd.graphviz; charset=utf-8", diagram.DOT)
}

func (a *API) export(w http.ResponseWriter, r *http.Request, contentType string, render func(*graph.Snapshot, diagram.Filter) []byte) {
	f, err := exportFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s, ok := a.mapSnapshot(w, r)
	if !ok {
		return
	}
	body := render(s, f)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body) // the client went away: nothing to do
}
