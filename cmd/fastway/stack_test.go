package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

// TestIdleReaderStack: an idle client's reader, which has dialed, closed a
// virtual connection and had a Ping answered (the deepest paths every
// reader takes), keeps the smallest goroutine stack (2 KiB): code every
// reader runs must stay small (docs/benchmarks.md, "An idle client's
// 2 KiB"). It measures the real binary (built without the race detector,
// whose instrumentation grows stacks): the goroutine stacks its /metrics
// reports before and after n such clients. A stack doubled to 4 KiB, as
// one call more deep in enqueue did, shows as 4 KiB or more per client.
func TestIdleReaderStack(t *testing.T) {
	t.Parallel()
	const n = 500
	p := startProc(t, t.TempDir(), slices.Clone(adminArgs)...)
	clientAddr, serverAddr := p.ready()
	base := p.adminURL()
	srv := dialServer(t, loopback(t, serverAddr), 1)
	stacks := func() float64 { t.Helper(); return stackInUse(t, base) }
	before := stacks()
	for range n {
		c := dialPeer(t, loopback(t, clientAddr))
		c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
		id := c.readCmd(proto.CmdAccept).ConnID
		srv.readCmd(proto.CmdConnect)
		c.send(proto.Command{Type: proto.CmdClose, ConnID: id}.Encode(nil))
		c.readCmd(proto.CmdClose)
		srv.readCmd(proto.CmdClose)
		c.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
		c.readCmd(proto.CmdPing)
	}
	per := (stacks() - before) / n
	t.Logf("%.0f bytes of goroutine stack per idle client (its reader)", per)
	if per > 3<<10 {
		t.Errorf("%.0f bytes of stack per idle client: a reader's stack grew past 2 KiB", per)
	}
}

// TestIdleWSReaderStack: TestIdleReaderStack for WebSocket clients. Their
// reader writes its answers inline too (ws.Conn.WriteNow), a few calls
// deeper than a TCP link's: an idle one must still sit in the smallest
// goroutine stack.
func TestIdleWSReaderStack(t *testing.T) {
	t.Parallel()
	const n = 500
	p := startProc(t, t.TempDir(), append(slices.Clone(adminArgs), "-ClientWSAddr=127.0.0.1:0")...)
	_, serverAddr := p.ready()
	wsURL := "ws://" + loopback(t, p.waitFrom(0, "listening", "side", "ws").kv["addr"]) + "/"
	base := p.adminURL()
	srv := dialServer(t, loopback(t, serverAddr), 1)
	stacks := func() float64 { t.Helper(); return stackInUse(t, base) }
	before := stacks()
	for range n {
		c, _ := wsPeer(t, wsURL, ws.DialOptions{})
		c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(nil))
		id := c.readCmd(proto.CmdAccept).ConnID
		srv.readCmd(proto.CmdConnect)
		c.send(proto.Command{Type: proto.CmdClose, ConnID: id}.Encode(nil))
		c.readCmd(proto.CmdClose)
		srv.readCmd(proto.CmdClose)
		c.send(proto.Command{Type: proto.CmdPing}.Encode(nil))
		c.readCmd(proto.CmdPing)
	}
	per := (stacks() - before) / n
	t.Logf("%.0f bytes of goroutine stack per idle WebSocket client (its reader)", per)
	if per > 3<<10 {
		t.Errorf("%.0f bytes of stack per idle WebSocket client: a reader's stack grew past 2 KiB", per)
	}
}

// stackInUse is the gateway's go_memstats_stack_inuse_bytes, from /metrics
// at base.
func stackInUse(t *testing.T, base string) float64 {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "go_memstats_stack_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("/metrics has no go_memstats_stack_inuse_bytes")
	return 0
}
