package realism

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a49a8342/cartograph/graph"
	"github.com/seed-a49a8342/cartograph/graph/review"
)

// TestHealthyReviewHasNoWarning: the healthy systems of the realism
// matrix, production-shaped (Poisson arrivals, replicas, SDK batch
// export, background errors, a gateway retrying once after 50 ms), give
// the communication review nothing to warn about, at the defaults, at
// any evaluation once the window has filled.
func TestHealthyReviewHasNoWarning(t *testing.T) {
	shapes := HealthyShapes
	if raceEnabled || testing.Short() {
		shapes = []Shape{SyncChain, FanOut, BatchConsumer}
	}
	for _, shape := range shapes {
		t.Run(shape.String(), func(t *testing.T) {
			c := Case{Shape: shape, Rate: 10, Duration: 4 * time.Minute}
			var reviews, infos int
			simulate(t, c, func(s *sim) {
				r, err := review.New(review.Options{}, s.paths)
				require.NoError(t, err)
				s.onEval = func(at time.Time, snap *graph.Snapshot) {
					if at.Before(Start.Add(90 * time.Second)) {
						return
					}
					reviews++
					for _, o := range r.Review(snap).Observations {
						require.NotEqual(t, review.SeverityWarning, o.Severity, "at %v: %s: %s", at.Sub(Start), o.ID, o.Summary)
						if reviews == 1 {
							infos++
							t.Logf("info %s: %s", o.ID, o.Summary)
						}
					}
				}
			})
			require.Greater(t, reviews, 10)
		})
	}
}
