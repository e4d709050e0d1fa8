package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/internal/ws"
	gws "github.com/gobwas/ws"
)

// smallRcv dials with an 8 KiB receive buffer: a client that does not
// read fills its socket fast.
var smallRcv = ws.DialOptions{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10) })
	}}
	return d.DialContext(ctx, network, addr)
}}

// TestWSAttackCloseBodiesUnderFlood: a client flooded by its server stops
// reading until the gateway has left a message unfinished, then sends its
// Close frame with a body of 0, 1, 2 or 125 bytes and reads on. It must get
// whole messages, one Close frame (1002 for the 1-byte body, which RFC
// 6455 forbids; 1000 else) and nothing after it; its link must be counted
// a protocol error for the 1-byte body, peer closed else, never a write
// error.
func TestWSAttackCloseBodiesUnderFlood(t *testing.T) {
	// Queues that hold what the gateway's socket (up to 4 MiB) does not.
	g := startGW(t, Config{ClientSendChanSize: 1 << 20, ClientSendQueueBytes: 64 << 20})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	rounds := scaled(10, 5, 3)
	want := [numReasons]uint64{}
	bodies := map[int][]byte{
		0:   nil,
		1:   {0x03},
		2:   {0x03, 0xe8},
		125: append([]byte{0x03, 0xe8}, bytes.Repeat([]byte("r"), 123)...),
	}
	var failures []string
	for _, blen := range []int{0, 1, 2, 125} {
		for i := range rounds {
			c, wc := dialWS(t, url, smallRcv)
			id, _ := open(t, c, s, 1)
			before := ws.Unfinished()
			stop := make(chan struct{})
			done := flood(s, id, byte(i), 1000, 600, stop)
			// The client does not read: the gateway's non-blocking write
			// leaves a message unfinished.
			poll.Until(t, waitFor, "a message left unfinished", func() bool { return ws.Unfinished() > before })
			if err := wc.WriteFrame(gws.OpClose, true, bodies[blen]); err != nil {
				t.Fatal(err)
			}
			rep := readToClose(wc, id, nil)
			close(stop)
			<-done
			wantCode := gws.StatusNormalClosure
			if blen == 1 {
				wantCode = gws.StatusProtocolError
				want[ReasonProtocolError]++
			} else {
				want[ReasonPeerClosed]++
			}
			switch {
			case rep.badData != nil:
				t.Fatalf("body %d round %d: %v", blen, i, rep.badData)
			case !rep.closed:
				t.Fatalf("body %d round %d: no Close frame after %d messages (%v)", blen, i, rep.msgs, rep.endErr)
			case rep.after > 0:
				t.Fatalf("body %d round %d: %d bytes after the Close frame", blen, i, rep.after)
			case rep.timeout:
				t.Fatalf("body %d round %d: the gateway did not close the connection after its Close", blen, i)
			case rep.code != wantCode:
				t.Fatalf("body %d round %d: Close %d, want %d", blen, i, rep.code, wantCode)
			}
			syncServer(t, s)
		}
	}
	var st Stats
	poll.Until(t, waitFor, "the clients gone", func() bool {
		st = g.Stats()
		return st.WS.Conns == 0
	})
	t.Logf("ws disconnects %v, want peer closed %d, protocol error %d", st.WS.Disconnects,
		want[ReasonPeerClosed], want[ReasonProtocolError])
	for _, r := range []Reason{ReasonPeerClosed, ReasonProtocolError, ReasonWriteError} {
		if st.WS.Disconnects[r] != want[r] {
			failures = append(failures, fmt.Sprintf("%v: %d, want %d", r, st.WS.Disconnects[r], want[r]))
		}
	}
	if len(failures) > 0 {
		t.Fatalf("disconnect reasons wrong: %v (a 1-byte Close body is a protocol error, but the writer's ErrCloseSent closed the link first as peer closed)", failures)
	}
}

