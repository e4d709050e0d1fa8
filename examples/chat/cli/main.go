// Command cli is a terminal client of the chat demo (examples/chat): it
// dials the chat server through a gateway's client port and chats from
// stdin. A line is said in the room; "/join ROOM" changes rooms;
// "/announce TEXT" reaches everyone connected.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/fastway-go/fastway/examples/chat/room"
	"github.com/fastway-go/fastway/proto"
)

func main() {
	addr := flag.String("gateway", "127.0.0.1:4000", "the gateway's client address")
	id := flag.Uint("id", 1, "the chat server's ID")
	name := flag.String("name", "guest", "your name")
	rm := flag.String("room", "lobby", "the room to join")
	flag.Parse()
	ep, err := proto.DialClientAddr("tcp", *addr, proto.EndPointCfg{MsgFormat: room.Format{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		os.Exit(1)
	}
	defer ep.Close()
	c, err := ep.Dial(uint32(*id))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cli:", err)
		os.Exit(1)
	}
	c.Send(room.Message{Type: "join", Room: *rm, Name: *name})
	go func() {
		for {
			m, err := c.Receive()
			if err != nil {
				fmt.Fprintln(os.Stderr, "cli: disconnected:", err)
				os.Exit(0)
			}
			msg := m.(room.Message)
			switch msg.Type {
			case "msg":
				fmt.Printf("[%s] %s: %s\n", msg.Room, msg.Name, msg.Text)
			case "joined":
				fmt.Printf("-- in %s with %s\n", msg.Room, strings.Join(msg.Members, ", "))
			case "announce":
				fmt.Printf("** %s announces: %s\n", msg.Name, msg.Text)
			default:
				fmt.Printf("-- %s\n", msg.Text)
			}
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "/join "):
			c.Send(room.Message{Type: "join", Room: strings.TrimPrefix(line, "/join "), Name: *name})
		case strings.HasPrefix(line, "/announce "):
			c.Send(room.Message{Type: "announce", Text: strings.TrimPrefix(line, "/announce ")})
		case line != "":
			c.Send(room.Message{Type: "say", Text: line})
		}
	}
}
