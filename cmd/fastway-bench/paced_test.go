package main

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/proto"
)

// writeTimes is a net.Conn whose writes only report when they happened.
type writeTimes struct {
	net.Conn
	at chan int64
}

func (w *writeTimes) Write(b []byte) (int, error) {
	w.at <- nowNS()
	return len(b), nil
}

// TestSendPacedKeepsItsOffset: a paced sender sends its first message when
// it falls due (its start offset) and one every period after, so
// connections started at spread offsets send spread out, not together at
// each period's end. It stops as soon as it is told to.
func TestSendPacedKeepsItsOffset(t *testing.T) {
	const (
		period = 200 * time.Millisecond // 5 messages a second
		offset = 100 * time.Millisecond
		// A sleep may overrun on a loaded machine, so a write is let be
		// late by up to three quarters of a period; a sender that loses
		// its offset writes early (never allowed) or a period late.
		slack = period * 3 / 4
	)
	w := &writeTimes{at: make(chan int64, 8)}
	c := &echoConn{client: &client{conn: w, ids: []uint32{1}}}
	var phase atomic.Int32
	stop := make(chan struct{})
	done := make(chan error, 1)
	t0 := nowNS() + int64(offset)
	go func() { done <- c.sendPaced(proto.HeaderSize+64, float64(time.Second/period), t0, &phase, stop) }()
	for k := range int64(2) {
		due := t0 + k*int64(period)
		select {
		case at := <-w.at:
			if at < due || at > due+int64(slack) {
				t.Errorf("message %d written %v after it fell due (want 0 to %v)", k, time.Duration(at-due), slack)
			}
		case <-time.After(time.Second):
			t.Fatalf("message %d not written within a second", k)
		}
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("the sender did not stop when told to")
	}
}
