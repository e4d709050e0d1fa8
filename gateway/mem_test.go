package gateway

import (
	"io"
	"time"

	"github.com/fastway-go/fastway/proto"
	"net"
	"runtime"
	"testing"
)

// BenchmarkIdleClientMemory reports what one idle client connection costs
// the gateway: heap and stack in use with n idle clients (each has sent one
// Ping, so its reader is set up) minus the same number of bare loopback
// socket pairs held without a gateway. It reports B/conn; b.N is ignored
// beyond running once.
func BenchmarkIdleClientMemory(b *testing.B) {
	const n = 2000
	bare := inUseWith(b, n, func(ln net.Listener, accepted chan<- net.Conn) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}, false)
	withGW := inUseWith(b, n, nil, true)
	for b.Loop() {
	}
	b.ReportMetric(float64(bare)/n, "bare-pair-B/conn")
	b.ReportMetric(float64(withGW-bare)/n, "gateway-B/conn")
}

// inUseWith opens n client connections to a listener served by serve (or
// by a gateway) and returns heap+stack in use once they are all idle.
func inUseWith(b *testing.B, n int, serve func(net.Listener, chan<- net.Conn), gateway bool) uint64 {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var g *Gateway
	accepted := make(chan net.Conn, n)
	if gateway {
		g = New(Config{Logger: discard(), ServerAuthPassword: testKey})
		go g.ServeClients(ln)
		defer g.Stop()
	} else {
		go serve(ln, accepted)
	}
	before := inUse()
	conns := make([]net.Conn, 0, n)
	ping := proto.Command{Type: proto.CmdPing}.Encode(nil)
	var pong [proto.PingSize]byte
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if gateway {
			// One Ping and its answer: the link is set up and idle.
			c.SetDeadline(time.Now().Add(waitFor))
			if _, err := c.Write(ping); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, pong[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
	var held []net.Conn
	if !gateway {
		for range n {
			held = append(held, <-accepted)
		}
	}
	after := inUse()
	for _, c := range held {
		c.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	if after < before {
		return 0
	}
	return after - before
}

func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}
