package proto_test

import (
	"log"

	"github.com/fastway-go/fastway/proto"
)

// A backend server: dial the gateway's server port, authenticate as server
// 1, and echo every message on every virtual connection clients open to it.
func ExampleDialServerAddr() {
	srv, err := proto.DialServerAddr("tcp", "127.0.0.1:4001", proto.EndPointCfg{
		ServerID: 1,
		AuthKey:  "secret",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	for {
		conn, err := srv.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				msg, err := conn.Receive()
				if err != nil {
					return // io.EOF once the client closed it
				}
				conn.Send(msg)
			}
		}()
	}
}

// A game client: connect to the client port, open a virtual connection to
// server 1, send and receive.
func ExampleDialClientAddr() {
	cli, err := proto.DialClientAddr("tcp", "127.0.0.1:4000", proto.EndPointCfg{})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	conn, err := cli.Dial(1) // proto.ErrRefused if no server 1 is connected
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.Send([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	reply, err := conn.Receive()
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%s", reply)
}
