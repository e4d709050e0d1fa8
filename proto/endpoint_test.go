package proto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/slab"
)

func TestEndPointDialSendReceive(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{})
			ch := goDial(ep, 1)
			g.expect(epHex(t, "09000000 00000000 00 01000000"))
			g.write(epHex(t, "0d000000 00000000 01 37250000 01000000"))
			r := recvWithin(t, ch, "Dial")
			if r.err != nil {
				t.Fatal(r.err)
			}
			c := r.conn
			if c.ConnID() != 9527 || c.RemoteID() != 1 {
				t.Fatalf("conn %d remote %d, want 9527 1", c.ConnID(), c.RemoteID())
			}
			if err := c.Send([]byte("Hello")); err != nil {
				t.Fatal(err)
			}
			g.expect(epHex(t, "09000000 37250000 48656c6c6f"))
			g.data(9527, "World")
			if got := receiveString(t, c); got != "World" {
				t.Fatalf("Receive = %q", got)
			}
			g.data(9527, "")
			if got := receiveString(t, c); got != "" {
				t.Fatalf("Receive = %q, want empty", got)
			}
			if err := ep.Err(); err != nil {
				t.Fatalf("Err = %v while open", err)
			}
		})
	}
}

func TestEndPointDialRefused(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	ch := goDial(ep, 7)
	g.expectCmd(Command{Type: CmdDial, RemoteID: 7})
	g.cmd(Command{Type: CmdRefuse, RemoteID: 7})
	r := recvWithin(t, ch, "Dial")
	if !errors.Is(r.err, ErrRefused) || r.conn != nil {
		t.Fatalf("Dial = %v, %v; want ErrRefused", r.conn, r.err)
	}
	if !strings.Contains(r.err.Error(), "7") {
		t.Errorf("error %q does not name the remote", r.err)
	}
}

func TestEndPointPipelinedDials(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{})
			chans := map[uint32]<-chan epDialed{}
			for _, id := range []uint32{1, 2, 3} {
				chans[id] = goDial(ep, id)
			}
			// Read all three Dials before answering any: they are pipelined.
			var order []uint32
			for range 3 {
				c, err := DecodeCommand(g.read())
				if err != nil || c.Type != CmdDial {
					t.Fatalf("got %+v, %v; want a Dial", c, err)
				}
				order = append(order, c.RemoteID)
			}
			// First accepted, second refused, third accepted.
			g.accept(100+order[0], order[0])
			g.cmd(Command{Type: CmdRefuse, RemoteID: order[1]})
			g.accept(100+order[2], order[2])
			for i, id := range order {
				r := recvWithin(t, chans[id], "Dial")
				if i == 1 {
					if !errors.Is(r.err, ErrRefused) {
						t.Errorf("Dial(%d) = %v, want ErrRefused", id, r.err)
					}
					continue
				}
				if r.err != nil || r.conn.ConnID() != 100+id || r.conn.RemoteID() != id {
					t.Errorf("Dial(%d) = %+v, %v; want conn %d", id, r.conn, r.err, 100+id)
				}
			}
		})
	}
}

func TestEndPointConnectAccept(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{})
			c := accepted(t, ep, g, 77, 5)
			g.data(77, "hi")
			if got := receiveString(t, c); got != "hi" {
				t.Fatalf("Receive = %q", got)
			}
			if err := c.Send([]byte("yo")); err != nil {
				t.Fatal(err)
			}
			g.expect(EncodeData(nil, 77, []byte("yo")))
		})
	}
}

func TestEndPointRemoteClose(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{})
			c := dialed(t, ep, g, 9, 1)
			g.data(9, "a")
			g.data(9, "b")
			g.cmd(Command{Type: CmdClose, ConnID: 9})
			for _, want := range []string{"a", "b"} {
				if got := receiveString(t, c); got != want {
					t.Fatalf("Receive = %q, want %q", got, want)
				}
			}
			if _, err := receive(t, c); err != io.EOF {
				t.Fatalf("Receive after remote Close = %v, want io.EOF", err)
			}
			if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after remote Close = %v, want ErrClosed", err)
			}
			c.Close() // nothing to send: the gateway closed it
			// The endpoint is fine: the next frame the gateway sees is a new Dial.
			d := dialed(t, ep, g, 10, 1)
			if d.ConnID() != 10 {
				t.Fatal("wrong conn")
			}
		})
	}
}

