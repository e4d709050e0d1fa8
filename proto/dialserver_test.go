package proto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// gwHandshake runs a fake gateway's side of the server handshake and returns
// the announced server ID.
func gwHandshake(conn net.Conn, key string) (uint32, error) {
	conn.SetDeadline(time.Now().Add(epWait))
	defer conn.SetDeadline(time.Time{})
	var challenge [ChallengeSize]byte
	rand.Read(challenge[:])
	if _, err := conn.Write(challenge[:]); err != nil {
		return 0, err
	}
	var reply [AuthReplySize]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return 0, err
	}
	return VerifyAuthReply(challenge[:], key, reply[:])
}

func TestDialServer(t *testing.T) {
	// ID 0 is a server ID like any other (docs/protocol.md §1.4).
	for _, tt := range []struct {
		name string
		id   uint32
	}{{"ID 42", 42}, {"ID 0", 0}} {
		for _, tr := range epTransports {
			t.Run(tt.name+"/"+tr.name, func(t *testing.T) {
				c, gconn := tr.pair(t)
				type res struct {
					ep  *EndPoint
					err error
				}
				ch := make(chan res, 1)
				go func() {
					ep, err := DialServer(c, EndPointCfg{ServerID: tt.id, AuthKey: "s3cret"})
					ch <- res{ep, err}
				}()
				id, err := gwHandshake(gconn, "s3cret")
				if err != nil || id != tt.id {
					t.Fatalf("handshake: id %d, %v", id, err)
				}
				r := recvWithin(t, ch, "DialServer")
				if r.err != nil {
					t.Fatal(r.err)
				}
				t.Cleanup(func() { r.ep.Close() })
				g := newFakeGW(t, gconn)
				conn := accepted(t, r.ep, g, 5, 1001) // a client dialed this server
				if err := conn.Send([]byte("welcome")); err != nil {
					t.Fatal(err)
				}
				g.expect(EncodeData(nil, 5, []byte("welcome")))
			})
		}
	}
	t.Run("wrong key", func(t *testing.T) {
		c, gconn := epTCPPair(t)
		ch := make(chan error, 1)
		go func() {
			ep, err := DialServer(c, EndPointCfg{ServerID: 42, AuthKey: "guess"})
			if err == nil {
				ep.Close()
			}
			ch <- err
		}()
		if _, err := gwHandshake(gconn, "s3cret"); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("gateway saw %v, want ErrAuthFailed", err)
		}
		gconn.Close()
		recvWithin(t, ch, "DialServer")
	})
}

func TestDialAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gwConns := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			gwConns <- c
		}
	}()
	addr := ln.Addr().String()

	t.Run("client", func(t *testing.T) {
		ep, err := DialClientAddr("tcp", addr, EndPointCfg{})
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		gconn := recvWithin(t, gwConns, "connection")
		defer gconn.Close()
		if ep.RemoteAddr().String() != addr || ep.LocalAddr() == nil {
			t.Errorf("addresses %v %v", ep.LocalAddr(), ep.RemoteAddr())
		}
		dialed(t, ep, newFakeGW(t, gconn), 1, 2)
	})
	t.Run("server", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			gconn := <-gwConns
			defer gconn.Close()
			id, err := gwHandshake(gconn, "k")
			if err == nil && id != 9 {
				err = fmt.Errorf("server ID %d", id)
			}
			errc <- err
			io.Copy(io.Discard, gconn) // until the endpoint closes
		}()
		ep, err := DialServerAddr("tcp", addr, EndPointCfg{ServerID: 9, AuthKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		if err := recvWithin(t, errc, "handshake"); err != nil {
			t.Fatal(err)
		}
		ep.Close()
	})
	t.Run("server handshake fails", func(t *testing.T) {
		closed := make(chan error, 1)
		go func() {
			gconn := <-gwConns
			defer gconn.Close()
			gconn.Write([]byte{1, 2, 3})      // a truncated challenge
			gconn.(*net.TCPConn).CloseWrite() // then EOF
			gconn.SetReadDeadline(time.Now().Add(epWait))
			_, err := gconn.Read(make([]byte, 1))
			closed <- err
		}()
		if _, err := DialServerAddr("tcp", addr, EndPointCfg{ServerID: 9}); err == nil {
			t.Fatal("DialServerAddr succeeded on a broken handshake")
		}
		if err := recvWithin(t, closed, "socket close"); err != io.EOF {
			t.Fatalf("gateway read %v, want io.EOF: the socket was not closed", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		if _, err := DialClientAddr("tcp", addr, EndPointCfg{SendChanSize: -1}); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("err = %v, want ErrBadConfig", err)
		}
	})
}
