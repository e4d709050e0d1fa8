// Command backend is the chat demo's server (examples/chat): it connects to
// a fastway gateway's server port as server -id and keeps chat rooms as
// fan-out groups there (package room). examples/chat/run.sh starts it with
// a gateway.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fastway-go/fastway/examples/chat/room"
	"github.com/fastway-go/fastway/proto"
)

func main() {
	addr := flag.String("gateway", "127.0.0.1:4001", "the gateway's server address")
	id := flag.Uint("id", 1, "the server ID clients dial")
	flag.Parse()
	key := os.Getenv("FASTWAY_AUTH_PASSWORD") // the gateway's -ServerAuthPassword
	ep, err := proto.DialServerAddr("tcp", *addr, proto.EndPointCfg{ServerID: uint32(*id), AuthKey: key, MsgFormat: room.Format{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	defer ep.Close()
	slog.Info("chat backend connected", slog.String("gateway", *addr), slog.Uint64("id", uint64(*id)))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ep.Done()
		stop()
	}()
	if err := room.New(ep, nil).Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
