package api

import (
	"fmt"
	"net/http"

	"github.com/seed-a49a8342/cartograph/graph/finding"
)

// incidentsResponse is the body of GET /api/v1/incidents.
type incidentsResponse struct {
	Incidents []finding.Incident `json:"incidents"`
}

// incidents answers GET /api/v1/incidents?state=open|resolved|all
// (default open), from the newest tick.
func (a *API) incidents(w http.ResponseWriter, r *http.Request) {
	var state finding.IncidentState
	switch v := r.URL.Query().Get("state"); v {
	case "", "open":
		state = finding.IncidentOpen
	case "all":
		state = 0
	default:
		if err := state.UnmarshalText([]byte(v)); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: want open, resolved or all", v))
			return
		}
	}
	writeJSON(w, http.StatusOK, incidentsResponse{Incidents: a.incidentsIn(state)})
}

// incident answers GET /api/v1/incidents/{id}.
func (a *API) incident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, inc := range a.incidentsIn(0) {
		if inc.ID == id {
			writeJSON(w, http.StatusOK, inc)
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("no incident %q (resolved incidents are kept for a while, then forgotten)", id))
}

// incidentsIn lists the incidents of the newest tick in state (0: every
// state): open first, newest first; none before the first tick.
func (a *API) incidentsIn(state finding.IncidentState) []finding.Incident {
	t := a.current()
	if t == nil {
		return []finding.Incident{}
	}
	out := make([]finding.Incident, 0, len(t.incidents))
	for _, inc := range t.incidents {
		if state == 0 || inc.State == state {
			out = append(out, inc)
		}
	}
	return out
}
