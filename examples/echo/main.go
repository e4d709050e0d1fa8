// Command echo is a backend server for trying out clients (the TypeScript
// SDK's integration tests run it behind the real gateway): it connects to a
// fastway gateway's server port as server -id with proto.DialServer and sends
// back every message it receives on every virtual connection, byte for byte.
//
// Two messages are requests instead, answered on the same virtual connection:
//
//	!dialback  open a virtual connection to the client (the gateway gave the
//	           client an ID, which is this connection's remote ID), send
//	           "hello <ConnID>" on it and echo on it too; answer
//	           "dialed <ConnID>" (or "refused <error>")
//	!close     close this virtual connection from the server's side
//
// It prints "ready" on stdout once connected, and runs until SIGINT or
// SIGTERM, or until the gateway closes its connection. The key is the
// gateway's -ServerAuthPassword, from $FASTWAY_AUTH_PASSWORD.
//
//	FASTWAY_AUTH_PASSWORD=secret go run ./examples/echo -gateway=127.0.0.1:4001 -id=1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/fastway-go/fastway/proto"
)

func main() {
	addr := flag.String("gateway", "127.0.0.1:4001", "the gateway's server address, host:port")
	id := flag.Uint("id", 1, "the server ID clients dial")
	flag.Parse()
	key := os.Getenv("FASTWAY_AUTH_PASSWORD")
	ep, err := proto.DialServerAddr("tcp", *addr, proto.EndPointCfg{ServerID: uint32(*id), AuthKey: key})
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		ep.Close() // Accept and every Receive return
	}()
	for {
		c, err := ep.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(ep, c, &wg)
		}()
	}
	ep.Close()
	wg.Wait()
	if err := ep.Err(); err != nil && !errors.Is(err, proto.ErrClosed) {
		slog.Error("echo: gateway connection ended", slog.String("reason", err.Error()))
		os.Exit(1)
	}
}

// serve echoes on c until either side closes it, answering the requests of
// the package comment.
func serve(ep *proto.EndPoint, c *proto.Conn, wg *sync.WaitGroup) {
	defer c.Close()
	for {
		m, err := c.Receive()
		if err != nil {
			return // io.EOF: the client closed it
		}
		msg := m.([]byte)
		switch string(msg) {
		case "!close":
			return
		case "!dialback":
			d, err := ep.Dial(c.RemoteID())
			if err != nil {
				msg = []byte("refused " + err.Error())
				break
			}
			if d.Send([]byte(fmt.Sprintf("hello %d", d.ConnID()))) != nil {
				d.Close()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(ep, d, wg)
			}()
			msg = []byte(fmt.Sprintf("dialed %d", d.ConnID()))
		}
		if c.Send(msg) != nil {
			return
		}
	}
}
