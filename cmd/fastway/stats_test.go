package main

import (
	"strings"
	"testing"

	"github.com/fastway-go/fastway/gateway"
)

func TestFormatStats(t *testing.T) {
	var s gateway.Stats
	s.ClientConns, s.ServerConns, s.VirtualConns = 3, 2, 5
	s.Client = gateway.Traffic{FramesIn: 10, FramesOut: 11, BytesIn: 100, BytesOut: 110}
	s.Server = gateway.Traffic{FramesIn: 20, FramesOut: 21, BytesIn: 200, BytesOut: 210}
	s.DialsAccepted = 7
	s.DialsRefused[gateway.RefuseLimit] = 4
	s.Disconnects[gateway.ReasonIdleTimeout] = 6
	s.AuthFailures = 1
	s.QueueHighWater = [2]int64{12, 34}
	got := formatStats(s)
	if strings.ContainsAny(got, "\n\"") {
		t.Fatalf("not one unquoted line: %q", got)
	}
	fields := strings.Fields(got)
	keys := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("field %q is not key=value", f)
		}
		keys[k] = v
	}
	for k, v := range map[string]string{
		"conns.client": "3", "conns.server": "2", "conns.virtual": "5",
		"client.frames_in": "10", "client.frames_out": "11", "client.bytes_in": "100", "client.bytes_out": "110",
		"server.frames_in": "20", "server.frames_out": "21", "server.bytes_in": "200", "server.bytes_out": "210",
		"dials.accepted": "7", "dials.refused.limit": "4", "dials.refused.unknown_id": "0",
		"disconnects.idle_timeout": "6", "disconnects.peer_closed": "0",
		"auth_failures":           "1",
		"queue_high_water.client": "12", "queue_high_water.server": "34",
	} {
		if keys[k] != v {
			t.Errorf("%s=%q, want %q in %q", k, keys[k], v, got)
		}
	}
	for _, r := range gateway.RefuseReasons() {
		if _, ok := keys["dials.refused."+word(r.String())]; !ok {
			t.Errorf("no count for refuse reason %q", r)
		}
	}
	for _, r := range gateway.Reasons() {
		if _, ok := keys["disconnects."+word(r.String())]; !ok {
			t.Errorf("no count for disconnect reason %q", r)
		}
	}
}

func TestStatsCommandArgs(t *testing.T) {
	if _, err := statsCommand(nil, nil)([]string{"now"}); err == nil {
		t.Fatal("stats with an argument: no error")
	}
}
