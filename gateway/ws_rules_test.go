package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	gws "github.com/gobwas/ws"
)

// The rules of docs/protocol.md §1 that concern clients, checked over
// WebSocket (§8) against the real gateway on loopback, as rules_test.go
// checks them over TCP.

func TestWSDialAcceptConnectAndData(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, _ := dialWS(t, url, ws.DialOptions{})
	c.write(mustHex(t, "09000000"+"00000000"+"00"+"01000000"))
	a := c.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != 1 || a.ConnID == 0 {
		t.Fatalf("got %+v, want Accept(ConnID, 1)", a)
	}
	k := s.readCmd()
	if k.Type != proto.CmdConnect || k.ConnID != a.ConnID || k.RemoteID == 0 {
		t.Fatalf("got %+v, want Connect(%d, clientID)", k, a.ConnID)
	}
	c.sendData(a.ConnID, "Hello")
	s.expectData(a.ConnID, "Hello")
	s.sendData(a.ConnID, "World!")
	c.expectData(a.ConnID, "World!")
	// Pipelined Dials are answered in order: known, unknown, known.
	var b []byte
	b = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(b)
	b = proto.Command{Type: proto.CmdDial, RemoteID: 99}.Encode(b)
	b = proto.Command{Type: proto.CmdDial, RemoteID: 1}.Encode(b)
	c.write(b)
	if a := c.readCmd(); a.Type != proto.CmdAccept || a.RemoteID != 1 {
		t.Fatalf("first reply %+v, want Accept from 1", a)
	}
	c.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 99})
	if a := c.readCmd(); a.Type != proto.CmdAccept || a.RemoteID != 1 {
		t.Fatalf("third reply %+v, want Accept from 1", a)
	}
	if st := g.Stats(); st.VirtualConns != 3 || st.WS.Conns != 1 {
		t.Fatalf("VirtualConns %d, ws conns %d; want 3, 1", st.VirtualConns, st.WS.Conns)
	}
}

func TestWSDialUnknownServerRefused(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	c, _ := dialWS(t, url, ws.DialOptions{})
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 42})
	c.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 42})
	if n := g.Stats().Refused(RefuseUnknownID); n != 1 {
		t.Fatalf("refused(unknown) = %d, want 1", n)
	}
	c.ping()
}

func TestWSCloseBothDirections(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, wc := dialWS(t, url, ws.DialOptions{})
	id1, _ := open(t, c, s, 1)
	id2, _ := open(t, c, s, 1)
	id3, _ := open(t, c, s, 1)
	// From the client: both ends get Close.
	c.send(proto.Command{Type: proto.CmdClose, ConnID: id1})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id1})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id1})
	// From the server: both ends get Close; a second one is ignored.
	s.send(proto.Command{Type: proto.CmdClose, ConnID: id2})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id2})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id2})
	s.send(proto.Command{Type: proto.CmdClose, ConnID: id2})
	s.ping()
	c.ping()
	// Data on a dead ConnID is answered with Close.
	c.sendData(id1, "late")
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id1})
	// The client's WebSocket Close: answered with Close 1000, counted as
	// peer closed, its last virtual connection closed toward the server.
	if err := wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
		t.Fatal(err)
	}
	expectWSClose(t, wc, gws.StatusNormalClosure, false)
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id3})
	eventually(t, "the client counted gone", func() bool {
		st := g.Stats()
		return st.WS.Conns == 0 && st.WS.Disconnects[ReasonPeerClosed] == 1 && st.VirtualConns == 0
	})
	// A client that just drops its socket: the same for the server.
	c2, wc2 := dialWS(t, url, ws.DialOptions{})
	id4, _ := open(t, c2, s, 1)
	wc2.Close()
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id4})
	eventually(t, "the second client counted gone", func() bool {
		st := g.Stats()
		return st.WS.Conns == 0 && st.WS.Disconnects[ReasonPeerClosed] == 2 && g.clients.len() == 0
	})
}