// TestWSAttackDrainWhileClosing: a Shutdown starts while flooded clients
// send their Close frames: each gets whole messages, exactly one Close
// frame (its reply 1000, or the drain's 1001), nothing after it, and
// Shutdown returns well within its deadline.
func TestWSAttackDrainWhileClosing(t *testing.T) {
	g, errc := startGWManual(t, Config{})
	url := startWS(t, g, ws.Config{MaxHandshakesPerSource: -1})
	s := g.dialServer(t, 1)
	n := scaled(40, 20, 10)
	wcs := make([]*ws.Client, n)
	ids := make([]uint32, n)
	stop := make(chan struct{})
	var dones []<-chan struct{}
	for i := range n {
		c, wc := dialWS(t, url, ws.DialOptions{})
		ids[i], _ = open(t, c, s, 1)
		wcs[i] = wc
		dones = append(dones, flood(s, ids[i], byte(i), 500, 20, stop))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i, wc := range wcs {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe8})
			}
			rep := readToCloseThen(wc, ids[i], nil, func() {
				if i%2 == 1 {
					wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe9}) // the answer to the drain's
				}
			})
			switch {
			case rep.badData != nil:
				errs <- fmt.Errorf("client %d: %v", i, rep.badData)
			case !rep.closed:
				errs <- fmt.Errorf("client %d: no Close frame after %d messages (%v)", i, rep.msgs, rep.endErr)
			case rep.code != gws.StatusNormalClosure && rep.code != gws.StatusGoingAway:
				errs <- fmt.Errorf("client %d: Close %d", i, rep.code)
			case rep.after > 0:
				errs <- fmt.Errorf("client %d: %d bytes after the Close frame", i, rep.after)
			case rep.timeout:
				errs <- fmt.Errorf("client %d: the gateway did not close the connection after its Close %d", i, rep.code)
			}
			wc.Close()
		})
	}
	shut := make(chan error, 1)
	t0 := time.Now()
	close(start)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	wg.Wait()
	close(stop)
	for _, d := range dones {
		<-d
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	took := time.Since(t0)
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := g.Stats()
	t.Logf("Shutdown took %v; ws disconnects %v", took, st.WS.Disconnects)
	if took > 2*time.Second {
		t.Errorf("Shutdown took %v with every client closing", took)
	}
	if sum := st.WS.Disconnects[ReasonPeerClosed] + st.WS.Disconnects[ReasonShutdown]; sum != uint64(n) || st.WS.Disconnects[ReasonWriteError] != 0 {
		t.Errorf("disconnects %v, want %d peer closed or shutdown", st.WS.Disconnects, n)
	}
}

// TestWSAttackDrainCloseReplyLeavesSocketOpen: a Shutdown drains a client's
// queue (flush) while the client, which had stopped reading, sends its
// Close frame and reads on. The reader answers the Close and ends its
// drain; the writer's next write fails with ErrCloseSent, and writeFailed
// closes the link, which is closed already (flush): neither closes the
// socket nor shuts its writing side. The client gets the Close reply and
// then waits: the gateway holds the connection, and Shutdown waits for
// it, until Shutdown's deadline.
func TestWSAttackDrainCloseReplyLeavesSocketOpen(t *testing.T) {
	g, errc := startGWManual(t, Config{ClientSendChanSize: 1 << 20, ClientSendQueueBytes: 64 << 20})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, wc := dialWS(t, url, smallRcv)
	id, _ := open(t, c, s, 1)
	before := ws.Unfinished()
	stop := make(chan struct{})
	done := flood(s, id, 7, 1000, 600, stop)
	poll.Until(t, waitFor, "a message left unfinished", func() bool { return ws.Unfinished() > before })
	close(stop)
	<-done
	syncServer(t, s) // all routed: the client's queue holds the rest
	shut := make(chan error, 1)
	t0 := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	poll.Until(t, waitFor, "the client's link closing gracefully", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for l := range g.links {
			if l.side == sideClient && !l.isClosed() {
				return false
			}
		}
		return true
	})
	if err := wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	var gotClose time.Duration
	rep := readToCloseThen(wc, id, nil, func() { gotClose = time.Since(t0) })
	ended := time.Since(t0)
	wc.Close()
	err := <-shut
	took := time.Since(t0)
	for range 2 {
		<-errc
	}
	st := g.Stats()
	t.Logf("%d messages, Close %d at %v; stream ended at %v (%v); Shutdown returned %v at %v; disconnects %v, undelivered %v",
		rep.msgs, rep.code, gotClose, ended, rep.endErr, err, took, st.WS.Disconnects, st.Undelivered)
	switch {
	case rep.badData != nil:
		t.Fatal(rep.badData)
	case !rep.closed || rep.after > 0:
		t.Fatalf("closed %v, %d bytes after", rep.closed, rep.after)
	case rep.timeout:
		t.Fatalf("the gateway answered the Close (at %v) and then held the connection open: the client's read deadline passed at %v", gotClose, ended)
	case took > 2*time.Second:
		t.Fatalf("Shutdown took %v", took)
	}
}
