package room

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/poll"
	"github.com/fastway-go/fastway/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 5 * time.Second

// TestChat runs the backend through a real gateway with three clients:
// two in one room, one in another.
func TestChat(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	g := gateway.New(gateway.Config{ServerAuthPassword: "k", Logger: quiet})
	cl, _ := net.Listen("tcp", "127.0.0.1:0")
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 2)
	go func() { served <- g.ServeClients(cl) }()
	go func() { served <- g.ServeServers(sl) }()
	defer func() {
		g.Stop()
		<-served
		<-served
	}()
	ep, err := proto.DialServerAddr("tcp", sl.Addr().String(), proto.EndPointCfg{ServerID: 1, AuthKey: "k", MsgFormat: Format{}})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- New(ep, quiet).Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	poll.Until(t, wait, "the chat server registered", func() bool { return len(g.Servers()) > 0 })

	join := func(name, room string) *proto.Conn {
		t.Helper()
		cli, err := proto.DialClientAddr("tcp", cl.Addr().String(), proto.EndPointCfg{MsgFormat: Format{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		c, err := cli.DialContext(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		c.Send(Message{Type: "join", Room: room, Name: name})
		if m := recv(t, ctx, c); m.Type != "joined" || m.Room != room || !slices.Contains(m.Members, name) {
			t.Fatalf("%s got %+v, want joined %s with %s a member", name, m, room, name)
		}
		return c
	}
	alice := join("alice", "lobby")
	bob := join("bob", "lobby")
	if m := recv(t, ctx, alice); m.Type != "system" || m.Text != "bob joined" || !slices.Equal(m.Members, []string{"alice", "bob"}) {
		t.Fatalf("alice got %+v, want bob joined, members alice and bob", m)
	}
	carol := join("carol", "garden")

	// Said in a room: everyone there but the sender.
	alice.Send(Message{Type: "say", Text: "hi bob"})
	if m := recv(t, ctx, bob); m.Type != "msg" || m.Name != "alice" || m.Text != "hi bob" || m.Room != "lobby" {
		t.Fatalf("bob got %+v", m)
	}
	bob.Send(Message{Type: "say", Text: "hi alice"})
	if m := recv(t, ctx, alice); m.Type != "msg" || m.Name != "bob" || m.Text != "hi alice" {
		t.Fatalf("alice got %+v (her own message must not come back)", m)
	}
	// An announcement: everyone, in any room.
	carol.Send(Message{Type: "announce", Text: "tea at five"})
	for _, c := range []*proto.Conn{alice, bob, carol} {
		if m := recv(t, ctx, c); m.Type != "announce" || m.Name != "carol" || m.Text != "tea at five" {
			t.Fatalf("got %+v, want carol's announcement", m)
		}
	}
	// Bob goes: alice is told, and the gateway's group shrinks with him.
	bob.Close()
	if m := recv(t, ctx, alice); m.Type != "system" || m.Text != "bob left" || !slices.Equal(m.Members, []string{"alice"}) {
		t.Fatalf("alice got %+v, want bob left, members alice", m)
	}
	if st := g.Stats().Fanout; st.Groups != 2 || st.Memberships != 2 {
		t.Fatalf("gateway groups %+v, want lobby and garden with one member each", st)
	}
}

func recv(t *testing.T, ctx context.Context, c *proto.Conn) Message {
	t.Helper()
	m, err := c.ReceiveContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("nothing received in time")
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.(Message)
}
