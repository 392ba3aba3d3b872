//go:build race

package realism

const raceEnabled = true
