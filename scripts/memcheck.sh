#!/usr/bin/env bash
# Memory check: builds the fastway binary and cmd/fastway-soak, then runs
# fastway-soak -mode flood for each buffer pool: a client flooding 16 KiB
# frames to a server reading at 20 MiB/s, the same with the server stalled
# for 3 s, and a server sending 512 KiB frames to a client that does not
# read. Each scenario passes when the gateway's RSS stays within a bound
# derived from its flags (printed) and comes back to baseline + 20 MiB
# within 60 s of the load's end, with nothing lost (see docs/reliability.md).
#
#   scripts/memcheck.sh                        # sync, atom and chan pools
#   POOLS=atom DUR=3s scripts/memcheck.sh
#   scripts/memcheck.sh -ServerSendQueueBytes=1M   # flags for the binary
#
# Environment (defaults in brackets): POOLS ["sync atom chan"], DUR [7s]
# of flood, STALL [3s], SETTLE [60s] allowed for RSS to come back. Arguments
# go to the fastway binary. Bounded: each scenario gives up 3 minutes past
# DUR + STALL + SETTLE. Exit status 0 means every pool passed.
set -euo pipefail
cd "$(dirname "$0")/.."

POOLS=${POOLS:-sync atom chan}
DUR=${DUR:-7s}
STALL=${STALL:-3s}
SETTLE=${SETTLE:-60s}

work=$(mktemp -d "${TMPDIR:-/tmp}/fastway-memcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/fastway" ./cmd/fastway
go build -o "$work/fastway-soak" ./cmd/fastway-soak

status=0
for pool in $POOLS; do
  echo "== pool $pool"
  mkdir -p "$work/$pool"
  if ! "$work/fastway-soak" -mode flood -bin "$work/fastway" -dir "$work/$pool" -pool "$pool" \
    -dur "$DUR" -stall "$STALL" -settle "$SETTLE" -- "$@" | tee "$work/$pool.out"; then
    status=1
  fi
  echo
done

echo "== figures, every pool (RSS in MiB; back: from the load's end to RSS <= baseline + 20 MiB, within $SETTLE)"
first=1
for pool in $POOLS; do
  if [ $first = 1 ]; then
    grep -m1 -E "^pool +scenario " "$work/$pool.out" || true
    first=0
  fi
  grep -E "^$pool +(slow-server|stall|slow-client) " "$work/$pool.out" || echo "$pool: no figures (see above)"
done
grep -h -m1 '^bound: ' "$work"/*.out | head -1 || true
if [ $status = 0 ]; then echo "PASS"; else echo "FAIL"; fi
exit $status
