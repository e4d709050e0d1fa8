package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// TestWSDrain: a Shutdown delivers the frames queued for a WebSocket
// client that had not read them, then the Close of its virtual
// connection, then a Close frame 1001, and returns once the client closed.
func TestWSDrain(t *testing.T) {
	g, errc := startGWManual(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 1)
	const frames = 300
	payload := bytes.Repeat([]byte("d"), 3000)
	for range frames {
		s.sendData(id, string(payload))
	}
	s.ping() // every frame before it is routed toward the client
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	for i := range frames {
		if f := c.read(); !bytes.Equal(f, proto.EncodeData(nil, id, payload)) {
			t.Fatalf("frame %d: %d bytes, want the data frame", i, len(f))
		}
	}
	// Then at most the Close of the virtual connection (the gateway tells
	// one end of each: see Shutdown), then the Close frame 1001.
	wc.SetReadDeadline(time.Now().Add(waitFor))
	_, m, err := wc.ReadMessage()
	if err == nil {
		if !bytes.Equal(m, proto.Command{Type: proto.CmdClose, ConnID: id}.Encode(nil)) {
			t.Fatalf("got message %x after the frames, want Close(%d) or the Close frame", m, id)
		}
		expectWSClose(t, wc, gws.StatusGoingAway, false)
	} else if ce := (*ws.CloseError)(nil); !errors.As(err, &ce) || ce.Code != gws.StatusGoingAway {
		t.Fatalf("got %v after the frames, want Close 1001", err)
	} else {
		expectSocketEnd(t, wc.NetConn())
	}
	wc.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	st := g.Stats()
	if st.WS.Disconnects[ReasonShutdown] != 1 || st.UndeliveredAt(ReasonShutdown).Frames != 0 {
		t.Fatalf("shutdown disconnects %d, undelivered %+v", st.WS.Disconnects[ReasonShutdown], st.UndeliveredAt(ReasonShutdown))
	}
}

// TestWSDrainPeerStaysOpen: a WebSocket client that reads everything a
// Shutdown flushes to it, Close frame included, but keeps its socket open
// (and sends on, discarded): Shutdown ends its link as soon as the client
// has acknowledged every byte, as on TCP, not at the idle timeout (30 s)
// or the deadline. It failed at the deadline: the drain could not see the
// socket under the WebSocket (unacked said -1, "cannot tell"), so it
// waited for the client's EOF.
func TestWSDrainPeerStaysOpen(t *testing.T) {
	g, errc := startGWManual(t, Config{ClientIdleTimeout: 30 * time.Second})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id, _ := open(t, c, s, 1)
	for i := range 50 {
		s.sendData(id, fmt.Sprint("frame ", i))
	}
	s.ping()
	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	for i := range 50 {
		c.expectData(id, fmt.Sprint("frame ", i))
	}
	wc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, _, err := wc.ReadMessage()
		if err == nil {
			continue // the Close of the virtual connection, if sent
		}
		var ce *ws.CloseError
		if !errors.As(err, &ce) || ce.Code != gws.StatusGoingAway {
			t.Fatalf("got %v, want Close 1001", err)
		}
		break
	}
	// The client sends on, its socket open.
	wc.Write(proto.EncodeData(nil, id, []byte("after the close")))
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown after %v: %v", time.Since(start), err)
		}
	case <-time.After(2 * waitFor):
		t.Fatal("Shutdown did not return")
	}
	t.Logf("Shutdown returned after %v", time.Since(start))
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrGatewayClosed) {
			t.Fatalf("Serve returned %v", err)
		}
	}
	if st := g.Stats(); st.WS.Disconnects[ReasonShutdown] != 1 {
		t.Fatalf("shutdown disconnects %d, want 1", st.WS.Disconnects[ReasonShutdown])
	}
}
