package snet_test

import (
	"log"
	"time"

	"github.com/fastway-go/fastway/proto"
	"github.com/fastway-go/fastway/snet"
)

// A mobile game client on a gateway port with -ClientSnetEnable: the snet
// stream survives dropped TCP connections, and a keep-alive timeout asks for
// a reconnect at once instead of closing the endpoint. TCPDialer sizes the
// socket buffers for the rewrite buffer before each connection is made.
func ExampleDial() {
	cfg := snet.Config{EnableCrypt: true}
	conn, err := snet.Dial(cfg, snet.TCPDialer(cfg, "127.0.0.1:4000", 5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	sc := conn.(*snet.Conn)
	cli, err := proto.NewClient(conn, proto.EndPointCfg{
		TimeoutCallback: func() bool { sc.TryReconn(); return true },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	c, err := cli.Dial(1)
	if err != nil {
		log.Fatal(err)
	}
	c.Send([]byte("hello"))
}