func TestEndPointLocalClose(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{})
			c := dialed(t, ep, g, 0x0102, 1)
			g.data(0x0102, "queued, then dropped")
			if err := c.Send([]byte("last")); err != nil {
				t.Fatal(err)
			}
			// Wait until the queued message is surely in: a second one behind it.
			g.data(0x0102, "second")
			poll.Until(t, epWait, "the data to be queued", func() bool {
				c.q.mu.Lock()
				defer c.q.mu.Unlock()
				return c.q.n == 2
			})
			c.Close()
			c.Close() // idempotent
			g.expect(EncodeData(nil, 0x0102, []byte("last")))
			g.expect(epHex(t, "09000000 00000000 04 02010000"))
			if _, err := receive(t, c); err != io.EOF {
				t.Fatalf("Receive after Close = %v, want io.EOF", err)
			}
			if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Close = %v, want ErrClosed", err)
			}
			// Late data and the acknowledgement are dropped silently.
			g.data(0x0102, "late")
			g.cmd(Command{Type: CmdClose, ConnID: 0x0102})
			d := dialed(t, ep, g, 0x0103, 1)
			g.data(0x0103, "fresh")
			if got := receiveString(t, d); got != "fresh" {
				t.Fatalf("Receive = %q", got)
			}
			if err := ep.Err(); err != nil {
				t.Fatalf("endpoint closed: %v", err)
			}
		})
	}
}

func TestEndPointRecvOverflow(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			ep, g := newClientPair(t, tr.pair, EndPointCfg{RecvChanSize: 2})
			slow := accepted(t, ep, g, 10, 5)
			sibling := accepted(t, ep, g, 11, 6)
			g.data(10, "1")
			g.data(10, "2")
			g.data(10, "3") // does not fit
			g.expectCmd(Command{Type: CmdClose, ConnID: 10})
			g.cmd(Command{Type: CmdClose, ConnID: 10}) // the gateway's acknowledgement
			g.data(11, "still here")
			if got := receiveString(t, sibling); got != "still here" {
				t.Fatalf("sibling Receive = %q", got)
			}
			for _, want := range []string{"1", "2"} {
				if got := receiveString(t, slow); got != want {
					t.Fatalf("Receive = %q, want %q", got, want)
				}
			}
			if _, err := receive(t, slow); !errors.Is(err, ErrRecvOverflow) {
				t.Fatalf("Receive after overflow = %v, want ErrRecvOverflow", err)
			}
			if err := slow.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after overflow = %v, want ErrClosed", err)
			}
			slow.Close() // already closed on the wire: sends nothing
			if err := sibling.Send([]byte("ok")); err != nil {
				t.Fatal(err)
			}
			g.expect(EncodeData(nil, 11, []byte("ok")))
		})
	}
}

func TestEndPointAcceptBacklog(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	for i := range uint32(AcceptBacklog + 1) {
		g.connect(1000+i, 1)
	}
	// The one past the backlog is refused with Close.
	g.expectCmd(Command{Type: CmdClose, ConnID: 1000 + AcceptBacklog})
	c, err := ep.Accept()
	if err != nil || c.ConnID() != 1000 {
		t.Fatalf("Accept = %v, %v", c, err)
	}
}

// chat and jsonFormat are a custom MsgFormat for the round-trip test.
type chat struct {
	From string `json:"from"`
	Text string `json:"text"`
}

type jsonFormat struct{}

func (jsonFormat) EncodeMessage(msg any) ([]byte, error) { return json.Marshal(msg) }

func (jsonFormat) DecodeMessage(b []byte) (any, error) {
	var c chat
	err := json.Unmarshal(b, &c)
	return c, err
}

