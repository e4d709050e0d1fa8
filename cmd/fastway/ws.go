package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/fastway-go/fastway/cmd"
	"github.com/fastway-go/fastway/gateway"
	"github.com/fastway-go/fastway/internal/ws"
)

// listenWS opens the WebSocket port, or returns nil when -ClientWSAddr is
// empty. It listens like the client port (SO_REUSEPORT with -ReusePort);
// TLS (wss) runs in each connection's handshake goroutine, under
// -ClientWSHandshakeTimeout, so a slow TLS client delays nobody.
func listenWS(o *options, log *slog.Logger) (*ws.Listener, error) {
	if o.ClientWSAddr == "" {
		return nil, nil
	}
	ln, err := listen(o.ClientWSAddr, o.ReusePort, nil)
	if err != nil {
		return nil, err
	}
	return ws.NewListener(ln, ws.Config{
		Path:                   o.ClientWSPath,
		Origins:                o.wsOrigins(),
		TLS:                    o.wsTLS,
		HandshakeTimeout:       o.ClientWSHandshakeTimeout,
		MaxHandshakes:          o.ClientWSMaxHandshakes,
		MaxHandshakesPerSource: cmp.Or(o.ClientWSMaxHandshakesPerSource, -1), // flag 0: no cap
		Log:                    log.With(slog.String("side", "ws")),
	}), nil
}

// closeWS closes l if it is open.
func closeWS(l *ws.Listener) {
	if l != nil {
		l.Close()
	}
}

// wsTLSMode names the WebSocket port's TLS setting for the log.
func wsTLSMode(o *options) string {
	if o.wsTLS == nil {
		return "off"
	}
	return "on"
}

// wsCommand is the ws ops command: the WebSocket port's counters.
func wsCommand(g *gateway.Gateway, l *ws.Listener) cmd.Handler {
	return func(args []string) (string, error) {
		if len(args) != 0 {
			return "", fmt.Errorf("%w: ws takes no arguments", cmd.ErrBadArgs)
		}
		if l == nil {
			return "ws off", nil
		}
		return formatWSStats(l.Stats(), g.Stats().WS), nil
	}
}

// formatWSStats prints the WebSocket port's counters as key=value pairs:
//
//	ws.upgrades=12 ws.subprotocol=12 ws.in_progress=0 ws.failed.timeout=1 ... ws.conns=11 ws.accepts=12 ...
func formatWSStats(h ws.Stats, t gateway.TransportStats) string {
	var b strings.Builder
	put := func(key string, v uint64) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("ws." + key + "=")
		b.WriteString(strconv.FormatUint(v, 10))
	}
	put("upgrades", h.Upgrades)
	put("subprotocol", h.Subproto)
	put("in_progress", uint64(max(h.InProgress, 0)))
	for _, f := range ws.Failures() {
		put("failed."+f.String(), h.Failed[f])
	}
	put("conns", uint64(max(t.Conns, 0)))
	put("accepts", t.Accepts)
	put("frames_in", t.Traffic.FramesIn)
	put("bytes_in", t.Traffic.BytesIn)
	put("frames_out", t.Traffic.FramesOut)
	put("bytes_out", t.Traffic.BytesOut)
	for _, r := range gateway.Reasons() {
		if n := t.Disconnects[r]; n > 0 {
			put("disconnects."+strings.ReplaceAll(r.String(), " ", "_"), n)
		}
	}
	return b.String()
}
