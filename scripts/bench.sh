#!/usr/bin/env bash
# bench.sh runs the standard load suite of docs/benchmarks.md. It builds
# fastway and fastway-bench into a temporary directory and runs every case
# against a fresh gateway and against a fresh bare echo process
# (fastway-bench -listen), which is the box's physical limit measured in the
# same run; the latency case also runs through a bare relay in front of an
# echo process (fastway-bench -listen ADDR -relay ECHO), the floor of any two-hop
# proxy. The gateway also serves WebSocket (-ClientWSAddr), and the same
# echo cases and the idle case run over it (fastway-bench -ws) right next to
# the TCP runs they are compared with. Each pair of runs is repeated REPS times, the repetitions
# interleaved with the other cases', and every figure is the median of its
# runs: on a shared box single runs of the same binary differ by up to 2×.
# It prints the results, then rewrites the part of docs/benchmarks.md
# between the lines <!-- bench:start --> and <!-- bench:end --> with them.
#
#   scripts/bench.sh                                  the full suite (about 16 minutes; REPS=5: 25)
#   DUR=2 REPS=1 IDLE_CONNS=2000 scripts/bench.sh     a quick run
#   CASES="echo64 idle" BENCH_DOC= scripts/bench.sh  some cases only
#
# Environment:
#   DUR          seconds measured per run (default 6)
#   REPS         runs per case and target; figures are their medians (default 3)
#   WARMUP       seconds of load before each measurement (default 2)
#   IDLE_CONNS   client connections of the idle case (default 100000; lowered,
#                with a note, when RLIMIT_NOFILE cannot hold them)
#   WS_IDLE_CONNS WebSocket connections of the idle case over WebSocket (default
#                10000, at most IDLE_CONNS); when it differs from IDLE_CONNS a
#                TCP idle run at the same count is made beside it
#   CASES        the cases to run, out of: echo64 echo4k lat many churn fanout
#                idle (default: all of them; the others' figures are n/a)
#   MANY_CONNS   connections of the p99-versus-connection-count case (default 1000)
#   FANOUT_CONNS members of the fan-out cases (default 10000), spread over
#   FANOUT_PROCS receiver processes (default 2)
#   BENCH_DOC    the file to rewrite (default docs/benchmarks.md when every case
#                runs, else none; empty: print only)
#   GW_FLAGS     extra gateway flags for every case, split on white space (the
#                script reads the gateway's "listening" and "started" lines from
#                its default text log at info level: leave -LogLevel/-LogFormat alone)
#
# Exit status: 0 when every run finished without errors (targets missed are
# reported, not failed); 1 when a run failed; 2 for a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-6}
REPS=${REPS:-3}
WARMUP=${WARMUP:-2}
IDLE_CONNS=${IDLE_CONNS:-100000}
WS_IDLE_CONNS=${WS_IDLE_CONNS:-10000}
ALL_CASES="echo64 echo4k lat many churn fanout idle"
CASES=${CASES:-$ALL_CASES}
MANY_CONNS=${MANY_CONNS:-1000}
FANOUT_CONNS=${FANOUT_CONNS:-10000}
FANOUT_PROCS=${FANOUT_PROCS:-2}
if [[ $CASES == "$ALL_CASES" ]]; then
	BENCH_DOC=${BENCH_DOC-docs/benchmarks.md}
else
	BENCH_DOC=${BENCH_DOC-}
fi
GW_FLAGS=${GW_FLAGS:-}
KEY=bench
START_MARK='<!-- bench:start -->'
END_MARK='<!-- bench:end -->'

die() {
	echo "bench.sh: $*" >&2
	exit 2
}

fatal() {
	echo "bench.sh: $*" >&2
	exit 1
}

for v in DUR REPS WARMUP IDLE_CONNS WS_IDLE_CONNS MANY_CONNS FANOUT_CONNS FANOUT_PROCS; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || [[ $v == WARMUP && ${!v} =~ ^[0-9]+$ ]] ||
		die "$v=${!v}: need a whole number (WARMUP may be 0)"
done
for c in $CASES; do
	[[ " $ALL_CASES " == *" $c "* ]] || die "CASES: no case $c (the cases: $ALL_CASES)"
done
# selected CASE: whether CASE runs.
selected() { [[ " $CASES " == *" $1 "* ]]; }

