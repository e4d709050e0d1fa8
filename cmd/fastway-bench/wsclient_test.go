package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fastway-go/fastway/gateway"
	fwws "github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
	"github.com/gobwas/ws"
)

// startGatewayWS runs a real gateway in this process with a WebSocket
// client port (as -ClientWSAddr serves it), until the test ends.
func startGatewayWS(t *testing.T, cfg gateway.Config) (wsAddr, serverAddr string) {
	t.Helper()
	ln1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln1.Close()
		t.Fatal(err)
	}
	wsLn := fwws.NewListener(ln1, fwws.Config{})
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	g := gateway.New(cfg)
	done := make(chan struct{}, 2)
	go func() { g.ServeClients(wsLn); done <- struct{}{} }()
	go func() { g.ServeServers(ln2); done <- struct{}{} }()
	t.Cleanup(func() {
		g.Stop()
		<-done
		<-done
	})
	return wsLn.Addr().String(), ln2.Addr().String()
}

func wsSmoke(cfg config) config {
	cfg.ws, cfg.wsPath = true, "/"
	return cfg
}

// TestSmokeWS: echo, idle and churn runs over the gateway's WebSocket port
// come back whole, with the transport in the summary.
func TestSmokeWS(t *testing.T) {
	wa, sa := startGatewayWS(t, gateway.Config{ServerAuthPassword: "k", ClientMaxConn: 4})
	t.Run("echo", func(t *testing.T) {
		kv := runSmoke(t, wsSmoke(smokeConfig(modeEcho, wa, sa, "k")), append(echoKeys, "transport")...)
		positive(t, kv, "rtts", "rtt_per_s", "p50_us", "msgs_per_gw_cpu_s")
		if kv["transport"] != "ws" {
			t.Errorf("transport=%s", kv["transport"])
		}
	})
	t.Run("echo4k", func(t *testing.T) {
		cfg := wsSmoke(smokeConfig(modeEcho, wa, sa, "k"))
		cfg.size = 4096 // messages of 126..65535 bytes: the 16-bit length
		kv := runSmoke(t, cfg, "rtts")
		positive(t, kv, "rtts")
	})
	t.Run("idle", func(t *testing.T) {
		cfg := wsSmoke(smokeConfig(modeIdle, wa, sa, "k"))
		cfg.conns = 50
		kv := runSmoke(t, cfg, "pings", "pongs", "rss_per_conn_kib")
		positive(t, kv, "pings", "pongs")
	})
	t.Run("churn", func(t *testing.T) {
		kv := runSmoke(t, wsSmoke(smokeConfig(modeChurn, wa, sa, "k")), "accepts", "dials_per_s")
		positive(t, kv, "accepts", "dials_per_s")
	})
}