func TestEndPointMsgFormat(t *testing.T) {
	for _, pool := range []slab.Pool{nil, slab.NewSyncPool(64, 4096, 2)} {
		t.Run(fmt.Sprintf("%T", pool), func(t *testing.T) {
			ep, g := newClientPair(t, epTCPPair, EndPointCfg{MsgFormat: jsonFormat{}, MemPool: pool})
			c := dialed(t, ep, g, 4, 1)
			if err := c.Send(chat{"ann", "hi"}); err != nil {
				t.Fatal(err)
			}
			g.expect(EncodeData(nil, 4, []byte(`{"from":"ann","text":"hi"}`)))
			g.data(4, `{"from":"bob","text":"yo"}`)
			m, err := receive(t, c)
			if err != nil || m != (chat{"bob", "yo"}) {
				t.Fatalf("Receive = %#v, %v", m, err)
			}
			g.data(4, `{not json`)
			if _, err := receive(t, c); err == nil {
				t.Fatal("Receive of bad JSON succeeded")
			}
			g.data(4, `{"text":"after"}`)
			if m, err := receive(t, c); err != nil || m != (chat{Text: "after"}) {
				t.Fatalf("Receive after a decode error = %#v, %v", m, err)
			}
			if err := c.Send(make(chan int)); err == nil {
				t.Fatal("Send of an unencodable message succeeded")
			}
		})
	}
}

func TestEndPointSendErrors(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{MaxPacket: 64})
	c := dialed(t, ep, g, 4, 1)
	if err := c.Send("not bytes"); !errors.Is(err, ErrNotBytes) {
		t.Fatalf("Send(string) = %v, want ErrNotBytes", err)
	}
	if err := c.Send(make([]byte, 61)); !errors.Is(err, ErrMsgTooLarge) {
		t.Fatalf("Send(61 bytes) = %v, want ErrMsgTooLarge", err)
	}
	if err := c.Send(make([]byte, 60)); err != nil {
		t.Fatalf("Send(60 bytes) = %v", err)
	}
	g.expect(EncodeData(nil, 4, make([]byte, 60)))
}

func TestEndPointSendQueueFull(t *testing.T) {
	// Over a pipe nobody reads, the writer blocks on its first frame.
	ep, g := newClientPair(t, func(t *testing.T) (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}, EndPointCfg{SendChanSize: 1})
	c := accepted(t, ep, g, 8, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	var err error
	for range writeBatch + 2 { // some in the writer, one queued, then one waits
		if err = c.SendContext(ctx, []byte("x")); err != nil {
			break
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendContext on a full queue = %v, want DeadlineExceeded", err)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- c.Send([]byte("y")) }()
	ep.Close()
	if err := recvWithin(t, blocked, "blocked Send"); !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Send after Close = %v, want ErrClosed", err)
	}
}

func TestEndPointClose(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	c := dialed(t, ep, g, 1, 1)
	g.data(1, "before close")
	if got := receiveString(t, c); got != "before close" {
		t.Fatal(got)
	}
	pending := goDial(ep, 2)
	g.expectCmd(Command{Type: CmdDial, RemoteID: 2})
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ep.Accept()
		acceptErr <- err
	}()
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	ep.Close() // idempotent
	if r := recvWithin(t, pending, "pending Dial"); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("pending Dial = %v, want ErrClosed", r.err)
	}
	if err := recvWithin(t, acceptErr, "pending Accept"); !errors.Is(err, ErrClosed) {
		t.Fatalf("pending Accept = %v, want ErrClosed", err)
	}
	if _, err := receive(t, c); err != io.EOF {
		t.Fatalf("Receive after endpoint Close = %v, want io.EOF", err)
	}
	if _, err := ep.Dial(3); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close = %v", err)
	}
	if _, err := ep.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
	if err := c.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
	if !errors.Is(ep.Err(), ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", ep.Err())
	}
}

func TestEndPointGatewayHangsUp(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	c := accepted(t, ep, g, 3, 1)
	g.data(3, "last words")
	g.conn.Close()
	if err := waitClosed(t, ep); !errors.Is(err, io.EOF) {
		t.Fatalf("Err = %v, want io.EOF", err)
	}
	if got := receiveString(t, c); got != "last words" {
		t.Fatalf("Receive = %q", got)
	}
	if _, err := receive(t, c); err != io.EOF {
		t.Fatalf("Receive = %v, want io.EOF", err)
	}
}

