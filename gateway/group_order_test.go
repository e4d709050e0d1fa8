package gateway

import (
	"runtime"
	"testing"
)

// TestGroupLenFollowsTheWire: once Len counts a member that another
// goroutine's Join is adding, a Publish reaches that member: the Join is
// on the wire before it (proto.Group's Len, Members and the fleet's
// check for members wait for a Join or Leave in progress). Before, Len
// counted the member as soon as Join recorded it and before Join queued
// its command, so a Publish sent on Len's word could pass the Join and
// reach nobody (TestFleetStatic lost its "hello" once that way).
func TestGroupLenFollowsTheWire(t *testing.T) {
	g := startGW(t, Config{})
	srv, pairs := epFanout(t, g, &countingFormat{}, 1)
	p := pairs[0]
	rounds := scaled(3000, 1000, 300)
	for range rounds {
		grp, err := srv.NewGroup()
		if err != nil {
			t.Fatal(err)
		}
		joined := make(chan error, 1)
		go func() { joined <- grp.Join(p.server) }()
		for grp.Len() == 0 {
			runtime.Gosched()
		}
		if err := grp.Publish("hello", nil); err != nil {
			t.Fatal(err)
		}
		if err := <-joined; err != nil {
			t.Fatal(err)
		}
		expectMsgs(t, p, "hello") // a Publish that passed the Join reaches nobody: "marker" comes first
		if err := grp.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
