//go:build !race

package snet

const raceEnabled = false
