#!/usr/bin/env bash
# Runs every fuzz target in the module (found with go test -list '^Fuzz'),
# one after another, for FUZZTIME each, and exits non-zero if any of them
# finds a failing input (Go writes it to the package's testdata/fuzz/<target>/,
# where plain `go test`, and so .ci/run, replays it from then on).
#
#   FUZZTIME=10m           how long each target runs (go's -fuzztime: 30s, 1h, 5000x)
#   FUZZPARALLEL=          fuzzing workers per target (empty: GOMAXPROCS)
#   FUZZMINIMIZETIME=10s   how long each new input is minimized (go's default, 60s,
#                          spends most of a slow target's time minimizing)
#   scripts/fuzz.sh [REGEXP]   only the targets whose name matches REGEXP
#
# Short runs of every seed corpus happen anyway in `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10m}
minimize=${FUZZMINIMIZETIME:-10s}
filter=${1:-.}
parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then
  parallel=(-parallel "$FUZZPARALLEL")
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT

ran=0
failed=()
for pkg in $(go list ./...); do
  # -list compiles the package's tests and names its fuzz targets.
  if ! list=$(go test -list '^Fuzz' "$pkg" 2>&1); then
    echo "FAILED: listing the fuzz targets of $pkg:"
    echo "$list"
    failed+=("$pkg (go test -list)")
    continue
  fi
  targets=$(grep '^Fuzz' <<<"$list" | grep -E -- "$filter" || true)
  for target in $targets; do
    ran=$((ran + 1))
    log="$logdir/$ran.log"
    echo "== $pkg $target ($fuzztime)"
    status=0
    # -timeout 0: the default 10 minutes would end a long -fuzztime.
    go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" \
      -fuzzminimizetime "$minimize" "${parallel[@]}" -timeout 0 >"$log" 2>&1 || status=$?
    # The last progress line has the execs and the corpus size.
    grep -E '^fuzz: elapsed: .*execs' "$log" | tail -n 1 || true
    if [ "$status" -ne 0 ]; then
      failed+=("$pkg $target")
      echo "FAILED: $pkg $target (exit $status):"
      # From the first failure on: the message, and the input it wrote.
      sed -n '/^--- FAIL\|^failure while\|^panic:\|hung or terminated/,$p' "$log" | head -n 60
      grep -E 'Failing input written to' "$log" || true
    fi
  done
done

echo "== $ran fuzz targets run, ${#failed[@]} failed"
if [ "$ran" -eq 0 ]; then
  echo "no fuzz targets found" >&2
  exit 1
fi
for f in "${failed[@]}"; do
  echo "failed: $f"
done
[ "${#failed[@]}" -eq 0 ]