# Client, gateway and echo process each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
idle_note=""
# The gateway also keeps 1,344 descriptors out of its clients' reach at its
# defaults (the derived -ClientMaxConns, docs/operations.md).
if [[ $nofile != unlimited ]] && ((IDLE_CONNS + 1500 > nofile)); then
	idle_note="IDLE_CONNS lowered from $IDLE_CONNS to $((nofile - 1500)): RLIMIT_NOFILE is $nofile here, and the gateway keeps 1,344 of them from its clients (raise the hard limit to run 100,000)."
	echo "bench.sh: $idle_note" >&2
	IDLE_CONNS=$((nofile - 1500))
fi
# The WebSocket idle case opens at most as many connections as the TCP one
# (the gateway holds them all in one process, so spreading the bench's side
# over processes does not lift the limit).
WS_IDLE_CONNS=$((WS_IDLE_CONNS < IDLE_CONNS ? WS_IDLE_CONNS : IDLE_CONNS))

tmp=$(mktemp -d)
TARGET_PID=""
BEHIND_PID="" # the echo process behind a relay
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	for pid in $TARGET_PID $BEHIND_PID; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building" >&2
go build -o "$tmp/fastway" ./cmd/fastway
go build -o "$tmp/fastway-bench" ./cmd/fastway-bench

# wait_log FILE PATTERN: wait up to 10 s for PATTERN in FILE while the
# target runs.
wait_log() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$TARGET_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench.sh: the target did not start; its log:" >&2
	tail -20 "$1" >&2
	exit 1
}

GW_BASE=(-ClientAddr=127.0.0.1:0 -ServerAddr=127.0.0.1:0 -ClientWSAddr=127.0.0.1:0 "-ServerAuthPassword=$KEY" -ClientMaxConn=64
	-PidFile="$tmp/fastway.pid" -CmdFile="$tmp/fastway.cmd")

# Each target logs to its own file: a file reused from the previous run
# could show its "listening" line before the new process truncates it.
nlog=0

# start_gateway [FLAG...]: a fresh gateway on free ports; sets TARGET_PID,
# CLIENT_ADDR, SERVER_ADDR and WS_ADDR.
start_gateway() {
	local log=$tmp/gateway.$((++nlog)).log
	# shellcheck disable=SC2086 # GW_FLAGS is split on purpose
	"$tmp/fastway" "${GW_BASE[@]}" "$@" $GW_FLAGS 2>"$log" &
	TARGET_PID=$!
	wait_log "$log" 'msg=started'
	CLIENT_ADDR=$(sed -n 's/.*msg=listening side=client addr=\([^ ]*\).*/\1/p' "$log" | head -1)
	SERVER_ADDR=$(sed -n 's/.*msg=listening side=server addr=\([^ ]*\).*/\1/p' "$log" | head -1)
	WS_ADDR=$(sed -n 's/.*msg=listening side=ws addr=\([^ ]*\).*/\1/p' "$log" | head -1)
	[[ -n $CLIENT_ADDR && -n $SERVER_ADDR && -n $WS_ADDR ]] || { tail -20 "$log" >&2; fatal "no listening addresses in the gateway's log"; }
}

# start_echo: a fresh bare echo process; sets TARGET_PID and CLIENT_ADDR.
start_echo() {
	local log=$tmp/echo.$((++nlog)).log
	"$tmp/fastway-bench" -listen 127.0.0.1:0 2>"$log" &
	TARGET_PID=$!
	wait_log "$log" 'listening on'
	CLIENT_ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" | head -1)
	[[ -n $CLIENT_ADDR ]] || { tail -20 "$log" >&2; fatal "no listening address in the echo process's log"; }
}

# start_fanbare: a fresh bare fan-out process; sets TARGET_PID and CLIENT_ADDR.
start_fanbare() {
	local log=$tmp/fanout.$((++nlog)).log
	"$tmp/fastway-bench" -listen 127.0.0.1:0 -fanout 2>"$log" &
	TARGET_PID=$!
	wait_log "$log" 'listening on'
	CLIENT_ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" | head -1)
	[[ -n $CLIENT_ADDR ]] || { tail -20 "$log" >&2; fatal "no listening address in the fan-out process's log"; }
}

# start_relay: a fresh bare echo process and a fresh relay in front of it;
# sets TARGET_PID (the relay's), BEHIND_PID and CLIENT_ADDR (the relay's).
start_relay() {
	start_echo
	BEHIND_PID=$TARGET_PID
	local echo_addr=$CLIENT_ADDR log=$tmp/relay.$((++nlog)).log
	"$tmp/fastway-bench" -listen 127.0.0.1:0 -relay "$echo_addr" 2>"$log" &
	TARGET_PID=$!
	wait_log "$log" 'listening on'
	CLIENT_ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$log" | head -1)
	[[ -n $CLIENT_ADDR ]] || { tail -20 "$log" >&2; fatal "no listening address in the relay's log"; }
}

