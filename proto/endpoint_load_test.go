package proto

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/fastway-go/fastway/slab"
)

// countPool is a slab.Pool that counts what is outstanding.
type countPool struct {
	slab.Pool
	mu   sync.Mutex
	live int
}

func (p *countPool) Alloc(n int) []byte {
	p.mu.Lock()
	p.live++
	p.mu.Unlock()
	return p.Pool.Alloc(n)
}

func (p *countPool) Free(b []byte) {
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	p.Pool.Free(b)
}

// TestEndPointBurst sends and receives many frames of mixed sizes, some
// larger than the buffers, checks order and content, and that every pooled
// buffer went back to the pool.
func TestEndPointBurst(t *testing.T) {
	const n = 2000
	msg := func(i int) []byte {
		b := make([]byte, (i*37)%700)
		if i%500 == 0 {
			b = make([]byte, 9000)
		}
		for j := range b {
			b[j] = byte(i + j)
		}
		return b
	}
	for _, tr := range epTransports {
		t.Run(tr.name, func(t *testing.T) {
			pool := &countPool{Pool: slab.NewSyncPool(64, 4096, 2)}
			cfg := EndPointCfg{MemPool: pool, BufferSize: 512, RecvChanSize: n + 1}
			ep, g := newClientPair(t, tr.pair, cfg)
			c := dialed(t, ep, g, 77, 1)

			sent := make(chan error, 1)
			go func() {
				for i := range n {
					if err := c.Send(msg(i)); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			for i := range n {
				if got, want := g.read(), EncodeData(nil, 77, msg(i)); !bytes.Equal(got, want) {
					t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
				}
			}
			if err := recvWithin(t, sent, "sends"); err != nil {
				t.Fatal(err)
			}

			var wire []byte
			for i := range n {
				wire = EncodeData(wire, 77, msg(i))
			}
			go g.conn.Write(wire)
			for i := range n {
				m, err := receive(t, c)
				if err != nil || !bytes.Equal(m.([]byte), msg(i)) {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			c.Close()
			g.expectCmd(Command{Type: CmdClose, ConnID: 77})
			ep.Close()
			pool.mu.Lock()
			defer pool.mu.Unlock()
			if pool.live != 0 {
				t.Fatalf("%d pooled buffers not freed", pool.live)
			}
		})
	}
}

func TestEndPointConcurrentUse(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	const conns, per = 4, 200
	cs := make([]*Conn, conns)
	for i := range cs {
		cs[i] = accepted(t, ep, g, uint32(i+1), 1)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				c.Send([]byte("ping"))
			}
		}()
	}
	counts := map[uint32]int{}
	for range conns * per {
		counts[Header(g.read()).ConnID()]++
	}
	wg.Wait()
	for _, c := range cs {
		if counts[c.ConnID()] != per {
			t.Errorf("conn %d: %d frames, want %d", c.ConnID(), counts[c.ConnID()], per)
		}
	}
}

// BenchmarkEndPointRoundTrip sends a message through an echoing fake gateway
// over loopback TCP and receives it back.
func BenchmarkEndPointRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		g, err := ln.Accept()
		if err != nil {
			return
		}
		defer g.Close()
		fr := NewFrameReader(g, nil, 0, 0)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if Header(f).ConnID() == 0 {
				if c, _ := DecodeCommand(f); c.Type == CmdDial {
					f = Command{CmdAccept, 1, c.RemoteID}.Encode(nil)
				} else {
					continue
				}
			}
			if _, err := g.Write(f); err != nil {
				return
			}
		}
	}()
	pool := slab.NewSyncPool(64, 64<<10, 2)
	ep, err := DialClientAddr("tcp", ln.Addr().String(), EndPointCfg{MemPool: pool})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ep.Close(); <-echoed }()
	c, err := ep.Dial(1)
	if err != nil {
		b.Fatal(err)
	}
	var msg any = make([]byte, 100)
	b.ReportAllocs()
	b.SetBytes(100)
	for b.Loop() {
		if err := c.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Receive(); err != nil {
			b.Fatal(err)
		}
	}
}
