package realism

import (
	"sync/atomic"
	"time"
)

// Clock is the simulated clock every component of a run reads through its
// Now option. Only the simulation loop moves it, forward only; Now is safe
// for concurrent use.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the simulated time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Set moves the clock to t; a t before the current time is ignored, so the
// clock never runs backwards.
func (c *Clock) Set(t time.Time) {
	if n := t.UnixNano(); n > c.ns.Load() {
		c.ns.Store(n)
	}
}
