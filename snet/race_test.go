//go:build race

package snet

// raceEnabled: the race detector slows these tests down; the heaviest run
// smaller.
const raceEnabled = true