// TestWSNoDataAfterClose: once the gateway has answered a client's Close
// frame, no data frame follows it (RFC 6455 §5.5.1), though a server keeps
// sending to the client as it closes. Chromium fails such a connection with
// "Data frame received after close": the browser test caught it, as the
// reply from the reader raced the link's writes.
func TestWSNoDataAfterClose(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	// The browser's case: its last frame (a virtual connection's Close,
	// which the gateway answers) and its Close frame come in one read.
	// The reader answered the Close frame as it decoded it, and then the
	// Close command, with a data frame after the Close frame.
	for range 5 {
		c, wc := dialWS(t, url, ws.DialOptions{})
		id, _ := open(t, c, s, 1)
		b := wsFrame(gws.OpBinary, true, proto.Command{Type: proto.CmdClose, ConnID: id}.Encode(nil))
		b = append(b, wsFrame(gws.OpClose, true, []byte{0x03, 0xe8})...)
		if _, err := wc.NetConn().Write(b); err != nil {
			t.Fatal(err)
		}
		expectWSClose(t, wc, gws.StatusNormalClosure, false)
		s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	}
	// A server sending on as the client closes.
	for i := range 30 {
		c, wc := dialWS(t, url, ws.DialOptions{})
		id, _ := open(t, c, s, 1)
		// 640 KB at most: less than the client's send queue bound, so
		// that a client slow under -race is not closed as a slow consumer.
		stop := make(chan struct{})
		done := flood(s, id, byte(i), 200, 200, stop)
		wc.SetReadDeadline(time.Now().Add(waitFor))
		if _, _, err := wc.ReadMessage(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := wc.WriteFrame(gws.OpClose, true, []byte{0x03, 0xe8}); err != nil {
			t.Fatal(err)
		}
		expectWSClose(t, wc, gws.StatusNormalClosure, true)
		close(stop)
		<-done
		// The server's side: Close for the ConnID, and for the data it
		// sent on after it; the Ping's answer ends them.
		syncServer(t, s)
	}
	poll.UntilNil(t, waitFor, "the clients counted gone as peer closed", func() error {
		if st := g.Stats(); st.WS.Conns != 0 || st.WS.Disconnects[ReasonPeerClosed] != 35 {
			return fmt.Errorf("ws conns %d, disconnects %v", st.WS.Conns, st.WS.Disconnects)
		}
		return nil
	})
	if st := g.Stats(); st.WS.Disconnects[ReasonWriteError] != 0 {
		t.Fatalf("disconnects %v: a client that closed was counted as a write error", st.WS.Disconnects)
	}
}

func TestWSPingAnswered(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	c, wc := dialWS(t, url, ws.DialOptions{})
	c.write(mustHex(t, "05000000"+"00000000"+"05"))
	c.expect(mustHex(t, "05000000"+"00000000"+"05"))
	// A WebSocket Ping is answered with a Pong of the same payload.
	if err := wc.WriteFrame(gws.OpPing, true, []byte("are you there")); err != nil {
		t.Fatal(err)
	}
	wc.SetReadDeadline(time.Now().Add(waitFor))
	h, err := gws.ReadHeader(wc.NetConn())
	if err != nil || h.OpCode != gws.OpPong || h.Length != int64(len("are you there")) || h.Masked {
		t.Fatalf("got %+v, %v; want an unmasked Pong of 13 bytes", h, err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(wc.NetConn(), p); err != nil || string(p) != "are you there" {
		t.Fatalf("Pong payload %q, %v", p, err)
	}
}

func TestWSClientMaxConn(t *testing.T) {
	g := startGW(t, Config{ClientMaxConn: 2})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	c, _ := dialWS(t, url, ws.DialOptions{})
	first, _ := open(t, c, s, 1)
	open(t, c, s, 1)
	c.send(proto.Command{Type: proto.CmdDial, RemoteID: 1})
	c.expectCmd(proto.Command{Type: proto.CmdRefuse, RemoteID: 1})
	if n := g.Stats().Refused(RefuseLimit); n != 1 {
		t.Fatalf("refused(limit) = %d, want 1", n)
	}
	c.send(proto.Command{Type: proto.CmdClose, ConnID: first})
	c.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: first})
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: first})
	_, cid := open(t, c, s, 1)
	// The server's dial to the WebSocket client: not counted toward the
	// client's limit; data both ways on it.
	s.send(proto.Command{Type: proto.CmdDial, RemoteID: cid})
	a := s.readCmd()
	if a.Type != proto.CmdAccept || a.RemoteID != cid || a.ConnID == 0 {
		t.Fatalf("server's Dial to the ws client: got %+v, want Accept", a)
	}
	c.expectCmd(proto.Command{Type: proto.CmdConnect, ConnID: a.ConnID, RemoteID: 1})
	c.sendData(a.ConnID, "from client")
	s.expectData(a.ConnID, "from client")
	s.sendData(a.ConnID, "from server")
	c.expectData(a.ConnID, "from server")
}