func TestEndPointDialContextCancel(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ep.DialContext(ctx, 1)
		errc <- err
	}()
	g.expectCmd(Command{Type: CmdDial, RemoteID: 1})
	cancel()
	if err := recvWithin(t, errc, "DialContext"); !errors.Is(err, context.Canceled) {
		t.Fatalf("DialContext = %v, want context.Canceled", err)
	}
	// The late reply still takes its FIFO slot; the conn it opened is closed.
	g.accept(5, 1)
	g.expectCmd(Command{Type: CmdClose, ConnID: 5})
	d := dialed(t, ep, g, 6, 2)
	if d.ConnID() != 6 || d.RemoteID() != 2 {
		t.Fatalf("next Dial got conn %d remote %d", d.ConnID(), d.RemoteID())
	}
}

func TestEndPointProtocolErrors(t *testing.T) {
	cases := []struct {
		name string
		wire func(t *testing.T) []byte
	}{
		{"unknown command", func(t *testing.T) []byte { return epHex(t, "05000000 00000000 09") }},
		{"Length below 4", func(t *testing.T) []byte { return epHex(t, "02000000 0000") }},
		{"Length above MaxPacket", func(t *testing.T) []byte { return epHex(t, "01000100") }},
		{"command of wrong size", func(t *testing.T) []byte { return epHex(t, "06000000 00000000 04 00") }},
		{"Accept without Dial", func(t *testing.T) []byte { return Command{CmdAccept, 5, 1}.Encode(nil) }},
		{"Refuse without Dial", func(t *testing.T) []byte { return Command{Type: CmdRefuse, RemoteID: 1}.Encode(nil) }},
		{"Dial from gateway", func(t *testing.T) []byte { return Command{Type: CmdDial, RemoteID: 1}.Encode(nil) }},
		{"Connect of ConnID 0", func(t *testing.T) []byte { return Command{CmdConnect, 0, 1}.Encode(nil) }},
		{"Connect twice", func(t *testing.T) []byte {
			return Command{CmdConnect, 4, 1}.Encode(Command{CmdConnect, 4, 1}.Encode(nil))
		}},
	}
	for _, tr := range epTransports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				ep, g := newClientPair(t, tr.pair, EndPointCfg{MaxPacket: 1 << 16})
				wire := tc.wire(t)
				go func() {
					g.conn.SetWriteDeadline(time.Now().Add(epWait))
					g.conn.Write(wire) // may fail once the endpoint hangs up
				}()
				if err := waitClosed(t, ep); !errors.Is(err, ErrProtocol) {
					t.Fatalf("Err = %v, want ErrProtocol", err)
				}
			})
		}
	}
	t.Run("Accept for another remote", func(t *testing.T) {
		ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
		ch := goDial(ep, 1)
		g.expectCmd(Command{Type: CmdDial, RemoteID: 1})
		g.accept(5, 2)
		if err := waitClosed(t, ep); !errors.Is(err, ErrProtocol) {
			t.Fatalf("Err = %v, want ErrProtocol", err)
		}
		if r := recvWithin(t, ch, "Dial"); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("Dial = %v, want ErrClosed", r.err)
		}
	})
}

func TestEndPointCfg(t *testing.T) {
	for _, cfg := range []EndPointCfg{
		{MaxPacket: 8},
		{BufferSize: -1},
		{SendChanSize: -1},
		{RecvChanSize: -1},
	} {
		if err := cfg.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrBadConfig", cfg, err)
		}
		a, b := net.Pipe()
		if _, err := NewClient(a, cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewClient(%+v) = %v, want ErrBadConfig", cfg, err)
		}
		a.Close()
		b.Close()
	}
	if err := (EndPointCfg{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	d := EndPointCfg{}.withDefaults()
	if d.MaxPacket != DefaultMaxPacket || d.BufferSize != DefaultBufferSize || d.SendChanSize != DefaultSendChanSize ||
		d.RecvChanSize != DefaultRecvChanSize || d.PingInterval != DefaultPingInterval || d.PingTimeout != DefaultPingTimeout {
		t.Fatalf("defaults %+v", d)
	}
	if _, ok := d.MemPool.(slab.NoPool); !ok {
		t.Fatalf("default pool %T", d.MemPool)
	}
}
