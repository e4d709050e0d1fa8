// Package room is the chat demo's backend (examples/chat): a server that
// keeps chat rooms as fan-out groups at the gateway (docs/protocol.md §7).
// A message said in a room is one Publish to the room's group, to everyone
// but the sender; an announcement is one Broadcast to every connection.
//
// The messages are JSON (Format), one per data frame; "joined" and
// "system" carry the room's members as they are after the change, so a
// client can show who is there (examples/chat/web does):
//
//	client → server  {"type":"join","room":"lobby","name":"alice"}
//	                 {"type":"say","text":"hi"}
//	                 {"type":"announce","text":"server restarts at noon"}
//	server → client  {"type":"joined","room":"lobby","name":"alice","members":["alice","bob"]}
//	                 {"type":"msg","room":"lobby","name":"bob","text":"hi"}
//	                 {"type":"system","room":"lobby","text":"bob joined","members":["alice","bob"]}
//	                 {"type":"announce","name":"alice","text":"..."}
//	                 {"type":"error","text":"..."}
package room

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/fastway-go/fastway/proto"
)

// Message is one chat message, either way.
type Message struct {
	Type    string   `json:"type"`
	Room    string   `json:"room,omitempty"`
	Name    string   `json:"name,omitempty"`
	Text    string   `json:"text,omitempty"`
	Members []string `json:"members,omitempty"`
}

// Format is the proto.MsgFormat of the chat: a Message as JSON.
type Format struct{}

// EncodeMessage implements proto.MsgFormat.
func (Format) EncodeMessage(msg any) ([]byte, error) { return json.Marshal(msg) }

// DecodeMessage implements proto.MsgFormat.
func (Format) DecodeMessage(b []byte) (any, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Bounds of what one client may send.
const (
	MaxName = 32
	MaxRoom = 32
	MaxText = 1000
)

// Server is the chat backend on one server endpoint.
type Server struct {
	ep  *proto.EndPoint
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*chatRoom
}

type chatRoom struct {
	name    string
	group   *proto.Group
	members map[*proto.Conn]string // conn -> name
}

// New returns a chat server on ep, a server endpoint whose MsgFormat is
// Format. A nil logger means slog.Default().
func New(ep *proto.EndPoint, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	return &Server{ep: ep, log: log, rooms: map[string]*chatRoom{}}
}

// Serve accepts virtual connections and serves each on a goroutine of its
// own until ctx ends or the endpoint closes; it waits for them.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.ep.AcceptContext(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, proto.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn reads one client's messages until its virtual connection ends.
func (s *Server) serveConn(ctx context.Context, c *proto.Conn) {
	var name string
	var in *chatRoom
	defer func() {
		if in != nil {
			s.leave(in, c, name)
		}
		c.Close()
	}()
	for {
		m, err := c.ReceiveContext(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, proto.ErrRecvOverflow) || errors.Is(err, proto.ErrClosed) || ctx.Err() != nil {
				return
			}
			c.Send(Message{Type: "error", Text: "bad message"})
			continue
		}
		msg := m.(Message)
		switch msg.Type {
		case "join":
			n, r := strings.TrimSpace(msg.Name), strings.TrimSpace(msg.Room)
			if !valid(n, MaxName) || !valid(r, MaxRoom) {
				c.Send(Message{Type: "error", Text: fmt.Sprintf("a name and a room of 1 to %d characters, please", MaxName)})
				continue
			}
			if in != nil {
				s.leave(in, c, name)
			}
			name = n
			in = s.join(r, c, name)
		case "say":
			if in == nil {
				c.Send(Message{Type: "error", Text: "join a room first"})
				continue
			}
			if !valid(msg.Text, MaxText) {
				continue
			}
			// Everyone in the room but the sender, in one frame.
			in.group.Publish(Message{Type: "msg", Room: in.name, Name: name, Text: msg.Text}, c)
		case "announce":
			if in == nil || !valid(msg.Text, MaxText) {
				continue
			}
			// Every connection of the server, in every room or none.
			s.ep.Broadcast(Message{Type: "announce", Name: name, Text: msg.Text})
		default:
			c.Send(Message{Type: "error", Text: "unknown type " + msg.Type})
		}
	}
}

func valid(s string, max int) bool {
	n := utf8.RuneCountInString(s)
	return n > 0 && n <= max && utf8.ValidString(s)
}

// join puts c, called name, in room r (made on first use) and tells the
// room and c.
func (s *Server) join(r string, c *proto.Conn, name string) *chatRoom {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.rooms[r]
	if room == nil {
		g, err := s.ep.NewGroup()
		if err != nil {
			return nil
		}
		room = &chatRoom{name: r, group: g, members: map[*proto.Conn]string{}}
		s.rooms[r] = room
	}
	room.members[c] = name
	names := room.names()
	// Published before c joins the group: the others are told, c is not.
	room.group.Publish(Message{Type: "system", Room: r, Text: name + " joined", Members: names}, nil)
	if err := room.group.Join(c); err != nil {
		delete(room.members, c)
		return nil
	}
	c.Send(Message{Type: "joined", Room: r, Name: name, Members: names})
	s.log.Info("chat: joined", slog.String("room", r), slog.String("name", name), slog.Uint64("conn_id", uint64(c.ConnID())))
	return room
}

// leave takes c out of room; the room's group ends with its last member.
func (s *Server) leave(room *chatRoom, c *proto.Conn, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(room.members, c)
	room.group.Leave(c)
	if len(room.members) == 0 {
		room.group.Close()
		delete(s.rooms, room.name)
		return
	}
	room.group.Publish(Message{Type: "system", Room: room.name, Text: name + " left", Members: room.names()}, nil)
}

// names lists the room's members' names, sorted (a name used twice is
// listed twice). Called with s.mu held.
func (r *chatRoom) names() []string {
	names := make([]string, 0, len(r.members))
	for _, n := range r.members {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
