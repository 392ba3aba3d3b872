//go:build race

package detect

// raceEnabled: the race detector slows the simulations tenfold, so they
// run their short form (as with -short) under it.
const raceEnabled = true
