//go:build race

package gateway

// raceEnabled: the tests run under the race detector, which slows the
// gateway down several times; the load tests scale themselves down.
const raceEnabled = true
