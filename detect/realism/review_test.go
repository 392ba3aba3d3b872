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

// TestReviewSeesPlantedRetries is the healthy test's control: the same
// harness, the sync-chain system's gateway now retrying a failing api at
// once, three times. The review warns on that edge, so the healthy
// systems' silence is the review judging them, not missing data.
func TestReviewSeesPlantedRetries(t *testing.T) {
	c := Case{Shape: SyncChain, Rate: 10, Duration: 3 * time.Minute, Modify: func(sys *System) {
		sys.Services[0].Calls[0].Retries, sys.Services[0].Calls[0].Backoff = 3, 0
		sys.Services[1].ErrRate = 0.3
	}}
	var warned bool
	simulate(t, c, func(s *sim) {
		r, err := review.New(review.Options{}, s.paths)
		require.NoError(t, err)
		s.onEval = func(at time.Time, snap *graph.Snapshot) {
			for _, o := range r.Review(snap).Observations {
				if o.Kind == review.KindRetryNoBackoff && o.Severity == review.SeverityWarning && o.Subject.Source == "gateway" && o.Subject.Target == "api" {
					warned = true
				}
			}
		}
	})
	require.True(t, warned, "no retry_without_backoff warning on gateway -> api")
}
