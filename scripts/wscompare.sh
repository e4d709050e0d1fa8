#!/usr/bin/env bash
# wscompare.sh runs the WebSocket library comparison of docs/benchmarks.md
# ("WebSocket libraries"): an echo server per library (bench/wscompare, a
# module of its own: -lib fastway is the gateway's transport, gobwas/ws
# with internal/ws; -lib gorilla and -lib coder the other two), each loaded
# by the same WebSocket client (fastway-bench -ws -baseline) with the cases
# of the standard suite: 100 connections x K=8 x 64 B and 4 KiB round
# trips per server CPU-second, the K=1 latency, and RSS per idle
# connection. The libraries' runs are interleaved, REPS times; figures are
# medians. It prints the results and rewrites the part of
# docs/benchmarks.md between <!-- wscompare:start --> and
# <!-- wscompare:end --> with them.
#
#   scripts/wscompare.sh                          the whole comparison (about 6 minutes)
#   DUR=2 REPS=1 IDLE_CONNS=2000 BENCH_DOC= scripts/wscompare.sh   a quick look
#
# Environment:
#   DUR         seconds measured per run (default 5)
#   REPS        runs per case and library (default 5)
#   WARMUP      seconds of load before each measurement (default 2)
#   IDLE_CONNS  connections of the idle case (default 10000)
#   LIBS        the libraries, in order (default "fastway gorilla coder")
#   BENCH_DOC   the file to rewrite (default docs/benchmarks.md; empty: print only)
#
# Exit status: 0 when every run finished without errors; 1 when one failed;
# 2 for a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-5}
REPS=${REPS:-5}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
LIBS=${LIBS:-fastway gorilla coder}
BENCH_DOC=${BENCH_DOC-docs/benchmarks.md}
START_MARK='<!-- wscompare:start -->'
END_MARK='<!-- wscompare:end -->'

for v in DUR REPS WARMUP IDLE_CONNS; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || [[ $v == WARMUP && ${!v} =~ ^[0-9]+$ ]] || {
		echo "wscompare.sh: $v=${!v}: need a whole number" >&2
		exit 2
	}
done
for lib in $LIBS; do
	[[ $lib == fastway || $lib == gorilla || $lib == coder ]] || {
		echo "wscompare.sh: LIBS: no library $lib (fastway, gorilla, coder)" >&2
		exit 2
	}
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && ((IDLE_CONNS + 500 > nofile)); then
	echo "wscompare.sh: IDLE_CONNS=$IDLE_CONNS does not fit in RLIMIT_NOFILE $nofile" >&2
	exit 2
fi

tmp=$(mktemp -d)
TARGET_PID=""
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	[[ -n $TARGET_PID ]] && kill -KILL "$TARGET_PID" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building" >&2
go build -o "$tmp/fastway-bench" ./cmd/fastway-bench
(cd bench/wscompare && go build -o "$tmp/wscompare" .)

declare -A LINE
declare -a LINES=()
failed=0

# run CASE LIB REP FLAG...: one run of CASE against a fresh server of LIB.
run() {
	local name=$1 lib=$2 rep=$3
	shift 3
	local log=$tmp/$lib.$name.$rep.log addr="" i line rc=0
	: >"$log"
	"$tmp/wscompare" -lib "$lib" -listen 127.0.0.1:0 2>"$log" &
	TARGET_PID=$!
	for ((i = 0; i < 100; i++)); do
		addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" 2>/dev/null || true)
		[[ -n $addr ]] && break
		sleep 0.1
	done
	[[ -n $addr ]] || { cat "$log" >&2; echo "wscompare.sh: $lib did not start" >&2; exit 1; }
	echo "== $name against $lib, run $rep: $*" >&2
	line=$("$tmp/fastway-bench" -client "$addr" -ws -baseline -gwpid "$TARGET_PID" -dur "${DUR}s" -warmup "${WARMUP}s" "$@") || rc=$?
	kill -TERM "$TARGET_PID" 2>/dev/null || true
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=""
	echo "$line" >&2
	if ((rc != 0)); then
		echo "wscompare.sh: $name against $lib failed (exit $rc)" >&2
		failed=1
	fi
	LINE[$name.$lib.$rep]=$line
	LINES+=("$lib: $line")
}

kv() {
	awk -v k="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' <<<"$1"
}

# vals CASE LIB KEY: KEY of every run, one per line.
vals() {
	local rep v
	for ((rep = 1; rep <= REPS; rep++)); do
		v=$(kv "${LINE[$1.$2.$rep]:-}" "$3")
		[[ -n $v ]] && echo "$v"
	done
	return 0
}

# med CASE LIB KEY: the median of KEY over the runs (n/a when none).
med() {
	vals "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (m >= 1000) printf "%d\n", m + 0.5; else printf "%.1f\n", m }'
}

