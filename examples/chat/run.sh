#!/usr/bin/env bash
# Starts the chat demo: a fastway gateway on loopback and the chat backend
# (examples/chat/backend, server ID 1), then waits; Ctrl-C stops both.
#
#   examples/chat/run.sh
#   go run ./examples/chat/cli -name alice -room lobby      # in another terminal
#   go run ./examples/chat/cli -name bob -room lobby        # and another
#
# Environment: CLIENT_ADDR (default 127.0.0.1:4000), SERVER_ADDR
# (127.0.0.1:4001), FASTWAY_AUTH_PASSWORD (default: a random one for this run).
#
# The browser page (the TypeScript SDK over the gateway's WebSocket port) is
# not here yet: the SDK and the WebSocket listener are being built on their
# own branch. The terminal client speaks the same messages.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLIENT_ADDR=${CLIENT_ADDR:-127.0.0.1:4000}
SERVER_ADDR=${SERVER_ADDR:-127.0.0.1:4001}
export FASTWAY_AUTH_PASSWORD=${FASTWAY_AUTH_PASSWORD:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

go build -o "$tmp/fastway" ./cmd/fastway
go build -o "$tmp/backend" ./examples/chat/backend

"$tmp/fastway" -ClientAddr="$CLIENT_ADDR" -ServerAddr="$SERVER_ADDR" -PidFile="$tmp/fastway.pid" -CmdFile="$tmp/fastway.cmd" 2>"$tmp/fastway.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q 'msg=started' "$tmp/fastway.log" && break
	sleep 0.1
done
grep -q 'msg=started' "$tmp/fastway.log" || { cat "$tmp/fastway.log" >&2; exit 1; }

"$tmp/backend" -gateway "$SERVER_ADDR" -id 1 &
pids+=($!)

echo "chat: gateway clients on $CLIENT_ADDR, backend registered as server 1"
echo "chat: in other terminals:  go run ./examples/chat/cli -gateway $CLIENT_ADDR -name alice -room lobby"
echo "chat: lines are said in the room; /join ROOM changes rooms; /announce TEXT reaches everyone"
wait -n "${pids[@]}"