// TestWSIdleTimeout: a silent WebSocket client is closed after
// ClientIdleTimeout with a Close frame (1000); one that sends only
// WebSocket control frames and empty messages is not.
func TestWSIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	g := startGW(t, Config{ClientIdleTimeout: idle})
	url := startWS(t, g, ws.Config{})
	_, silent := dialWS(t, url, ws.DialOptions{})
	_, busy := dialWS(t, url, ws.DialOptions{})
	start := time.Now()
	// busy sends a Ping, a Pong or an empty binary message every 40 ms,
	// reading nothing, for four idle timeouts.
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				sent <- nil
				return
			case <-tick.C:
			}
			var err error
			switch i % 3 {
			case 0:
				err = busy.WriteFrame(gws.OpPing, true, []byte("k"))
			case 1:
				err = busy.WriteFrame(gws.OpPong, true, nil)
			default:
				err = busy.WriteFrame(gws.OpBinary, true, nil)
			}
			if err != nil {
				sent <- err
				return
			}
		}
	}()
	expectWSClose(t, silent, gws.StatusNormalClosure, false)
	if d := time.Since(start); d < idle*3/4 {
		t.Fatalf("silent client closed after %v, before the idle timeout %v", d, idle)
	}
	eventually(t, "the idle disconnect counted", func() bool {
		return g.Stats().WS.Disconnects[ReasonIdleTimeout] == 1
	})
	eventually(t, "four idle timeouts gone by", func() bool { return time.Since(start) > 4*idle })
	close(stop)
	if err := <-sent; err != nil {
		t.Fatalf("busy client: %v", err)
	}
	if st := g.Stats(); st.WS.Disconnects[ReasonIdleTimeout] != 1 || st.WS.Conns != 1 {
		t.Fatalf("idle disconnects %d, ws conns %d; want 1, 1 (the busy one open)", st.WS.Disconnects[ReasonIdleTimeout], st.WS.Conns)
	}
	// And once it falls silent, it too is closed (its Pongs come first).
	expectWSClose(t, busy, gws.StatusNormalClosure, true)
}