// TestWSClientFramesMaskedAndCoalesced reads what an echo client sends at
// the frame level: every frame is a masked binary message, with its own
// masking key, and the V×K messages a connection starts with go out as one
// message, as an SDK that writes what it has at once would send them.
func TestWSClientFramesMaskedAndCoalesced(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type msg struct {
		h       ws.Header
		payload []byte
	}
	got := make(chan []msg, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		var msgs []msg
		defer func() { got <- msgs }()
		if _, err := ws.Upgrade(c); err != nil {
			return
		}
		// The Dials (one message), then Accept them all in one message.
		h, err := ws.ReadHeader(c)
		if err != nil {
			return
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c, p); err != nil {
			return
		}
		ws.Cipher(p, h.Mask, 0)
		msgs = append(msgs, msg{h, p})
		var out []byte
		for id := uint32(1); id <= 2; id++ {
			out = proto.Command{Type: proto.CmdAccept, ConnID: id, RemoteID: 1}.Encode(out)
		}
		if err := ws.WriteFrame(c, ws.NewBinaryFrame(out)); err != nil {
			return
		}
		// The data frames (they come back as replies, once echoed) and
		// the Pong to the Ping sent between the two halves of the echo.
		frameSize := proto.HeaderSize + 64
		replied := -1
		for replied < 6*frameSize {
			h, err := ws.ReadHeader(c)
			if err != nil {
				return
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(c, p); err != nil {
				return
			}
			ws.Cipher(p, h.Mask, 0)
			msgs = append(msgs, msg{h, p})
			if h.OpCode != ws.OpBinary {
				continue
			}
			if replied >= 0 {
				replied += len(p)
				continue
			}
			// Echo the first split in two messages, a Ping between
			// them: the client reads across message boundaries and
			// answers the Ping.
			replied = 0
			ws.WriteFrame(c, ws.NewBinaryFrame(p[:5]))
			ws.WriteFrame(c, ws.NewPingFrame([]byte("hi")))
			ws.WriteFrame(c, ws.NewBinaryFrame(p[5:]))
		}
	}()
	cfg := wsSmoke(smokeConfig(modeEcho, ln.Addr().String(), "", ""))
	cfg.conns, cfg.vconns, cfg.k = 1, 2, 3
	cfg.warmup, cfg.dur = 0, 300*time.Millisecond
	r := &report{}
	src, _ := newSrcAddrs(cfg.clientAddr, 1, 1)
	runEcho(t.Context(), &cfg, src, r) // the server stops answering: only the frames matter here

	msgs := <-got
	var data []msg
	pongs := 0
	for i, m := range msgs {
		if !m.h.Masked || !m.h.Fin {
			t.Errorf("message %d: header %+v, want a masked, final frame", i, m.h)
		}
		if i > 0 && m.h.Mask == msgs[i-1].h.Mask {
			t.Errorf("message %d has the masking key of the one before", i)
		}
		switch m.h.OpCode {
		case ws.OpBinary:
			data = append(data, m)
		case ws.OpPong:
			pongs++
			if string(m.payload) != "hi" {
				t.Errorf("Pong %q, want the Ping's %q", m.payload, "hi")
			}
		default:
			t.Errorf("message %d of opcode %d", i, m.h.OpCode)
		}
	}
	if pongs != 1 {
		t.Errorf("%d Pongs, want 1", pongs)
	}
	if len(data) < 3 {
		t.Fatalf("read %d data messages, want at least 3 (Dials, data, replies)", len(data))
	}
	if want := 2 * proto.DialSize; len(data[0].payload) != want {
		t.Errorf("the Dials came as %d bytes, want %d in one message", len(data[0].payload), want)
	}
	// V×K = 6 data frames, whole, in the first data message.
	frameSize := proto.HeaderSize + cfg.size
	if p := data[1].payload; len(p) != 6*frameSize {
		t.Errorf("first data message of %d bytes, want %d (6 frames)", len(p), 6*frameSize)
	} else if l := binary.LittleEndian.Uint32(p); int(l) != frameSize-proto.SizeOfLength {
		t.Errorf("first frame's Length %d", l)
	}
	// The replies to what came back (split over messages) are whole
	// frames too.
	for i, m := range data[2:] {
		if len(m.payload) == 0 || len(m.payload)%frameSize != 0 {
			t.Errorf("reply message %d of %d bytes, not whole frames", i, len(m.payload))
		}
	}
}

// TestWSConnDecode feeds server frames to the client's decoder cut at
// every offset: the payload stream comes out whole, Pings are answered with
// Pongs, and protocol errors are refused.
func TestWSConnDecode(t *testing.T) {
	var raw []byte
	frame := func(fin bool, op ws.OpCode, p []byte) {
		var b bytes.Buffer
		ws.WriteFrame(&b, ws.Frame{Header: ws.Header{Fin: fin, OpCode: op, Length: int64(len(p))}, Payload: p})
		raw = append(raw, b.Bytes()...)
	}
	long := bytes.Repeat([]byte("0123456789"), 30) // 300 bytes: a 16-bit length
	frame(true, ws.OpBinary, []byte("hello "))
	frame(false, ws.OpBinary, []byte("frag"))
	frame(true, ws.OpPing, []byte("p"))
	frame(true, ws.OpContinuation, []byte("mented "))
	frame(true, ws.OpBinary, nil)
	frame(true, ws.OpBinary, long)
	want := append([]byte("hello fragmented "), long...)

	for cut := 1; cut <= len(raw); cut++ {
		client, server := net.Pipe()
		c := newWSConn(client)
		go func() {
			for i := 0; i < len(raw); i += cut {
				server.Write(raw[i:min(i+cut, len(raw))])
			}
		}()
		pongs := make(chan ws.Header, 1)
		go func() {
			h, err := ws.ReadHeader(server)
			if err == nil {
				io.CopyN(io.Discard, server, h.Length)
			}
			pongs <- h
		}()
		var got []byte
		buf := make([]byte, 64)
		for len(got) < len(want) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("cut %d: %v after %q", cut, err, got)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cut %d: %q", cut, got)
		}
		select {
		case h := <-pongs:
			if h.OpCode != ws.OpPong || !h.Masked || h.Length != 1 {
				t.Errorf("cut %d: answer to the Ping %+v", cut, h)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("cut %d: no Pong", cut)
		}
		client.Close()
		server.Close()
	}

	for name, f := range map[string]ws.Frame{
		"masked":       ws.MaskFrame(ws.NewBinaryFrame([]byte("x"))),
		"text":         ws.NewTextFrame([]byte("x")),
		"continuation": {Header: ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: 1}, Payload: []byte("x")},
		"close":        ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")),
	} {
		client, server := net.Pipe()
		c := newWSConn(client)
		go func() { ws.WriteFrame(server, f) }()
		if _, err := c.Read(make([]byte, 16)); err == nil {
			t.Errorf("%s: no error", name)
		}
		client.Close()
		server.Close()
	}
}
