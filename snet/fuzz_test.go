package snet

import (
	"io"
	"net"
	"testing"
	"time"
)

// FuzzServerHandshake feeds arbitrary bytes to the server side of the
// handshake: it must never panic, hang past HandshakeTimeout, or hand out a
// session.
func FuzzServerHandshake(f *testing.F) {
	hello := encodeNewRequest(vecPubClient)
	f.Add(hello[:])
	f.Add(append(hello[:], make([]byte, sizeOfDigest)...))
	req := encodeReconnRequest(1, 0, 0, vecKey())
	f.Add(req[:])
	f.Add(req[:20])
	f.Add([]byte{0x7f})
	f.Add(make([]byte, newRequestSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := Config{HandshakeTimeout: 10 * time.Millisecond}.withDefaults()
		l := &Listener{
			cfg:      cfg,
			conns:    make(chan *Conn, 1),
			done:     make(chan struct{}),
			sessions: make(map[uint64]*Conn),
			pending:  make(map[net.Conn]struct{}),
		}
		// A live session with ID 1, so reconnects reach the digest check.
		peer, base := net.Pipe()
		defer peer.Close()
		s := newConn(cfg, 1, vecKey(), newCipher(vecKey()), newCipher(vecKey()), base)
		s.l = l
		l.sessions[1] = s
		defer s.Close()

		client, server := net.Pipe()
		go func() {
			client.Write(in)
			io.Copy(io.Discard, client)
		}()
		err := l.serve(server)
		server.Close()
		client.Close()
		if err == nil {
			t.Fatalf("handshake %x succeeded", in)
		}
		if len(l.conns) != 0 {
			t.Fatal("a session was handed out")
		}
		s.mu.Lock()
		state := s.state
		s.mu.Unlock()
		if state != stateConnected && !signed(in) {
			t.Fatalf("handshake %x disturbed the live session", in)
		}
	})
}

// signed reports whether in starts with a reconnect request for session 1
// made with its key: only such a request may take the session over.
func signed(in []byte) bool {
	if len(in) < reconnRequestSize || in[0] != typeReconn {
		return false
	}
	r := decodeReconnRequest([reconnRequestSize - sizeOfType]byte(in[1:reconnRequestSize]))
	return r.id == 1 && r.verify(vecKey())
}
