#!/usr/bin/env bash
# A fleet across real interfaces: network namespaces joined by veth pairs
# to a bridge, one gateway per namespace, etcd in the root namespace, the
# examples/fleet backend and the players in namespaces of their own
# (docs/scaling.md, "Multi-host run in network namespaces"). It measures:
#   - how long after a new gateway registers in etcd the backend is attached
#   - echo round trips: p50/p99 latency and round trips/s over the three
#   - a fleet-wide Publish stream reaching the players on every gateway
#   - the same stream while one gateway is SIGKILLed: its players close,
#     the players on the other two must lose nothing
# Needs root (ip netns), etcd (scripts/install-etcd.sh) and Go. Not part of
# scripts/test.sh or .ci/run. Bounded: every wait has a deadline, and the
# whole run stops after FLEET_NETNS_TIMEOUT seconds (default 240). The
# namespaces, links and processes are removed on exit, whatever happens.
#
#   sudo scripts/fleet-netns.sh            # PLAYERS=300 COUNT=3000 ECHO_DUR=5s
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYERS=${PLAYERS:-300}          # players per phase, spread over the three gateways
COUNT=${COUNT:-3000}             # messages per stream (one every 2 ms)
ECHO_DUR=${ECHO_DUR:-5s}
TIMEOUT=${FLEET_NETNS_TIMEOUT:-240}

if [ "$(id -u)" != 0 ]; then echo "fleet-netns: run as root (ip netns)" >&2; exit 1; fi
ETCD=${FASTWAY_ETCD:-$(command -v etcd || true)}
if [ -z "$ETCD" ]; then echo "fleet-netns: no etcd: run scripts/install-etcd.sh or set FASTWAY_ETCD" >&2; exit 1; fi

tag=fw$$                         # names unique to this run
net=10.$((200 + $$ % 50)).$(( ($$ / 50) % 250 ))
work=$(mktemp -d /tmp/fleet-netns.XXXXXX)
pids=()
namespaces=()
cleanup() {
  set +e
  # the watchdog's sleep first, then every process this run started
  for p in $(ps -o pid= --ppid "$watchdog" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  ip link del "${tag}br" 2>/dev/null
  if [ "${KEEP:-}" = "" ]; then rm -rf "$work"; else echo "logs kept in $work"; fi
}
watchdog=
trap cleanup EXIT
trap 'echo "fleet-netns: stopped by a signal (or over ${TIMEOUT}s)" >&2; exit 130' INT TERM
( sleep "$TIMEOUT"; kill -TERM $$ ) &
watchdog=$!
pids+=("$watchdog")
# bg OUT CMD...: run CMD in the background with its output in OUT and wait
# for it (a wait, unlike a foreground command, lets the TERM trap in at
# once); its exit code is returned, its output shown.
bg() {
  local out=$1; shift
  "$@" > "$out" 2>&1 &
  local p=$!
  pids+=("$p")
  local rc=0
  wait "$p" || rc=$?
  cat "$out"
  return $rc
}

fail() { echo "fleet-netns: FAIL: $*" >&2; exit 1; }
# waitlog FILE REGEX SECONDS
waitlog() {
  local end=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $end ] || fail "waited $3 s for /$2/ in $1"
    sleep 0.05
  done
}

echo "== build"
go build -o "$work/fastway" ./cmd/fastway
go build -o "$work/backend" ./examples/fleet/backend
go build -o "$work/players" ./examples/fleet/players

