package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/seed-a49a8342/cartograph/graph/changes"
)

// ChangeSource lists the changes recorded with their time in [from, to],
// oldest first (graph/changes.Recorder does: those in memory and those
// in storage). The caller owns the slice.
type ChangeSource interface {
	Changes(ctx context.Context, from, to time.Time) ([]changes.Change, error)
}

// defaultChangesSpan is how far back GET /api/v1/changes reaches when
// from is not given.
const defaultChangesSpan = time.Hour

// changesResponse is the body of GET /api/v1/changes.
type changesResponse struct {
	Changes []changes.Change `json:"changes"`
}

// changes answers GET /api/v1/changes?from=&to= (RFC 3339; default the
// last hour to now).
func (a *API) changes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	to := a.o.Now()
	var err error
	if v := q.Get("to"); v != "" {
		if to, err = parseTime("to", v); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	from := to.Add(-defaultChangesSpan)
	if v := q.Get("from"); v != "" {
		if from, err = parseTime("from", v); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	if to.Before(from) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("from %s is after to %s: from is the earlier time",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)))
		return
	}
	cs, err := a.o.Changes.Changes(r.Context(), from, to)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("changes cannot be read: %w", err))
		return
	}
	if cs == nil {
		cs = []changes.Change{}
	}
	writeJSON(w, http.StatusOK, changesResponse{Changes: cs})
}

// Changes returns the changes recorded in [from, to], read through the
// API's handler (GET /api/v1/changes); a StatusError 501 when none are
// recorded.
func (l *Local) Changes(ctx context.Context, from, to time.Time) ([]changes.Change, error) {
	if l.a.o.Changes == nil {
		return nil, &StatusError{Code: http.StatusNotImplemented, Message: "changes are not recorded"}
	}
	var out changesResponse
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	if err := l.get(ctx, "/api/v1/changes", q, &out); err != nil {
		return nil, err
	}
	return out.Changes, nil
}
