#!/usr/bin/env bash
# Soak test: builds the fastway binary and cmd/fastway-soak, then runs a
# steady load through the real binary on loopback and checks that every
# message came back and the gateway counted no disconnect (see
# docs/reliability.md). Bounded: the load stops after DUR, and the whole run
# gives up 3 minutes after that.
#
#   scripts/soak.sh                      # 10 minutes, 100 clients x 10 vconns x 5 msg/s
#   DUR=60s CLIENTS=50 VCONNS=4 RATE=20 scripts/soak.sh
#
# Environment (defaults in brackets): DUR [10m], CLIENTS [100], VCONNS [10],
# SERVERS [4], RATE [5] messages/s per virtual connection, SIZE [64] bytes,
# REPORT [1m] between progress lines. Exit status 0 means PASS.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10m}
CLIENTS=${CLIENTS:-100}
VCONNS=${VCONNS:-10}
SERVERS=${SERVERS:-4}
RATE=${RATE:-5}
SIZE=${SIZE:-64}
REPORT=${REPORT:-1m}

work=$(mktemp -d "${TMPDIR:-/tmp}/fastway-soak.XXXXXX")
trap 'rm -rf "$work"' EXIT
go build -o "$work/fastway" ./cmd/fastway
go build -o "$work/fastway-soak" ./cmd/fastway-soak

# fastway-soak bounds itself: DUR plus 3 minutes for setup and drain, then
# it kills the gateway and fails.
mkdir -p "$work/gw"
"$work/fastway-soak" \
  -bin "$work/fastway" -dir "$work/gw" -dur "$DUR" -clients "$CLIENTS" -vconns "$VCONNS" \
  -servers "$SERVERS" -rate "$RATE" -size "$SIZE" -report "$REPORT"