echo "== network: bridge ${tag}br $net.0/24; etcd on $net.1 (root namespace)"
ip link add "${tag}br" type bridge
ip addr add "$net.1/24" dev "${tag}br"
ip link set "${tag}br" up
# addns NAME LAST-OCTET: a namespace with eth0 on the bridge
addns() {
  local ns=$tag-$1
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "${tag}$1" type veth peer name eth0 netns "$ns"
  ip link set "${tag}$1" master "${tag}br" up
  ip -n "$ns" addr add "$net.$2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}
addns gw1 11; addns gw2 12; addns gw3 13; addns be 21; addns pl 31

openssl rand -hex 16 > "$work/password" 2>/dev/null || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/password"
chmod 600 "$work/password"
ulimit -n 20000

echo "== etcd"
"$ETCD" --name=netns --data-dir="$work/etcd" --listen-client-urls="http://$net.1:2379" \
  --advertise-client-urls="http://$net.1:2379" --listen-peer-urls=http://127.0.0.1:0 \
  --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=netns=http://127.0.0.1:2380 \
  > "$work/etcd.log" 2>&1 &
pids+=($!)
waitlog "$work/etcd.log" "ready to serve client requests" 20

# gateway N: fastway in namespace gwN on $net.1N
gateway() {
  mkdir -p "$work/gw$1"
  (cd "$work/gw$1" && exec ip netns exec "$tag-gw$1" "$work/fastway" -ClientAddr="$net.1$1:4000" -ServerAddr="$net.1$1:4001" \
    -AdminAddr="$net.1$1:6060" -ServerAuthPasswordFile="$work/password" -Etcd="http://$net.1:2379" -EtcdPrefix=/netns \
    -EtcdLeaseTTL=2s -EtcdDrainWait=1s -GatewayID="gw$1" -PidFile= -ShutdownTimeout=5s) > "$work/gw$1.log" 2>&1 &
  pids+=($!)
  eval "gw$1=$!"
}
echo "== gateways gw1, gw2; the backend"
gateway 1; gateway 2
waitlog "$work/gw1.log" 'msg="registered in etcd"' 20
waitlog "$work/gw2.log" 'msg="registered in etcd"' 20
ip netns exec "$tag-be" "$work/backend" -id=1 -etcd="http://$net.1:2379" -etcd-prefix=/netns -password-file="$work/password" \
  -stream-members="$PLAYERS" -stream-count="$COUNT" -stream-interval=2ms > "$work/backend.log" 2>&1 &
backend=$!
pids+=("$backend")
waitlog "$work/backend.log" 'attached to gateway" gateway=gw1' 20
waitlog "$work/backend.log" 'attached to gateway" gateway=gw2' 20

echo "== gw3 added: time from its registration to the backend's attach"
gateway 3
waitlog "$work/gw3.log" 'msg="registered in etcd"' 20
waitlog "$work/backend.log" 'attached to gateway" gateway=gw3' 20
attach_ms=$(python3 - "$work/gw3.log" "$work/backend.log" <<'PY'
import re, sys
from datetime import datetime
def t(path, pat):
    for line in open(path):
        if pat in line:
            return datetime.fromisoformat(re.search(r'time=(\S+)', line).group(1).replace('Z', '+00:00'))
reg = t(sys.argv[1], 'msg="registered in etcd"')
att = t(sys.argv[2], 'attached to gateway" gateway=gw3')
print(round((att - reg).total_seconds() * 1000, 1))
PY
)
echo "attach_ms=$attach_ms"

clients="$net.11:4000,$net.12:4000,$net.13:4000"
# always run in the background (bg, &): it execs, so its PID is the players process
players() { exec ip netns exec "$tag-pl" "$work/players" -gateways="$clients" -players="$PLAYERS" -id=1 -timeout=60s "$@"; }

# ticks PID...: the processes' CPU time (utime + stime), in clock ticks
ticks() { local n=0 p; for p in "$@"; do n=$((n + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $n; }
hz=$(getconf CLK_TCK)

echo "== echo, light: 3 players (one a gateway), one message in flight each, $ECHO_DUR"
bg "$work/echo-light.out" ip netns exec "$tag-pl" "$work/players" -gateways="$clients" -players=3 -id=1 -timeout=60s -mode=echo -dur="$ECHO_DUR" -size=64
grep -q "^total mode=echo players=3 failed=0 closed=0" "$work/echo-light.out" || fail "echo: players failed or closed"

echo "== echo, loaded: $PLAYERS players, one message in flight each, $ECHO_DUR"
t0=$(ticks "$gw1" "$gw2" "$gw3")
bg "$work/echo.out" players -mode=echo -dur="$ECHO_DUR" -size=64
t1=$(ticks "$gw1" "$gw2" "$gw3")
grep -q "^total mode=echo players=$PLAYERS failed=0 closed=0" "$work/echo.out" || fail "echo: players failed or closed"
gw_cpu_s=$(python3 -c "print(round(($t1 - $t0) / $hz, 2))")

echo "== stream: $COUNT fleet-wide Publishes to $PLAYERS players on three gateways"
t0=$(ticks "$gw1" "$gw2" "$gw3")
bg "$work/stream1.out" players -mode=stream -count="$COUNT"
t1=$(ticks "$gw1" "$gw2" "$gw3")
stream_cpu_s=$(python3 -c "print(round(($t1 - $t0) / $hz, 2))")
grep -q "^total mode=stream players=$PLAYERS failed=0 closed=0 count=$COUNT received=$((PLAYERS * COUNT)) lost_on_open=0" "$work/stream1.out" \
  || fail "stream: a player missed a message"

echo "== stream again; gw2 SIGKILLed 2 s in"
players -mode=stream -count="$COUNT" -ready="$work/stream2.ready" > "$work/stream2.out" &
pl=$!
pids+=("$pl")
end=$((SECONDS + 20)); until [ -e "$work/stream2.ready" ]; do [ $SECONDS -lt $end ] || fail "players did not connect"; sleep 0.05; done
sleep 2
kill -9 "$gw2"
killed_at=$(date +%s.%N)
wait "$gw2" 2>/dev/null || true
wait "$pl" || fail "players exited $?"
cat "$work/stream2.out"
for gw in "$net.11:4000" "$net.13:4000"; do
  n=$(grep "^gateway=$gw " "$work/stream2.out" | sed 's/.*players=\([0-9]*\).*/\1/')
  grep -q "^gateway=$gw mode=stream players=$n failed=0 closed=0 count=$COUNT received=$((n * COUNT)) lost_on_open=0" "$work/stream2.out" \
    || fail "stream with gw2 killed: a player on $gw lost messages"
done
grep -qE "^gateway=$net.12:4000 .* closed=[1-9]" "$work/stream2.out" || fail "gw2's players did not see their gateway go"
waitlog "$work/backend.log" 'left gateway" gateway=gw2' 10
dropped_s=$(python3 - "$work/backend.log" "$killed_at" <<'PY'
import re, sys
from datetime import datetime, timezone
for line in open(sys.argv[1]):
    if 'left gateway" gateway=gw2' in line:
        t = datetime.fromisoformat(re.search(r'time=(\S+)', line).group(1).replace('Z', '+00:00'))
        print(round(t.timestamp() - float(sys.argv[2]), 2)); break
PY
)

echo "== stop: SIGTERM the backend and the live gateways, each must exit 0"
kill -TERM "$backend"; wait "$backend" || fail "backend exited $?"
for g in "$gw1" "$gw3"; do kill -TERM "$g"; done
for g in "$gw1" "$gw3"; do wait "$g" || fail "a gateway exited $? after SIGTERM"; done

total() { grep "^total" "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
echo
echo "== figures"
echo "gw3 attached by the backend ${attach_ms} ms after its registration"
echo "echo, 3 players: $(total "$work/echo-light.out" rtt_per_s) round trips/s, p50 $(total "$work/echo-light.out" p50_us) µs, p99 $(total "$work/echo-light.out" p99_us) µs"
rtts=$(total "$work/echo.out" rtts)
echo "echo, $PLAYERS players: $(total "$work/echo.out" rtt_per_s) round trips/s, p50 $(total "$work/echo.out" p50_us) µs, p99 $(total "$work/echo.out" p99_us) µs, max $(total "$work/echo.out" max_us) µs; the gateways' CPU ${gw_cpu_s} s: $(python3 -c "print(round($rtts / $gw_cpu_s))") round trips per gateway CPU-s"
recv=$(total "$work/stream1.out" received)
echo "stream: $COUNT Publishes to $PLAYERS players on 3 gateways: $recv received, $(total "$work/stream1.out" lost_on_open) lost; the gateways' CPU ${stream_cpu_s} s: $(python3 -c "print(round($recv / max($stream_cpu_s, 0.01)))") deliveries per gateway CPU-s"
echo "stream with gw2 SIGKILLed 2 s in: players on gw1 and gw3 got $COUNT of $COUNT each (lost 0); gw2's $(grep "^gateway=$net.12:4000" "$work/stream2.out" | sed 's/.*closed=\([0-9]*\).*/\1/') players closed; gw2 left by the backend ${dropped_s} s after the kill (-EtcdLeaseTTL=2s)"
echo "PASS"
