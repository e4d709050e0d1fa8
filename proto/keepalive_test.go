package proto

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

func TestEndPointKeepAlive(t *testing.T) {
	for _, tr := range epTransports {
		t.Run(tr.name+"/answered", func(t *testing.T) {
			cfg := EndPointCfg{
				PingInterval: 20 * time.Millisecond,
				PingTimeout:  time.Minute,
				TimeoutCallback: func() bool {
					t.Error("TimeoutCallback ran although Pings were answered")
					return true
				},
			}
			ep, g := newClientPair(t, tr.pair, cfg)
			for range 3 {
				g.expect(epHex(t, "05000000 00000000 05"))
				g.cmd(Command{Type: CmdPing})
			}
			if err := ep.Err(); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(tr.name+"/timeout", func(t *testing.T) {
			called := make(chan struct{}, 1)
			cfg := EndPointCfg{
				PingInterval: 20 * time.Millisecond,
				PingTimeout:  40 * time.Millisecond,
				TimeoutCallback: func() bool {
					called <- struct{}{}
					return false
				},
			}
			ep, g := newClientPair(t, tr.pair, cfg)
			pings := make(chan []byte, 100)
			wait := g.drain(func(f []byte) {
				select {
				case pings <- f:
				default:
				}
			})
			if got := recvWithin(t, pings, "a Ping"); !bytes.Equal(got, Command{Type: CmdPing}.Encode(nil)) {
				t.Fatalf("first frame % x, want a Ping", got)
			}
			recvWithin(t, called, "TimeoutCallback")
			err := waitClosed(t, ep)
			var ne net.Error
			if !errors.Is(err, ErrPingTimeout) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Err = %v, want ErrPingTimeout as a net.Error timeout", err)
			}
			wait()
		})
		t.Run(tr.name+"/kept", func(t *testing.T) {
			called := make(chan struct{}, 10)
			cfg := EndPointCfg{
				PingInterval: 20 * time.Millisecond,
				PingTimeout:  30 * time.Millisecond,
				TimeoutCallback: func() bool {
					called <- struct{}{}
					return true
				},
			}
			ep, g := newClientPair(t, tr.pair, cfg)
			wait := g.drain(nil)
			recvWithin(t, called, "TimeoutCallback")
			recvWithin(t, called, "a second TimeoutCallback")
			if err := ep.Err(); err != nil {
				t.Fatalf("endpoint closed although the callback kept it: %v", err)
			}
			ep.Close()
			wait()
		})
	}
	t.Run("nil callback closes", func(t *testing.T) {
		ep, g := newClientPair(t, epTCPPair, EndPointCfg{PingInterval: 10 * time.Millisecond, PingTimeout: 20 * time.Millisecond})
		wait := g.drain(nil)
		if err := waitClosed(t, ep); !errors.Is(err, ErrPingTimeout) {
			t.Fatalf("Err = %v, want ErrPingTimeout", err)
		}
		wait()
	})
}

func TestEndPointIgnoresUnaskedPing(t *testing.T) {
	ep, g := newClientPair(t, epTCPPair, EndPointCfg{})
	g.cmd(Command{Type: CmdPing})
	// Never answered: the next frame is the Dial that follows.
	c := dialed(t, ep, g, 3, 1)
	c.Close()
	g.expectCmd(Command{Type: CmdClose, ConnID: 3})
}