// TestWSSlowConsumer: a WebSocket client that stops reading is dropped by
// the byte bound and, in its own run, by the frame bound, while another
// WebSocket client on the same server gets every message meanwhile.
func TestWSSlowConsumer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    Config
		size   int
		reason string
	}{
		{"bytes", Config{ClientSendQueueBytes: 256 << 10}, 4 << 10, "byte bound"},
		{"frames", Config{ClientSendChanSize: 64, ClientSendQueueBytes: 64 << 20}, 1 << 10, "frame bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGW(t, tc.cfg)
			url := startWS(t, g, ws.Config{})
			s := g.dialServer(t, 1)
			honest, _ := dialWS(t, url, ws.DialOptions{})
			slow, slowWC := dialWS(t, url, ws.DialOptions{})
			slowWC.NetConn().(*net.TCPConn).SetReadBuffer(4 << 10)
			hid, _ := open(t, honest, s, 1)
			sid, _ := open(t, slow, s, 1)

			// The server's reader watches for the slow client's Close.
			slowClosed := make(chan struct{})
			go func() {
				defer close(slowClosed)
				s.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
				for {
					f, err := s.fr.ReadFrame()
					if err != nil {
						return
					}
					if c, err := proto.DecodeCommand(f); err == nil && c.Type == proto.CmdClose && c.ConnID == sid {
						return
					}
				}
			}()
			// The honest client reads and counts every message.
			var got atomic.Int64
			readDone := make(chan error, 1)
			go func() {
				honest.conn.SetReadDeadline(time.Now().Add(4 * waitFor))
				for seq := uint32(0); ; seq++ {
					f, err := honest.fr.ReadFrame()
					if err != nil {
						readDone <- err
						return
					}
					h := proto.Header(f)
					if h.ConnID() != hid || binary.LittleEndian.Uint32(f[proto.HeaderSize:]) != seq {
						readDone <- errors.New("honest client: out of order")
						return
					}
					got.Add(1)
				}
			}()
			// The server runs at most a window of messages ahead of the
			// honest client (an application's flow control), never
			// waiting for the slow one.
			const window = 32
			big := make([]byte, tc.size)
			seqb := make([]byte, 4)
			sent := 0
			deadline := time.Now().Add(4 * waitFor)
		push:
			for {
				select {
				case <-slowClosed:
					break push
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("slow client not dropped by the %s after %d frames", tc.reason, sent)
				}
				if int64(sent)-got.Load() >= window {
					select {
					case err := <-readDone:
						t.Fatalf("honest client after %d messages: %v", got.Load(), err)
					default:
					}
					runtime.Gosched()
					continue
				}
				var b []byte
				for range 8 {
					b = proto.EncodeData(b, sid, big)
				}
				binary.LittleEndian.PutUint32(seqb, uint32(sent))
				b = proto.EncodeData(b, hid, seqb)
				s.write(b)
				sent++
			}
			eventually(t, "every message to the honest client read", func() bool { return got.Load() == int64(sent) })
			eventually(t, "the slow client counted", func() bool {
				st := g.Stats()
				return st.WS.Disconnects[ReasonSlowConsumer] == 1 && st.WS.Conns == 1
			})
			select {
			case err := <-readDone:
				t.Fatalf("honest client: %v", err)
			default:
			}
			// The server's data frames for the slow client after its
			// Close were answered with Close(sid) each; then the honest
			// client is served as before.
			<-slowClosed
			s.send(proto.Command{Type: proto.CmdPing})
			for {
				c := s.readCmd()
				if c.Type == proto.CmdPing {
					break
				}
				if c.Type != proto.CmdClose || c.ConnID != sid {
					t.Fatalf("server got %+v", c)
				}
			}
			honest.sendData(hid, "still here")
			s.expectData(hid, "still here")
		})
	}
}

