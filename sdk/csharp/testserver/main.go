// Command testserver is the Go backend the C# SDK's integration tests
// (sdk/csharp/tests) run behind a real gateway. It registers two servers
// with proto.DialServer and reports on stdout, one line per event:
//
//	ready                      both servers are connected
//	accept <server> <conn> <remote>
//	eof <server> <conn>        the client closed the virtual connection
//	dialed <conn> <client>     it opened a virtual connection to a client
//
// Server -echo (default 1) sends back every message it receives. Server
// -ctl (default 2) takes text commands, one per message:
//
//	stream <seed> <count> <max>  send count messages of stream seed and
//	                             check count messages of stream seed+1
//	                             (sizes 0..max, see streamMsg), then reply
//	                             "ok <bytes>" or "bad <why>"
//	dialme                       dial the client back, send "hello <conn>"
//	                             there and echo on it; reply "dialed <conn>"
//	close                        close this virtual connection
//
// It exits when stdin closes or either server's connection ends.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/fastway-go/fastway/proto"
)

// outMu keeps report's lines whole.
var outMu sync.Mutex

func report(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func main() {
	addr := flag.String("addr", "", "the gateway's server port, host:port")
	key := flag.String("key", "", "the gateway's -ServerAuthPassword")
	echoID := flag.Uint("echo", 1, "ID of the echo server")
	ctlID := flag.Uint("ctl", 2, "ID of the command server")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("testserver: ")

	dial := func(id uint) *proto.EndPoint {
		ep, err := proto.DialServerAddr("tcp", *addr, proto.EndPointCfg{ServerID: uint32(id), AuthKey: *key, RecvChanSize: 1 << 16})
		if err != nil {
			log.Fatal(err)
		}
		return ep
	}
	echo, ctl := dial(*echoID), dial(*ctlID)
	go serve(echo, uint32(*echoID), func(ep *proto.EndPoint, c *proto.Conn) { echoLoop(c) })
	go serve(ctl, uint32(*ctlID), control)
	report("ready")
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-echo.Done():
		log.Printf("echo server: %v", echo.Err())
	case <-ctl.Done():
		log.Printf("ctl server: %v", ctl.Err())
	}
	echo.Close()
	ctl.Close()
}

// serve accepts the virtual connections clients open to server id.
func serve(ep *proto.EndPoint, id uint32, handle func(*proto.EndPoint, *proto.Conn)) {
	for {
		c, err := ep.Accept()
		if err != nil {
			return
		}
		report("accept %d %d %d", id, c.ConnID(), c.RemoteID())
		go func() {
			handle(ep, c)
			report("eof %d %d", id, c.ConnID())
		}()
	}
}

// echoLoop sends back every message until the client closes c.
func echoLoop(c *proto.Conn) {
	defer c.Close()
	for {
		m, err := c.Receive()
		if err != nil {
			return
		}
		if c.Send(m) != nil {
			return
		}
	}
}

// control runs the commands of a client on c.
func control(ep *proto.EndPoint, c *proto.Conn) {
	defer c.Close()
	for {
		m, err := c.Receive()
		if err != nil {
			return
		}
		f := strings.Fields(string(m.([]byte)))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "stream":
			if len(f) != 4 {
				c.Send([]byte("bad usage"))
				continue
			}
			seed, _ := strconv.ParseUint(f[1], 10, 64)
			count, _ := strconv.Atoi(f[2])
			max, _ := strconv.Atoi(f[3])
			c.Send([]byte(stream(c, seed, count, max)))
		case "dialme":
			d, err := ep.Dial(c.RemoteID())
			if err != nil {
				c.Send([]byte("bad " + err.Error()))
				continue
			}
			report("dialed %d %d", d.ConnID(), d.RemoteID())
			d.Send([]byte(fmt.Sprintf("hello %d", d.ConnID())))
			go func() {
				echoLoop(d)
				report("eof 0 %d", d.ConnID())
			}()
			c.Send([]byte(fmt.Sprintf("dialed %d", d.ConnID())))
		case "close":
			return
		default:
			c.Send([]byte("bad command " + f[0]))
		}
	}
}

// stream sends count messages of stream seed on c while it checks count
// messages of stream seed+1 from it, and says how that went.
func stream(c *proto.Conn, seed uint64, count, max int) string {
	sendErr := make(chan error, 1)
	go func() {
		for i := range count {
			if err := c.Send(streamMsg(seed, i, max)); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	total := 0
	for i := range count {
		m, err := c.Receive()
		if err != nil {
			return fmt.Sprintf("bad receive %d: %v", i, err)
		}
		got, want := m.([]byte), streamMsg(seed+1, i, max)
		if !bytes.Equal(got, want) {
			return fmt.Sprintf("bad message %d: %d bytes, want %d", i, len(got), len(want))
		}
		total += len(got)
	}
	if err := <-sendErr; err != nil {
		return "bad send: " + err.Error()
	}
	return fmt.Sprintf("ok %d", total)
}

// streamMsg is message i of stream seed: message 0 is empty, message 1 has
// max bytes, the others a size in [0, max] from a splitmix64 generator
// seeded with seed and i, filled from the same generator. The C# tests
// (tests/Stream.cs) compute the same bytes.
func streamMsg(seed uint64, i, max int) []byte {
	g := splitmix(seed*1_000_003 + uint64(i))
	var n int
	switch i {
	case 0:
		n = 0
	case 1:
		n = max
	default:
		n = int(g.next() % uint64(max+1))
	}
	b := make([]byte, n+7)
	for j := 0; j < n; j += 8 {
		binary.LittleEndian.PutUint64(b[j:], g.next())
	}
	return b[:n]
}

type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}
