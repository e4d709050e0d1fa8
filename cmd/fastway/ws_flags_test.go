package main

import (
	"strings"
	"testing"

	"github.com/fastway-go/fastway/gateway"
)

// TestWSFlags: the WebSocket flags' checks, and the descriptor reserve
// growing by -ClientWSMaxHandshakes when the port is on.
func TestWSFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"-ClientWSAddr=localhost"}, "ClientWSAddr"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSPath=ws"}, "-ClientWSPath"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSPath=/ws?x=1"}, "-ClientWSPath"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSOrigins=game.example.com"}, "is not an origin"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSHandshakeTimeout=0s"}, "-ClientWSHandshakeTimeout"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSMaxHandshakes=0"}, "-ClientWSMaxHandshakes"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSTLSCert=/nonexistent.pem"}, "-ClientWSTLSCert is set without -ClientWSTLSKey"},
		{[]string{"-ClientWSAddr=:0", "-ClientWSOrigins=https://game.example.com, http://localhost:8080"}, ""},
	} {
		o, err := parseFlags(append([]string{"-ServerAuthPassword=x"}, c.args...))
		if err == nil {
			err = o.validate()
		}
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%v: got %v, want an error about %s", c.args, err, c.err)
		}
	}

	reserve := func(args ...string) int {
		t.Helper()
		o, err := parseFlags(append([]string{"-ServerAuthPassword=x"}, args...))
		if err == nil {
			err = o.validate()
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := o.gatewayConfig()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.FDReserve
	}
	base := reserve()
	if base != gateway.DefaultFDReserve(gateway.Config{}) {
		t.Errorf("reserve %d without WebSocket", base)
	}
	if got := reserve("-ClientWSAddr=:0", "-ClientWSMaxHandshakes=500"); got != base+500 {
		t.Errorf("reserve %d with the WebSocket port, want %d + 500", got, base)
	}
}
