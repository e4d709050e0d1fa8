package gateway

import (
	"context"
	"testing"
)

func TestServersAndReady(t *testing.T) {
	g := startGW(t, Config{})
	eventually(t, "ready", g.Ready)
	g.dialServer(t, 2)
	old := g.dialServer(t, 1)
	g.dialServer(t, 1)
	c := g.dialClient(t)
	open(t, c, g.dialServer(t, 3), 3)
	list := g.Servers()
	if len(list) != 4 {
		t.Fatalf("Servers() = %+v, want 4 entries", list)
	}
	wantIDs := []uint32{1, 1, 2, 3}
	for i, s := range list {
		if s.ID != wantIDs[i] || s.Since.IsZero() || s.Addr == "" {
			t.Fatalf("entry %d = %+v", i, s)
		}
	}
	if list[0].Addr != old.conn.LocalAddr().String() || list[0].Newest || !list[1].Newest {
		t.Fatalf("ID 1 entries not oldest first: %+v", list[:2])
	}
	if list[3].VirtualConns != 1 {
		t.Fatalf("server 3 has %d virtual connections, want 1", list[3].VirtualConns)
	}
	g.Shutdown(context.Background())
	if g.Ready() {
		t.Fatal("Ready after Shutdown")
	}
}
