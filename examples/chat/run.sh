#!/usr/bin/env bash
# Starts the chat demo on loopback: a fastway gateway (TCP client port and a
# WebSocket client port), the chat backend (examples/chat/backend, server
# ID 1) and a static server for the browser page (examples/chat/web, with
# the TypeScript SDK's bundle from sdk/typescript/dist), then waits; Ctrl-C
# stops them all.
#
#   examples/chat/run.sh
#   # open the printed URL in two browser tabs, pick a name and a room in each
#   go run ./examples/chat/cli -name carol -room lobby   # a terminal client too
#
# In the page a line is said in the room (to everyone there but you), and
# "Announce" (or "/announce TEXT") reaches everyone connected; the terminal
# client speaks the same messages (/join ROOM, /announce TEXT).
#
# Environment: CLIENT_ADDR (default 127.0.0.1:4000), SERVER_ADDR
# (127.0.0.1:4001), CLIENT_WS_ADDR (127.0.0.1:4002), WEB_ADDR
# (127.0.0.1:8080), GATEWAY_WS_URL (what the page dials; default
# ws://CLIENT_WS_ADDR/, set it when the browser reaches the gateway by
# another name), FASTWAY_AUTH_PASSWORD (default: a random one for this run).
# A port 0 picks a free one; the real addresses are printed. FASTWAY_BIN
# runs that gateway binary instead of building ./cmd/fastway. Needs Go and
# Node.js 20 or later; builds the SDK (npm ci, npm run build) when
# sdk/typescript/dist is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLIENT_ADDR=${CLIENT_ADDR:-127.0.0.1:4000}
SERVER_ADDR=${SERVER_ADDR:-127.0.0.1:4001}
CLIENT_WS_ADDR=${CLIENT_WS_ADDR:-127.0.0.1:4002}
WEB_ADDR=${WEB_ADDR:-127.0.0.1:8080}
export FASTWAY_AUTH_PASSWORD=${FASTWAY_AUTH_PASSWORD:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# await FILE PATTERN: waits up to 10 s for a line matching PATTERN in FILE
# and prints it; fails with FILE's content otherwise.
await() {
	for _ in $(seq 100); do
		if grep -m1 -E "$2" "$1"; then return 0; fi
		sleep 0.1
	done
	echo "chat: no \"$2\" in $1:" >&2
	cat "$1" >&2
	return 1
}

if [ ! -f sdk/typescript/dist/index.js ]; then
	echo "chat: building the TypeScript SDK (sdk/typescript)"
	(cd sdk/typescript && npm ci --no-audit --no-fund && npm run build) >&2
fi
fastway=${FASTWAY_BIN:-}
if [ -z "$fastway" ]; then
	fastway=$tmp/fastway
	go build -o "$fastway" ./cmd/fastway
fi
go build -o "$tmp/backend" ./examples/chat/backend

"$fastway" -ClientAddr="$CLIENT_ADDR" -ServerAddr="$SERVER_ADDR" -ClientWSAddr="$CLIENT_WS_ADDR" \
	-PidFile="$tmp/fastway.pid" -CmdFile="$tmp/fastway.cmd" 2>"$tmp/fastway.log" &
pids+=($!)
await "$tmp/fastway.log" 'msg=started' >/dev/null
addr() { await "$tmp/fastway.log" "msg=listening side=$1 " | sed -E 's/.* addr=([^ ]+).*/\1/'; }
client_addr=$(addr client)
server_addr=$(addr server)
ws_addr=$(addr ws)
ws_url=${GATEWAY_WS_URL:-ws://$ws_addr/}

"$tmp/backend" -gateway "$server_addr" -id 1 2>"$tmp/backend.log" &
pids+=($!)
await "$tmp/backend.log" 'chat backend connected' >/dev/null

node scripts/static-server.mjs -addr "$WEB_ADDR" -mount /=examples/chat/web -mount /sdk/=sdk/typescript/dist \
	-config "{\"gateway\":\"$ws_url\",\"server\":1}" >"$tmp/web.log" 2>&1 &
pids+=($!)
web_url=$(await "$tmp/web.log" '^static: listening on ' | sed 's/^static: listening on //')

echo "chat: gateway: TCP clients on $client_addr, WebSocket clients on $ws_url, servers on $server_addr"
echo "chat: backend registered as server 1"
echo "chat: open $web_url in two browser tabs (pick a name and a room in each)"
echo "chat: or in a terminal:  go run ./examples/chat/cli -gateway $client_addr -name carol -room lobby"
echo "chat: Ctrl-C stops it all"
wait -n "${pids[@]}"
echo "chat: a process exited; logs:" >&2
tail -n 20 "$tmp"/*.log >&2
exit 1
