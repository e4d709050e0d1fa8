package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv marks a process a fan-out run of a test started: this test
// binary, run as fastway-bench (the run starts os.Executable()).
const childEnv = "FASTWAY_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}