stop_target() {
	for pid in $TARGET_PID $BEHIND_PID; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	TARGET_PID="" BEHIND_PID=""
}

declare -A LINE       # case.kind.rep -> summary line
declare -A SHOWN      # case.kind -> the command, for the doc
declare -a COMMANDS=() # what ran, for the doc (each case and target once)
declare -a LINES=()    # every summary line, in order
failed=0

# run NAME KIND REP BENCH_FLAG...: repetition REP of case NAME against KIND
# (gw, ws: the gateway over WebSocket, echo, relay or fanbare). A gateway
# also gets the flags in GW_EXTRA.
GW_EXTRA=()
run() {
	local name=$1 kind=$2 rep=$3
	shift 3
	local target shown
	case $kind in
	gw)
		start_gateway "${GW_EXTRA[@]}"
		target=(-client "$CLIENT_ADDR" -server "$SERVER_ADDR" -key "$KEY")
		shown="fastway ${GW_BASE[*]:0:5} ${GW_EXTRA[*]} $GW_FLAGS; fastway-bench -client \$CLIENT -server \$SERVER -key $KEY"
		;;
	ws)
		start_gateway "${GW_EXTRA[@]}"
		target=(-client "$WS_ADDR" -ws -server "$SERVER_ADDR" -key "$KEY")
		shown="fastway ${GW_BASE[*]:0:5} ${GW_EXTRA[*]} $GW_FLAGS; fastway-bench -client \$WS -ws -server \$SERVER -key $KEY"
		;;
	echo)
		start_echo
		target=(-client "$CLIENT_ADDR" -baseline)
		shown="fastway-bench -listen 127.0.0.1:0; fastway-bench -client \$ECHO -baseline"
		;;
	relay)
		start_relay
		target=(-client "$CLIENT_ADDR" -baseline)
		shown="fastway-bench -listen 127.0.0.1:0; fastway-bench -listen 127.0.0.1:0 -relay \$ECHO; fastway-bench -client \$RELAY -baseline"
		;;
	fanbare)
		start_fanbare
		target=(-client "$CLIENT_ADDR" -baseline)
		shown="fastway-bench -listen 127.0.0.1:0 -fanout; fastway-bench -client \$FANOUT -baseline"
		;;
	esac
	shown=${shown//  / }
	local args=(-gwpid "$TARGET_PID" -dur "${DUR}s" -warmup "${WARMUP}s" "$@")
	echo "== $name against $kind, run $rep of $REPS: ${args[*]:2}" >&2
	local line rc=0
	line=$("$tmp/fastway-bench" "${target[@]}" "${args[@]}") || rc=$?
	stop_target
	echo "$line" >&2
	if ((rc != 0)); then
		echo "bench.sh: $name against $kind failed (exit $rc)" >&2
		failed=1
	fi
	LINE[$name.$kind.$rep]=$line
	LINES+=("$line")
	if [[ -z ${SHOWN[$name.$kind]:-} ]]; then
		SHOWN[$name.$kind]=1
		COMMANDS+=("$shown -gwpid \$PID ${args[*]:2}")
	fi
}

# kv LINE KEY: the value of KEY in a summary line.
kv() {
	awk -v k="$2" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' <<<"$1"
}

