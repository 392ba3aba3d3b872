package realism

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestPoisson(t *testing.T) {
	for _, rate := range []float64{1, 10, 100, 1000} {
		t.Run(time.Duration(float64(time.Second)/rate).String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(rate)))
			p := NewPoisson(rng, t0, rate, func(time.Time) float64 { return rate })
			span := time.Duration(float64(20_000)/rate) * time.Second // 20,000 expected events
			end := t0.Add(span)
			n, gaps, sq := 0, 0.0, 0.0
			prev := t0
			for at := p.Next(); at.Before(end); at = p.Next() {
				g := at.Sub(prev).Seconds()
				gaps += g
				sq += g * g
				prev = at
				n++
			}
			want := rate * span.Seconds()
			if d := math.Abs(float64(n) - want); d > 4*math.Sqrt(want) {
				t.Errorf("%d arrivals in %v, want %.0f +- %.0f", n, span, want, 4*math.Sqrt(want))
			}
			// Exponential gaps: the coefficient of variation is 1.
			mean := gaps / float64(n)
			cv := math.Sqrt(sq/float64(n)-mean*mean) / mean
			if math.Abs(cv-1) > 0.05 {
				t.Errorf("gap coefficient of variation %.3f, want 1 (Poisson)", cv)
			}
		})
	}
	t.Run("diurnal", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 2))
		const rate = 5.0
		p := NewPoisson(rng, t0, rate*(1+DiurnalAmplitude), func(at time.Time) float64 { return rate * diurnal(at) })
		// Count per hour from 09:00 to 21:00 against the integral of the
		// rate over the hour.
		counts := map[int]int{}
		end := t0.Add(12 * time.Hour)
		for at := p.Next(); at.Before(end); at = p.Next() {
			counts[at.Hour()]++
		}
		for h := 9; h < 21; h++ {
			want := 0.0
			for m := range 60 {
				want += rate * diurnal(time.Date(2026, 3, 2, h, m, 30, 0, time.UTC)) * 60
			}
			if d := math.Abs(float64(counts[h]) - want); d > 4*math.Sqrt(want) {
				t.Errorf("%02d:00: %d arrivals, want %.0f", h, counts[h], want)
			}
		}
		if counts[14] <= counts[9] {
			t.Errorf("the afternoon peak (%d) is not above the morning (%d)", counts[14], counts[9])
		}
	})
}
