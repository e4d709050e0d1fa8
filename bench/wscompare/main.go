// Command wscompare is the WebSocket library comparison of
// docs/benchmarks.md ("WebSocket libraries"): one echo server per library,
// each doing what the gateway does with a WebSocket client
// (docs/protocol.md §8): upgrade, read the client's binary messages as one
// byte stream, cut the §1 frames out of it and answer them (Dial with
// Accept, a data frame and Ping echoed), the answers to one read written as
// one binary message of whole frames. fastway-bench -ws -baseline drives
// them all with the same load; scripts/wscompare.sh runs the comparison.
//
//	wscompare -lib fastway|gorilla|coder -listen 127.0.0.1:0
//
// The libraries:
//
//   - fastway: github.com/gobwas/ws for the upgrade and the gateway's own
//     internal/ws for the frames (what the gateway runs): the reader waits
//     for readability holding no buffer (ReadLazy), reads into a pooled one
//     and decodes in place.
//   - gorilla: github.com/gorilla/websocket behind net/http, its documented
//     low-memory settings (the HTTP server's 4 KiB read buffer reused, a
//     write buffer pool); NextReader waits for a message holding only the
//     library's own buffers.
//   - coder: github.com/coder/websocket behind net/http, compression off;
//     Reader waits for a message the same way.
//
// Every server takes its read buffer from the same pool only once a message
// (or, for fastway, readable bytes) has arrived, and gives it back whenever
// no part of a frame is left in it, so an idle connection holds what the
// library holds and nothing of the harness's. It is a module of its own so
// that the gateway's go.mod does not grow by two WebSocket libraries, and it
// is not part of scripts/test.sh.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	fwws "github.com/fastway-go/fastway/internal/ws"
	"github.com/fastway-go/fastway/proto"
)

func main() {
	lib := flag.String("lib", "fastway", "the library: fastway, gorilla or coder")
	listen := flag.String("listen", "127.0.0.1:0", "the address to serve WebSocket on")
	maxPacket := flag.Int("maxpacket", proto.DefaultMaxPacket, "largest frame Length accepted")
	flag.Parse()
	serve, ok := servers[*lib]
	if !ok || flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wscompare: -lib %q is not fastway, gorilla or coder\n", *lib)
		os.Exit(2)
	}
	raiseNoFile()
	tl, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wscompare:", err)
		os.Exit(1)
	}
	ln := wrap(*lib, tl)
	fmt.Fprintf(os.Stderr, "wscompare: %s listening on %s pid=%d\n", *lib, ln.Addr(), os.Getpid())
	e := &echo{maxPacket: *maxPacket}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		ln.Close()
		os.Exit(0)
	}()
	if err := serve(ln, e); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, "wscompare:", err)
		os.Exit(1)
	}
}

// servers serve WebSocket on ln, wrapped by wrap, with one library each,
// answering with e, until ln is closed.
var servers = map[string]func(ln net.Listener, e *echo) error{
	"fastway": serveFastway,
	"gorilla": serveGorilla,
	"coder":   serveCoder,
}

// wrap returns the listener lib serves: fastway's upgrades its
// connections itself (closing it closes ln).
func wrap(lib string, ln net.Listener) net.Listener {
	if lib == "fastway" {
		return fwws.NewListener(ln, fwws.Config{})
	}
	return ln
}

// raiseNoFile raises RLIMIT_NOFILE to its hard limit: 10,000 idle
// connections need as many descriptors.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// readBufSize is the pooled read buffer of every server; a frame larger
// than it gets a buffer of its own size while it is read.
const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, readBufSize); return &b }}

// stream is a connection's reading state, the same for every library: the
// bytes read and not yet cut into frames, in a buffer taken from readBufs
// only while there are any.
type stream struct {
	buf  *[]byte
	have int // bytes in *buf
	own  bool
}

// get returns the buffer to read into (its free part), taking one if the
// stream holds none.
func (s *stream) get() []byte {
	if s.buf == nil {
		s.buf, s.own = readBufs.Get().(*[]byte), false
	}
	return (*s.buf)[s.have:]
}

// put gives the buffer back if it holds nothing.
func (s *stream) put() {
	if s.buf != nil && s.have == 0 {
		if !s.own {
			readBufs.Put(s.buf)
		}
		s.buf = nil
	}
}

// echo answers the frames of every connection.
type echo struct {
	maxPacket int
	nextID    atomic.Uint32
}

// consume takes the n bytes just read into the stream's buffer, answers
// every whole frame, and calls write with the answers (one message) when
// there are any. A bad frame is an error.
func (e *echo) consume(s *stream, n int, write func([]byte) error) error {
	s.have += n
	b := (*s.buf)[:s.have]
	op := outBufs.Get().(*[]byte)
	out := (*op)[:0]
	i := 0
	var err error
	for err == nil && len(b)-i >= proto.SizeOfLength {
		length := binary.LittleEndian.Uint32(b[i:])
		if err = proto.CheckLength(length, e.maxPacket); err != nil {
			break
		}
		size := proto.SizeOfLength + int(length)
		if len(b)-i < size {
			break
		}
		out, err = e.answer(b[i:i+size], out)
		i += size
	}
	if err == nil && len(out) > 0 {
		err = write(out)
	}
	*op = out[:0]
	outBufs.Put(op)
	// Keep the partial frame at the front, in a buffer it fits in.
	s.have = copy(b, b[i:])
	if err == nil && s.have >= proto.SizeOfLength {
		if size := proto.SizeOfLength + int(binary.LittleEndian.Uint32(b)); size > len(*s.buf) {
			nb := make([]byte, size)
			copy(nb, b[:s.have])
			if !s.own {
				readBufs.Put(s.buf)
			}
			s.buf, s.own = &nb, true
		}
	}
	s.put()
	return err
}

// answer appends the answer to frame f to out: a data frame and Ping come
// back as they are, Dial gets Accept; anything else is an error.
func (e *echo) answer(f, out []byte) ([]byte, error) {
	if proto.Header(f).ConnID() != 0 {
		return append(out, f...), nil
	}
	c, err := proto.DecodeCommand(f)
	if err != nil {
		return out, err
	}
	switch c.Type {
	case proto.CmdDial:
		return proto.Command{Type: proto.CmdAccept, ConnID: e.nextID.Add(1), RemoteID: c.RemoteID}.Encode(out), nil
	case proto.CmdPing, proto.CmdClose:
		return append(out, f...), nil
	}
	return out, fmt.Errorf("%s sent to an echo server", c.Type)
}