# range CASE LIB KEY: the lowest and highest run, "lo–hi".
range() {
	vals "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%s–%s\n", lo, hi; else print "n/a" }'
}

# rel CASE LIB KEY: the median of LIB's runs ÷ fastway's, repetition by
# repetition (each pair ran close together).
rel() {
	local rep a b
	for ((rep = 1; rep <= REPS; rep++)); do
		a=$(kv "${LINE[$1.$2.$rep]:-}" "$3")
		b=$(kv "${LINE[$1.fastway.$rep]:-}" "$3")
		[[ -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { if (b + 0 != 0) printf "%.2f\n", a / b }'
	done | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

load_before=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
started=$(date -u '+%Y-%m-%d %H:%M UTC')

E64=(-mode echo -conns 100 -vconns 1 -k 8 -size 64)
E4K=(-mode echo -conns 100 -vconns 1 -k 8 -size 4096)
LAT=(-mode echo -conns 1 -vconns 1 -k 1 -size 64)
IDLE=(-mode idle -conns "$IDLE_CONNS" -vconns 1 -interval 10s -srcips 16)

for ((rep = 1; rep <= REPS; rep++)); do
	for lib in $LIBS; do run echo64 "$lib" "$rep" "${E64[@]}"; done
	for lib in $LIBS; do run echo4k "$lib" "$rep" "${E4K[@]}"; done
	for lib in $LIBS; do run lat "$lib" "$rep" "${LAT[@]}"; done
done
SAVED_REPS=$REPS REPS=1
for lib in $LIBS; do run idle "$lib" 1 "${IDLE[@]}"; done
REPS=$SAVED_REPS

cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
section=$tmp/section.md
{
	echo "Run of $started by \`scripts/wscompare.sh\` (DUR=$DUR s measured per run after $WARMUP s"
	echo "of warm-up; REPS=$REPS; IDLE_CONNS=$IDLE_CONNS). Box: ${cpu_model:-unknown CPU}, $(nproc) cores,"
	echo "$(uname -sr), $(go version | cut -d' ' -f3); load average $load_before at the start."
	echo "Each figure is the median of the runs (the idle case ran once per library), the"
	echo "lowest and highest run beside it; \"vs fastway\" is the median of each repetition's"
	echo "ratio to the fastway server's run of the same repetition."
	echo
	echo "| case | figure | library | median | runs (lowest–highest) | vs fastway |"
	echo "|---|---|---|---:|---|---:|"
	for lib in $LIBS; do
		echo "| echo 100 × 1, K=8, S=64 B | round trips per server CPU-s | $lib | $(med echo64 "$lib" msgs_per_gw_cpu_s) | $(range echo64 "$lib" msgs_per_gw_cpu_s) | $(rel echo64 "$lib" msgs_per_gw_cpu_s) |"
	done
	for lib in $LIBS; do
		echo "| echo 100 × 1, K=8, S=4 KiB | round trips per server CPU-s | $lib | $(med echo4k "$lib" msgs_per_gw_cpu_s) | $(range echo4k "$lib" msgs_per_gw_cpu_s) | $(rel echo4k "$lib" msgs_per_gw_cpu_s) |"
	done
	for lib in $LIBS; do
		echo "| echo 1 × 1, K=1, S=64 B | p50 round trip, µs | $lib | $(med lat "$lib" p50_us) | $(range lat "$lib" p50_us) | $(rel lat "$lib" p50_us) |"
	done
	for lib in $LIBS; do
		echo "| idle $IDLE_CONNS × 1 | RSS growth per connection, KiB | $lib | $(REPS=1 med idle "$lib" rss_per_conn_kib) | | $(REPS=1 rel idle "$lib" rss_per_conn_kib) |"
	done
	echo
	echo "Every summary line, in the order they ran:"
	echo
	echo '```'
	printf '%s\n' "${LINES[@]}"
	echo '```'
} >"$section"

cat "$section"

if [[ -n $BENCH_DOC ]]; then
	if [[ $(grep -cxF "$START_MARK" "$BENCH_DOC" 2>/dev/null) == 1 && $(grep -cxF "$END_MARK" "$BENCH_DOC") == 1 ]]; then
		awk -v start="$START_MARK" -v end="$END_MARK" -v section="$section" '
			$0 == start { print; while ((getline l < section) > 0) print l; skip = 1; next }
			$0 == end { skip = 0 }
			!skip { print }' "$BENCH_DOC" >"$tmp/doc.md"
		cat "$tmp/doc.md" >"$BENCH_DOC"
		echo "wscompare.sh: rewrote the section of $BENCH_DOC" >&2
	else
		echo "wscompare.sh: $BENCH_DOC has no single '$START_MARK' ... '$END_MARK' pair; left unchanged" >&2
	fi
fi
exit "$failed"
