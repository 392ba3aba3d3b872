package realism

import (
	"math"
	"math/rand/v2"
	"time"
)

// DiurnalAmplitude is the relative swing of the daily traffic cycle: the
// rate at the daily peak is (1+DiurnalAmplitude) times the nominal rate.
const DiurnalAmplitude = 0.3

// diurnal returns the factor the nominal rate is multiplied by at t: a sine
// over 24h peaking at 14:00 UTC.
func diurnal(t time.Time) float64 {
	h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60 + float64(t.UTC().Second())/3600
	return 1 + DiurnalAmplitude*math.Sin(2*math.Pi*(h-8)/24)
}

// Poisson draws the arrival times of a non-homogeneous Poisson process by
// thinning (Lewis and Shedler): candidates at the peak rate, each kept with
// probability rate(t)/peak. It is deterministic for a given rand source and
// not safe for concurrent use.
type Poisson struct {
	rng  *rand.Rand
	peak float64 // events per second, an upper bound of rate
	rate func(time.Time) float64
	t    time.Time
}

// NewPoisson returns arrivals after start at rate(t) events per second,
// which must never exceed peak.
func NewPoisson(rng *rand.Rand, start time.Time, peak float64, rate func(time.Time) float64) *Poisson {
	return &Poisson{rng: rng, peak: peak, rate: rate, t: start}
}

// Next returns the next arrival time.
func (p *Poisson) Next() time.Time {
	if !(p.peak > 0) {
		return time.Unix(math.MaxInt32, 0) // never
	}
	for {
		p.t = p.t.Add(time.Duration(p.rng.ExpFloat64() / p.peak * float64(time.Second)))
		if p.rng.Float64()*p.peak <= p.rate(p.t) {
			return p.t
		}
	}
}
