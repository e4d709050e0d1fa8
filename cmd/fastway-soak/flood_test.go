package main

import (
	"strings"
	"testing"
	"time"
)

// shortFlood is a flood of a second per scenario: every part of the real
// check (the binary, raw peers, pacing, the stall, the slow consumer, RSS
// sampling, ops "stats"), with a settle that ends as soon as RSS is back.
func shortFlood(t *testing.T) floodOptions {
	fo := floodOptions{
		options:   options{bin: fastwayBin, dir: t.TempDir(), key: "flood-test", dur: time.Second},
		scenarios: scenarioNames,
		frame:     16 << 10, readRate: 20 << 20, stall: 500 * time.Millisecond,
		settle: 5 * time.Second, slack: 20 << 20, sample: 100 * time.Millisecond,
	}
	if err := fo.validate(); err != nil {
		t.Fatal(err)
	}
	return fo
}

// TestFloodPasses: the three scenarios pass against the binary's defaults,
// with every frame the client sent received by the server.
func TestFloodPasses(t *testing.T) {
	rs, err := runFlood(shortFlood(t))
	if err != nil {
		t.Fatalf("flood failed: %v", err)
	}
	if len(rs) != len(scenarioNames) {
		t.Fatalf("%d results, want %d", len(rs), len(scenarioNames))
	}
	for _, r := range rs {
		if !r.backChecked || !r.isBack {
			t.Errorf("%s: RSS back not checked or not back: %+v", r.scenario, r)
		}
		if r.scenario != "slow-client" && r.sent != r.received {
			t.Errorf("%s: sent %s, received %s", r.scenario, r.sent, r.received)
		}
	}
}

// TestFloodFailsPastTheBound: with the server's byte bounds lifted
// (-ServerSendQueueBytes=1G and -ServerSendQueueBytesPerClient=1G, passed
// through to the binary) the gateway
// queues what a stalled server does not read, and the check reports the
// bound the default flags give as broken, while still finding nothing
// lost. ServerSendChanSize=4000 (16 KiB frames: 62.5 MiB) keeps the test's
// memory and time bounded.
func TestFloodFailsPastTheBound(t *testing.T) {
	fo := shortFlood(t)
	def, err := gatewayLimits(nil)
	if err != nil {
		t.Fatal(err)
	}
	fo.scenarios = []string{"stall"}
	fo.stall = fo.dur
	fo.settle = 0
	fo.bound = def.bound()
	fo.gwArgs = []string{"-ServerSendQueueBytes=1G", "-ServerSendQueueBytesPerClient=1G", "-ServerSendChanSize=4000"}
	rs, err := runFlood(fo)
	if err == nil {
		t.Fatal("the flood passed with the server's byte bound lifted")
	}
	if len(rs) != 1 || len(rs[0].failures) != 1 || !strings.Contains(rs[0].failures[0], "past the bound") {
		t.Fatalf("want one failure, the bound; got %q", rs[0].failures)
	}
	if r := rs[0]; r.sent != r.received {
		t.Errorf("sent %s, received %s", r.sent, r.received)
	}
	t.Logf("failed as it should: %v: %s", err, rs[0].failures[0])
}

// TestGatewayLimits: the bound is read from the binary's arguments, in
// every flag syntax, and defaults where they do not set it.
func TestGatewayLimits(t *testing.T) {
	l, err := gatewayLimits(nil)
	if err != nil {
		t.Fatal(err)
	}
	// 2 × (4 MiB + 1 MiB + 3 × 512 KiB + 64 KiB + 64 KiB) + 32 MiB
	if want := int64(2*(4<<20+1<<20+3*512<<10+64<<10+64<<10) + 32<<20); l.bound() != want {
		t.Errorf("default bound %d, want %d", l.bound(), want)
	}
	l, err = gatewayLimits([]string{"-ServerSendQueueBytes=1G", "--MaxPacket", "64K", "-ClientBufferSize=128K", "-MemPoolFactor=4", "-LogLevel=warn"})
	if err != nil {
		t.Fatal(err)
	}
	if l.serverQueue != 1<<30 || l.maxPacket != 64<<10 || l.clientBuf != 128<<10 || l.factor != 4 || l.clientQueue != 1<<20 {
		t.Errorf("limits %+v", l)
	}
	if _, err := gatewayLimits([]string{"-MaxPacket"}); err == nil {
		t.Error("a flag without a value was taken")
	}
	if _, err := gatewayLimits([]string{"-MaxPacket=lots"}); err == nil {
		t.Error("a bad size was taken")
	}
}