# get CASE KIND KEY: the median of KEY over the case's runs against KIND
# (empty when no run has it).
get() {
	local rep v vals=()
	for ((rep = 1; rep <= REPS; rep++)); do
		v=$(kv "${LINE[$1.$2.$rep]:-}" "$3")
		[[ -n $v ]] && vals+=("$v")
	done
	((${#vals[@]} > 0)) || return 0
	printf '%s\n' "${vals[@]}" | sort -g | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (m >= 1000 || m == int(m)) printf "%d\n", m + 0.5; else printf "%.1f\n", m }'
}

# pairs CASE KIND KEY [BCASE BKIND BKEY]: for each repetition, KEY of the run
# of CASE against KIND divided by BKEY of the run of BCASE against BKIND
# (default: the same case and key against the bare echo), one per line.
# The two runs of a repetition ran back to back, under the same conditions.
pairs() {
	local rep a b
	for ((rep = 1; rep <= REPS; rep++)); do
		a=$(kv "${LINE[$1.$2.$rep]:-}" "$3")
		b=$(kv "${LINE[${4:-$1}.${5:-echo}.$rep]:-}" "${6:-$3}")
		ratio "$a" "$b"
	done
}

# median2: the median of the numbers read, one per line, with two decimals
# (n/a lines are left out; n/a when none is left).
median2() {
	sort -g | awk '$1 != "n/a" { v[++n] = $1 } END {
		if (n == 0) { print "n/a"; exit }
		printf "%.2f\n", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

# pratio ...: the median of pairs ... (n/a when no pair has both runs).
pratio() { pairs "$@" | median2; }

# spreads CASE KIND: each run's tail spread, p99 ÷ p50, one per line.
spreads() {
	local rep line
	for ((rep = 1; rep <= REPS; rep++)); do
		line=${LINE[$1.$2.$rep]:-}
		ratio "$(kv "$line" p99_us)" "$(kv "$line" p50_us)"
	done
}

# spread_growth KIND: for each repetition, the MANY case's tail spread ÷
# the 100-connection case's, one per line.
spread_growth() {
	paste -d' ' <(spreads many "$1") <(spreads echo64 "$1") |
		while read -r m e; do ratio "$m" "$e"; done
}

# all CASE KIND KEY: KEY of every run against KIND, slash-separated.
all() {
	local rep out=""
	for ((rep = 1; rep <= REPS; rep++)); do
		out+="${out:+ / }$(or_na "$(kv "${LINE[$1.$2.$rep]:-}" "$3")")"
	done
	echo "$out"
}

# ratio A B: A/B with two decimals, or n/a.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# meets VALUE OP LIMIT: yes, **no** or n/a.
meets() {
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (v == "" || v == "n/a") { print "n/a"; exit }
		ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
		print (ok ? "yes" : "**no**") }'
}

# or_na VALUE
or_na() { if [[ -n $1 ]]; then echo "$1"; else echo "n/a"; fi; }

load_before=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "?")
started=$(date -u '+%Y-%m-%d %H:%M UTC')

E64=(-mode echo -conns 100 -vconns 1 -k 8 -size 64)
E4K=(-mode echo -conns 100 -vconns 1 -k 8 -size 4096)
LAT=(-mode echo -conns 1 -vconns 1 -k 1 -size 64)
MANY=(-mode echo -conns "$MANY_CONNS" -vconns 1 -k 8 -size 64)
CHURN=(-mode churn -conns 10 -dials 8)
E10=(-mode echo -conns 10 -vconns 1 -k 8 -size 64)
IDLE=(-mode idle -conns "$IDLE_CONNS" -vconns 1 -interval 10s -srcips 16)
WSIDLE=(-mode idle -conns "$WS_IDLE_CONNS" -vconns 1 -interval 10s -srcips 16)
# Fan-out: B=16 messages per write, W=64 in flight (closed loop), and a
# paced run at 10 messages a second, one at a time.
FAN=(-conns "$FANOUT_CONNS" -procs "$FANOUT_PROCS" -size 64 -batch 16 -window 64)
FANLAT=(-conns "$FANOUT_CONNS" -procs "$FANOUT_PROCS" -size 64 -batch 1 -window 8 -rate 10)

# Each TCP gateway run sits between the WebSocket run and the bare echo run
# it is divided by, so both of its ratios come from runs made back to back.
for ((rep = 1; rep <= REPS; rep++)); do
	if selected echo64; then for kind in ws gw echo; do run echo64 "$kind" "$rep" "${E64[@]}"; done; fi
	if selected echo4k; then for kind in ws gw echo; do run echo4k "$kind" "$rep" "${E4K[@]}"; done; fi
	# The gateway's run between the two it is divided by.
	if selected lat; then for kind in ws echo gw relay; do run lat "$kind" "$rep" "${LAT[@]}"; done; fi
	if selected many; then for kind in gw echo; do run many "$kind" "$rep" "${MANY[@]}"; done; fi
	if selected churn; then
		run churn gw "$rep" "${CHURN[@]}"
		run echo10 echo "$rep" "${E10[@]}" # churn's denominator, right after it
		run churn echo "$rep" "${CHURN[@]}"
	fi
	if selected fanout; then
		# (a) Publish, (c) the bare fan-out process right after it, (b) unicast.
		run fanpub gw "$rep" -mode publish "${FAN[@]}"
		run fanpub fanbare "$rep" -mode publish "${FAN[@]}"
		run fanuni gw "$rep" -mode unicast "${FAN[@]}"
		run fanlat gw "$rep" -mode publish "${FANLAT[@]}"
		run fanlat fanbare "$rep" -mode publish "${FANLAT[@]}"
	fi
done
# Memory is not noisy: one run each.
if selected idle; then
	SAVED_REPS=$REPS REPS=1
	GW_EXTRA=(-ClientIdleTimeout=1h) # longer than the whole run, connecting included
	run idle gw 1 "${IDLE[@]}"
	run idlews ws 1 "${WSIDLE[@]}"
	# TCP at the WebSocket count, when the idle case's is another.
	if ((WS_IDLE_CONNS == IDLE_CONNS)); then
		LINE[idlews.gw.1]=${LINE[idle.gw.1]}
	else
		run idlews gw 1 "${WSIDLE[@]}"
	fi
	GW_EXTRA=()
	run idle echo 1 "${IDLE[@]}"
	REPS=$SAVED_REPS
fi

# The figures.
g64=$(or_na "$(get echo64 gw msgs_per_gw_cpu_s)")
e64=$(or_na "$(get echo64 echo msgs_per_gw_cpu_s)")
r64=$(pratio echo64 gw msgs_per_gw_cpu_s)
g4k=$(or_na "$(get echo4k gw msgs_per_gw_cpu_s)")
e4k=$(or_na "$(get echo4k echo msgs_per_gw_cpu_s)")
r4k=$(pratio echo4k gw msgs_per_gw_cpu_s)
glat=$(or_na "$(get lat gw p50_us)")
elat=$(or_na "$(get lat echo p50_us)")
rlat=$(pratio lat gw p50_us)
xlat=$(or_na "$(get lat relay p50_us)")
rxlat=$(pratio lat gw p50_us lat relay p50_us)
g99=$(or_na "$(get echo64 gw p99_us)")
e99=$(or_na "$(get echo64 echo p99_us)")
gm99=$(or_na "$(get many gw p99_us)")
em99=$(or_na "$(get many echo p99_us)")
gspread=$(spreads echo64 gw | median2)
espread=$(spreads echo64 echo | median2)
gmspread=$(spreads many gw | median2)
emspread=$(spreads many echo | median2)
gspread_grow=$(spread_growth gw | median2)
espread_grow=$(spread_growth echo | median2)
gch=$(or_na "$(get churn gw dials_per_gw_cpu_s)")
ech=$(or_na "$(get churn echo dials_per_gw_cpu_s)")
e10=$(or_na "$(get echo10 echo msgs_per_gw_cpu_s)")
rch=$(pratio churn gw dials_per_gw_cpu_s echo10 echo msgs_per_gw_cpu_s)
# Fan-out: (a) fanpub gw, (b) fanuni gw, (c) fanpub fanbare.
fa=$(or_na "$(get fanpub gw deliveries_per_gw_cpu_s)")
fc=$(or_na "$(get fanpub fanbare deliveries_per_gw_cpu_s)")
rfac=$(pratio fanpub gw deliveries_per_gw_cpu_s fanpub fanbare deliveries_per_gw_cpu_s)
fat=$(or_na "$(get fanpub gw total_cpu_ns_per_delivery)")
fbt=$(or_na "$(get fanuni gw total_cpu_ns_per_delivery)")
rfba=$(pratio fanuni gw total_cpu_ns_per_delivery fanpub gw total_cpu_ns_per_delivery)
fbd=$(or_na "$(get fanuni gw deliveries_per_gw_cpu_s)")
fas=$(or_na "$(get fanpub gw deliveries_per_s)")
fbs=$(or_na "$(get fanuni gw deliveries_per_s)")
fcs=$(or_na "$(get fanpub fanbare deliveries_per_s)")
fasv=$(or_na "$(get fanpub gw server_cpu_ns_per_delivery)")
fbsv=$(or_na "$(get fanuni gw server_cpu_ns_per_delivery)")
fcsv=$(or_na "$(get fanpub fanbare server_cpu_ns_per_delivery)")
faw=$(or_na "$(get fanpub gw deliveries_per_gw_write)")
fbw=$(or_na "$(get fanuni gw deliveries_per_gw_write)")
fcw=$(or_na "$(get fanpub fanbare deliveries_per_gw_write)")
fa99=$(or_na "$(get fanpub gw p99_us)")
fb99=$(or_na "$(get fanuni gw p99_us)")
fc99=$(or_na "$(get fanpub fanbare p99_us)")
fla50=$(or_na "$(get fanlat gw p50_us)")
flc50=$(or_na "$(get fanlat fanbare p50_us)")
fla99=$(or_na "$(get fanlat gw p99_us)")
flc99=$(or_na "$(get fanlat fanbare p99_us)")
gidle=$(or_na "$(get idle gw rss_per_conn_kib)")
eidle=$(or_na "$(get idle echo rss_per_conn_kib)")
ridle=$(ratio "$gidle" "$eidle")
# WebSocket ÷ TCP, through the same gateway.
w64=$(or_na "$(get echo64 ws msgs_per_gw_cpu_s)")
rw64=$(pratio echo64 ws msgs_per_gw_cpu_s echo64 gw msgs_per_gw_cpu_s)
w4k=$(or_na "$(get echo4k ws msgs_per_gw_cpu_s)")
rw4k=$(pratio echo4k ws msgs_per_gw_cpu_s echo4k gw msgs_per_gw_cpu_s)
wlat=$(or_na "$(get lat ws p50_us)")
rwlat=$(pratio lat ws p50_us lat gw p50_us)
w99=$(or_na "$(get echo64 ws p99_us)")
rw99=$(pratio echo64 ws p99_us echo64 gw p99_us)
widle=$(or_na "$(get idlews ws rss_per_conn_kib)")
wtidle=$(or_na "$(get idlews gw rss_per_conn_kib)")
rwidle=$(ratio "$widle" "$wtidle")

cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
section=$tmp/section.md
{
	echo "Run of $started by \`scripts/bench.sh\` (DUR=$DUR s measured per run after $WARMUP s"
	echo "of warm-up; REPS=$REPS; IDLE_CONNS=$IDLE_CONNS; WS_IDLE_CONNS=$WS_IDLE_CONNS). Box: ${cpu_model:-unknown CPU}, $(nproc) cores,"
	echo "$(uname -sr), $(go version | cut -d' ' -f3); load average $load_before at the start."
	echo "Every case ran $REPS times against a fresh gateway and a fresh bare echo process"
	echo "(\`fastway-bench -listen\`), the repetitions interleaved with the other cases',"
	echo "all on the same box as the load generator; each figure is the median of its"
	echo "runs (the idle case ran once). CPU-s is the target's own utime+stime over the"
	echo "measured window (/proc/PID/stat at USER_HZ 100), so per-CPU-second figures"
	echo "hold however the cores were shared."
	[[ -n $idle_note ]] && echo "Note: $idle_note"
	[[ $CASES != "$ALL_CASES" ]] && echo "Cases run: $CASES (the others' figures are n/a)."
	echo
	echo "| case | figure | gateway | bare echo | ratio | target | met |"
	echo "|---|---|---:|---:|---:|---|---|"
	echo "| echo 100 × 1, K=8, S=64 B | round trips per target CPU-s | $g64 | $e64 | $r64 | ≥ 0.5 | $(meets "$r64" '>=' 0.5) |"
	echo "| echo 100 × 1, K=8, S=4 KiB | round trips per target CPU-s | $g4k | $e4k | $r4k | ≥ 0.45 | $(meets "$r4k" '>=' 0.45) |"
	echo "| echo 1 × 1, K=1, S=64 B | p50 round trip, µs | $glat | $elat | $rlat | ≤ 1.2 | $(meets "$rlat" '<=' 1.2) |"
	echo "| echo 1 × 1, K=1, S=64 B | p50 round trip, µs, vs a bare relay + echo (two hops) | $glat | $xlat | $rxlat | report | — |"
	echo "| echo 100 × 1, K=8, S=64 B | p99 round trip, µs | $g99 | $e99 | $(ratio "$g99" "$e99") | report | — |"
	echo "| echo $MANY_CONNS × 1, K=8, S=64 B | p99 round trip, µs | $gm99 | $em99 | $(ratio "$gm99" "$em99") | report | — |"
	echo "| echo 100 × 1, K=8, S=64 B | tail spread p99 ÷ p50 | $gspread | $espread | — | report | — |"
	echo "| echo $MANY_CONNS × 1, K=8, S=64 B | tail spread p99 ÷ p50 | $gmspread | $emspread | — | report | — |"
	echo "| tail spread growth, $MANY_CONNS ÷ 100 conns | times | $gspread_grow | $espread_grow | — | gateway ≤ 1.2 | $(meets "$gspread_grow" '<=' 1.2) |"
	echo "| idle $IDLE_CONNS × 1 | RSS growth per connection, KiB | $gidle | $eidle | $ridle | gateway ≤ 6 | $(meets "$gidle" '<=' 6) |"
	echo "| churn 10 × 8 dials | dials per target CPU-s | $gch | $ech | $rch | ≥ 0.4 | $(meets "$rch" '>=' 0.4) |"
	echo
	echo "WebSocket (docs/protocol.md §8): the same gateway, its -ClientWSAddr port, the same"
	echo "cases with \`fastway-bench -ws\` (client frames masked, the frames a connection writes"
	echo "at once in one message), each run right before the TCP run it is divided by."
	echo
	echo "| case | figure | WebSocket | TCP | ratio | target | met |"
	echo "|---|---|---:|---:|---:|---|---|"
	echo "| echo 100 × 1, K=8, S=64 B | round trips per gateway CPU-s | $w64 | $g64 | $rw64 | ≥ 0.7 | $(meets "$rw64" '>=' 0.7) |"
	echo "| echo 100 × 1, K=8, S=4 KiB | round trips per gateway CPU-s | $w4k | $g4k | $rw4k | report | — |"
	echo "| echo 1 × 1, K=1, S=64 B | p50 round trip, µs | $wlat | $glat | $rwlat | report | — |"
	echo "| echo 100 × 1, K=8, S=64 B | p99 round trip, µs | $w99 | $g99 | $rw99 | report | — |"
	echo "| idle $WS_IDLE_CONNS × 1 | RSS growth per connection, KiB | $widle | $wtidle | $rwidle | WebSocket ≤ 8 | $(meets "$widle" '<=' 8) |"
	echo
	echo "Fan-out: one server sends each 64 B message to $FANOUT_CONNS client connections (one virtual"
	echo "connection each, spread over $FANOUT_PROCS receiver processes); (a) as one Publish to a group"
	echo "they joined, (b) as $FANOUT_CONNS unicast data frames, (c) through a bare fan-out process"
	echo "(\`fastway-bench -listen ADDR -fanout\`) that reads the same Publishes and writes the same"
	echo "frames, one write per socket per batch. The publisher writes 16 messages at a time and"
	echo "keeps at most 64 in flight (closed loop); the paced rows send 10 messages a second, one"
	echo "at a time. Latency: from the publisher's write to the last member's receipt."
	echo
	echo "| case | figure | (a) Publish | (b) unicast | (c) bare | ratio | target | met |"
	echo "|---|---|---:|---:|---:|---:|---|---|"
	echo "| fan-out, closed loop | deliveries per target CPU-s | $fa | $fbd | $fc | (a) ÷ (c) $rfac | ≥ 0.8 | $(meets "$rfac" '>=' 0.8) |"
	echo "| fan-out, closed loop | deliveries per gateway CPU-s, (a) | $fa | | | | ≥ 3,000,000 | $(meets "$fa" '>=' 3000000) |"
	echo "| fan-out, closed loop | gateway + server CPU per delivery, ns | $fat | $fbt | | (b) ÷ (a) $rfba | ≥ 3 | $(meets "$rfba" '>=' 3) |"
	echo "| fan-out, closed loop | deliveries per second | $fas | $fbs | $fcs | | report | — |"
	echo "| fan-out, closed loop | server CPU per delivery, ns | $fasv | $fbsv | $fcsv | | report | — |"
	echo "| fan-out, closed loop | deliveries per write syscall of the target | $faw | $fbw | $fcw | | report | — |"
	echo "| fan-out, closed loop | p99 Publish → last member, µs | $fa99 | $fb99 | $fc99 | | report | — |"
	echo "| fan-out, 10 messages/s | p50 / p99 Publish → last member, µs | $fla50 / $fla99 | | $flc50 / $flc99 | | report | — |"
	echo
	echo "Ratios are gateway ÷ bare echo, except churn: gateway dials per CPU-s ÷ the"
	echo "bare echo's round trips per CPU-s in an echo run of 10 × 1, K=8, S=64 B"
	echo "(median $e10), and the relay row: gateway ÷ the bare relay. A ratio is the"
	echo "median of the $REPS repetitions' own ratios, each of two runs made back to"
	echo "back (so under the same conditions); the figures beside it are the medians"
	echo "of the runs, and need not divide to it. Echo runs are closed"
	echo "loops (every connection keeps K messages in flight), so at saturation the"
	echo "latency of every message grows with the messages in flight ($MANY_CONNS ÷ 100"
	echo "times as many at $MANY_CONNS connections), on either target, by Little's law;"
	echo "what the connection count must not change is the shape of the tail, p99 ÷ p50."
	echo "The spread rows are the medians of each run's own p99 ÷ p50, the growth row"
	echo "the median of each repetition's $MANY_CONNS ÷ 100 ratio of them."
	echo
	echo "Each run's figures (gateway, then bare echo):"
	echo
	echo "| case | figure | gateway runs | bare echo runs |"
	echo "|---|---|---|---|"
	echo "| echo 100 × 1, 64 B | round trips per target CPU-s | $(all echo64 gw msgs_per_gw_cpu_s) | $(all echo64 echo msgs_per_gw_cpu_s) |"
	echo "| echo 100 × 1, 4 KiB | round trips per target CPU-s | $(all echo4k gw msgs_per_gw_cpu_s) | $(all echo4k echo msgs_per_gw_cpu_s) |"
	echo "| echo 1 × 1, K=1 | p50 µs | $(all lat gw p50_us) | $(all lat echo p50_us) (relay: $(all lat relay p50_us)) |"
	echo "| echo 100 × 1, 64 B | p50 / p99 µs | $(all echo64 gw p50_us) // $(all echo64 gw p99_us) | $(all echo64 echo p50_us) // $(all echo64 echo p99_us) |"
	echo "| echo $MANY_CONNS × 1, 64 B | p50 / p99 µs | $(all many gw p50_us) // $(all many gw p99_us) | $(all many echo p50_us) // $(all many echo p99_us) |"
	echo "| churn 10 × 8 | dials per target CPU-s | $(all churn gw dials_per_gw_cpu_s) | echo 10 × 1: $(all echo10 echo msgs_per_gw_cpu_s) |"
	echo "| fan-out (a) Publish | deliveries per target CPU-s | $(all fanpub gw deliveries_per_gw_cpu_s) | (c) bare: $(all fanpub fanbare deliveries_per_gw_cpu_s) |"
	echo "| fan-out (b) unicast | gateway + server CPU per delivery, ns | $(all fanuni gw total_cpu_ns_per_delivery) | (a): $(all fanpub gw total_cpu_ns_per_delivery) |"
	echo "| WebSocket echo 100 × 1, 64 B | round trips per gateway CPU-s | $(all echo64 ws msgs_per_gw_cpu_s) | |"
	echo "| WebSocket echo 100 × 1, 4 KiB | round trips per gateway CPU-s | $(all echo4k ws msgs_per_gw_cpu_s) | |"
	echo "| WebSocket echo 1 × 1, K=1 | p50 µs | $(all lat ws p50_us) | |"
	echo
	echo "The repetitions' ratios: 64 B $(pairs echo64 gw msgs_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g');"
	echo "4 KiB $(pairs echo4k gw msgs_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g'); p50 $(pairs lat gw p50_us | paste -sd/ | sed 's|/| / |g')"
	echo "(vs relay $(pairs lat gw p50_us lat relay p50_us | paste -sd/ | sed 's|/| / |g')); churn $(pairs churn gw dials_per_gw_cpu_s echo10 echo msgs_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g');"
	echo "fan-out (a) ÷ (c) $(pairs fanpub gw deliveries_per_gw_cpu_s fanpub fanbare deliveries_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g'); (b) ÷ (a) CPU per delivery $(pairs fanuni gw total_cpu_ns_per_delivery fanpub gw total_cpu_ns_per_delivery | paste -sd/ | sed 's|/| / |g');"
	echo "WebSocket ÷ TCP 64 B $(pairs echo64 ws msgs_per_gw_cpu_s echo64 gw msgs_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g'); 4 KiB $(pairs echo4k ws msgs_per_gw_cpu_s echo4k gw msgs_per_gw_cpu_s | paste -sd/ | sed 's|/| / |g');"
	echo "p50 $(pairs lat ws p50_us lat gw p50_us | paste -sd/ | sed 's|/| / |g')."
	echo
	echo "Commands, each case and target once (\$CLIENT, \$SERVER, \$WS, \$ECHO, \$RELAY, \$FANOUT: the free ports the targets logged; \$PID: the target's):"
	echo
	echo '```sh'
	printf '%s\n' "${COMMANDS[@]}"
	echo '```'
	echo
	echo "Every summary line, in the order they ran:"
	echo
	echo '```'
	printf '%s\n' "${LINES[@]}"
	echo '```'
} >"$section"

cat "$section"

if [[ -n $BENCH_DOC ]]; then
	if [[ $(grep -cxF "$START_MARK" "$BENCH_DOC" 2>/dev/null) == 1 && $(grep -cxF "$END_MARK" "$BENCH_DOC") == 1 ]] &&
		(($(grep -nxF "$START_MARK" "$BENCH_DOC" | cut -d: -f1) < $(grep -nxF "$END_MARK" "$BENCH_DOC" | cut -d: -f1))); then
		awk -v start="$START_MARK" -v end="$END_MARK" -v section="$section" '
			$0 == start { print; while ((getline l < section) > 0) print l; skip = 1; next }
			$0 == end { skip = 0 }
			!skip { print }' "$BENCH_DOC" >"$tmp/doc.md"
		cat "$tmp/doc.md" >"$BENCH_DOC"
		echo "bench.sh: rewrote the section of $BENCH_DOC" >&2
	else
		echo "bench.sh: $BENCH_DOC has no single '$START_MARK' ... '$END_MARK' pair; left unchanged" >&2
	fi
fi
exit "$failed"
