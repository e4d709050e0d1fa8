#!/usr/bin/env bash
# snet under cuts at default settings: runs cmd/fastway's TestSnetCuts RUNS
# times. Each run streams MIB MiB each way (flow-controlled rounds of 512 KiB, at full speed within each) through
# the real gateway (default flags, -ClientSnetEnable, plain then
# -ClientSnetEncrypt) while a proxy cuts every TCP connection after about
# 200 ms, until it has cut at least 3 times; it passes if every byte arrives
# and no resume is refused. The script reports how many runs passed
# (docs/reliability.md, "snet under cuts"). Every run is bounded by the
# test's own 3-minute deadline.
#
#   scripts/snet-cuts.sh                 # 20 runs, 8 MiB rounds
#   RUNS=5 MIB=2 scripts/snet-cuts.sh
#   RACE=1 scripts/snet-cuts.sh          # the test process under -race
#   CONTROL=1 scripts/snet-cuts.sh       # no snet, no cuts: the gateway alone
#
# Environment (defaults in brackets): RUNS [20], MIB [8], RACE [0],
# CONTROL [0]. Exit status 0 means every run passed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
MIB=${MIB:-8}
RACE=${RACE:-0}
CONTROL=${CONTROL:-0}

work=$(mktemp -d "${TMPDIR:-/tmp}/fastway-snet-cuts.XXXXXX")
trap 'rm -rf "$work"' EXIT
flags=()
if [[ "$RACE" == 1 ]]; then
	flags+=(-race)
fi
# The test binary builds the gateway binary itself (internal/testbin), once
# per run.
go test -c "${flags[@]}" -o "$work/fastway.test" ./cmd/fastway

pass=0
for i in $(seq 1 "$RUNS"); do
	log="$work/run-$i.log"
	if (cd cmd/fastway && FASTWAY_SNET_CUTS_MIB="$MIB" FASTWAY_SNET_CUTS_CONTROL="$CONTROL" "$work/fastway.test" \
		-test.run '^TestSnetCuts$' -test.count=1 -test.v -test.timeout 10m) >"$log" 2>&1; then
		pass=$((pass + 1))
		result=PASS
	else
		result=FAIL
	fi
	# (grep finds nothing in a run that failed early: not an error here.)
	summary=$(grep -oE '2 × [0-9]+ × [0-9]+ MiB with [0-9]+ cuts in [0-9.]+m?s|max_replay_(out|in)=[0-9]+' "$log" | tr '\n' ' ' || true)
	echo "run $i: $result $summary"
	if [[ "$result" == FAIL ]]; then
		grep -E -- '--- FAIL|snetcuts_test.go' "$log" | head -20 || true
	fi
done
if [[ "$CONTROL" == 1 ]]; then
	echo "control: $pass of $RUNS runs passed ($MIB MiB each way in rounds of 512 KiB, plain TCP through the proxy, no cuts, default flags)"
else
	echo "snet cuts: $pass of $RUNS runs passed ($MIB MiB each way in rounds of 512 KiB, until 3 cuts, plain and encrypted, ~200 ms cuts, default flags)"
fi
[[ "$pass" == "$RUNS" ]]