// TestWSRandomSplitAndPacked: a stream of data frames (sizes around the
// WebSocket length boundaries) sent as random binary messages in random
// fragments, with Pings and Pongs among them, written in random chunks,
// reaches the server byte for byte, whole frames in order; the Pings are
// answered.
func TestWSRandomSplitAndPacked(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	rounds := scaled(20, 8, 4)
	for round := range rounds {
		seed := uint64(time.Now().UnixNano())
		r := rand.New(rand.NewPCG(seed, uint64(round)))
		c, wc := dialWS(t, url, ws.DialOptions{})
		id, _ := open(t, c, s, 1)
		stream, frames := dataStream(r, id, 1+r.IntN(40))
		enc, pings := wsChop(r, stream)
		if ref, _, err := wsReference(enc); err != nil || !bytes.Equal(ref, stream) {
			t.Fatalf("seed %d: the reference decoder disagrees with the encoding (%v)", seed, err)
		}
		werr := make(chan error, 1)
		go func() { werr <- writeChunks(r, wc.NetConn(), enc) }()
		for i, f := range frames {
			if got := s.read(); !bytes.Equal(got, f) {
				t.Fatalf("seed %d: frame %d of %d: got %d bytes, want %d", seed, i, len(frames), len(got), len(f))
			}
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		// The Pongs: the gateway answers the latest Ping when several
		// arrive while a write is under way, so they are a subsequence.
		c.send(proto.Command{Type: proto.CmdPing})
		wc.SetReadDeadline(time.Now().Add(waitFor))
		next := 0
		for {
			h, err := gws.ReadHeader(wc.NetConn())
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(wc.NetConn(), p); err != nil {
				t.Fatal(err)
			}
			if h.OpCode == gws.OpBinary {
				if !bytes.Equal(p, proto.Command{Type: proto.CmdPing}.Encode(nil)) {
					t.Fatalf("seed %d: message %x, want the Ping's answer", seed, p)
				}
				break
			}
			if h.OpCode != gws.OpPong {
				t.Fatalf("seed %d: opcode %d", seed, h.OpCode)
			}
			for next < len(pings) && !bytes.Equal(pings[next], p) {
				next++
			}
			if next == len(pings) {
				t.Fatalf("seed %d: Pong %x answers no Ping sent (in order)", seed, p)
			}
			next++
		}
		if len(pings) > 0 && next == 0 {
			t.Fatalf("seed %d: %d Pings, no Pong", seed, len(pings))
		}
		wc.Close()
		s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	}
}

// TestWSS: the same over TLS, with a certificate made for the test; the
// transport is counted as ws.
func TestWSS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	g := startGW(t, Config{})
	url, wl := startWSL(t, g, ws.Config{TLS: srvTLS})
	s := g.dialServer(t, 1)
	c, wc := dialWS(t, url, ws.DialOptions{TLS: cliTLS})
	id, _ := open(t, c, s, 1)
	big := bytes.Repeat([]byte("0123456789"), 10000) // over a TLS record
	packed := proto.EncodeData(proto.EncodeData(nil, id, []byte("small")), id, big)
	if err := wc.WriteFragmented(packed, 3, 20, 50000); err != nil {
		t.Fatal(err)
	}
	s.expectData(id, "small")
	s.expectData(id, string(big))
	s.sendData(id, string(big))
	c.expectData(id, string(big))
	c.ping()
	if st := wl.Stats(); st.Upgrades != 1 {
		t.Fatalf("upgrades %d, want 1", st.Upgrades)
	}
	// A text message over TLS: Close 1003 too.
	if err := wc.WriteFrame(gws.OpText, true, []byte("x")); err != nil {
		t.Fatal(err)
	}
	expectWSClose(t, wc, gws.StatusUnsupportedData, false)
	s.expectCmd(proto.Command{Type: proto.CmdClose, ConnID: id})
	// A client that is not TLS is refused, counted as tls.
	raw, err := net.Dial("tcp", wl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	expectSocketEnd(t, raw)
	eventually(t, "the plain client counted as tls", func() bool { return wl.Stats().Failed[ws.FailTLS] == 1 })
}

// TestWSFanout: Publish and Multicast reach WebSocket members, each as
// whole frames, with TCP members in the same group.
func TestWSFanout(t *testing.T) {
	g := startGW(t, Config{})
	url := startWS(t, g, ws.Config{})
	s := g.dialServer(t, 1)
	const n = 4
	peers := make([]*peer, n)
	ids := make([]uint32, n)
	for i := range n {
		if i == n-1 {
			peers[i] = g.dialClient(t) // one TCP member
		} else {
			peers[i], _ = dialWS(t, url, ws.DialOptions{})
		}
		ids[i], _ = open(t, peers[i], s, 1)
		s.write(proto.Fanout{Type: proto.CmdJoin, GroupID: 5, ConnID: ids[i]}.Append(nil))
	}
	s.ping()
	for _, size := range []int{0, 10, 1000, 100000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		s.write(proto.Fanout{Type: proto.CmdPublish, GroupID: 5, Payload: payload}.Append(nil))
		for i, p := range peers {
			p.expect(proto.EncodeData(nil, ids[i], payload))
		}
		s.write(proto.AppendMulticast(nil, payload, ids[0], ids[2]))
		peers[0].expect(proto.EncodeData(nil, ids[0], payload))
		peers[2].expect(proto.EncodeData(nil, ids[2], payload))
	}
	for _, p := range peers {
		p.ping()
	}
	if d := g.Stats().Fanout.Deliveries; d != 4*(n+2) {
		t.Fatalf("deliveries %d, want %d", d, 4*(n+2))
	}
}
