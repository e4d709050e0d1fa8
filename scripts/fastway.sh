#!/usr/bin/env bash
# fastway.sh runs the fastway gateway in the background with nohup and
# drives it through its pidfile and command file (docs/operations.md).
#
#   scripts/fastway.sh start [-Flag=value ...]  start it; flags add to $FASTWAY_FLAGS
#   scripts/fastway.sh stop                     SIGTERM, then wait for the exit
#   scripts/fastway.sh restart [-Flag=value ...]
#   scripts/fastway.sh status                   exit 0 running, 1 dead (stale pidfile), 3 stopped
#   scripts/fastway.sh cmd "lookup heap"        run an ops command (SIGUSR1), show its log lines
#
# Environment:
#   FASTWAY_BIN            the binary (default: ./fastway in FASTWAY_DIR, else fastway on PATH)
#   FASTWAY_DIR            working directory: pidfile, command file, profiles, log (default: .)
#   FASTWAY_FLAGS          flags for start, split on white space (no quoting), e.g.
#                          "-ClientAddr=:4000 -ServerAddr=:4001"
#   FASTWAY_AUTH_PASSWORD  the server password; fastway reads it itself when
#                          -ServerAuthPassword is not given, so it stays out of ps
#   FASTWAY_LOG            log file, relative to FASTWAY_DIR (default: log/fastway.log)
#   FASTWAY_PIDFILE        passed as -PidFile (default: fastway.pid); don't put -PidFile in FASTWAY_FLAGS
#   FASTWAY_CMDFILE        passed as -CmdFile (default: fastway.cmd)
#   FASTWAY_START_TIMEOUT  seconds start waits for the "started" log line (default: 10)
#   FASTWAY_STOP_TIMEOUT   seconds stop waits for the exit (default: 15; fastway's own
#                          graceful shutdown is bounded by -ShutdownTimeout, 10 s)
#   FASTWAY_CMD_TIMEOUT    seconds cmd waits for the command's result (default: 10)
set -euo pipefail

die() {
	echo "fastway.sh: $*" >&2
	exit 2
}

usage() {
	sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

FASTWAY_DIR=${FASTWAY_DIR:-.}
[[ -d $FASTWAY_DIR ]] || die "FASTWAY_DIR $FASTWAY_DIR is not a directory"
FASTWAY_DIR=$(cd "$FASTWAY_DIR" && pwd)

if [[ -n ${FASTWAY_BIN:-} ]]; then
	BIN=$FASTWAY_BIN
elif [[ -x $FASTWAY_DIR/fastway ]]; then
	BIN=$FASTWAY_DIR/fastway
else
	BIN=$(command -v fastway || true)
fi
# Make the binary's path absolute before changing directory.
if [[ -n $BIN && $BIN == */* && $BIN != /* ]]; then
	BIN=$PWD/$BIN
fi

LOG=${FASTWAY_LOG:-log/fastway.log}
PIDFILE=${FASTWAY_PIDFILE:-fastway.pid}
CMDFILE=${FASTWAY_CMDFILE:-fastway.cmd}
START_TIMEOUT=${FASTWAY_START_TIMEOUT:-10}
STOP_TIMEOUT=${FASTWAY_STOP_TIMEOUT:-15}
CMD_TIMEOUT=${FASTWAY_CMD_TIMEOUT:-10}
for t in "$START_TIMEOUT" "$STOP_TIMEOUT" "$CMD_TIMEOUT"; do
	[[ $t =~ ^[0-9]+$ ]] || die "timeouts are whole seconds, got $t"
done

cd "$FASTWAY_DIR"

pid=

# read_pid sets pid from the pidfile; it fails if there is none.
read_pid() {
	pid=
	[[ -f $PIDFILE ]] || return 1
	pid=$(tr -dc '0-9' <"$PIDFILE")
	[[ -n $pid ]]
}

# alive reports whether process $1 exists and, where /proc tells, runs
# the fastway binary (a PID reused by another program does not count).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [[ -r /proc/$1/comm && -n $BIN ]]; then
		local comm want
		comm=$(<"/proc/$1/comm")
		want=$(basename "$BIN")
		[[ $comm == "${want:0:15}" ]] || return 1
	fi
}

# running sets pid and reports whether fastway runs.
running() {
	read_pid && alive "$pid"
}

log_size() {
	if [[ -f $LOG ]]; then
		wc -c <"$LOG" | tr -d ' '
	else
		echo 0
	fi
}

# new_lines prints the log from byte offset $1 on.
new_lines() {
	[[ -f $LOG ]] || return 0
	tail -c +"$(($1 + 1))" "$LOG"
}

start() {
	if running; then
		echo "fastway is already running (pid $pid)"
		return 1
	fi
	[[ -n $BIN && -x $BIN ]] || die "no fastway binary: set FASTWAY_BIN (looked in $FASTWAY_DIR and on PATH)"
	mkdir -p "$(dirname "$LOG")"
	local flags=() offset child i out
	read -r -a flags <<<"${FASTWAY_FLAGS:-}"
	offset=$(log_size)
	nohup "$BIN" -PidFile="$PIDFILE" -CmdFile="$CMDFILE" "${flags[@]}" "$@" >>"$LOG" 2>&1 </dev/null &
	child=$!
	for ((i = 0; i < START_TIMEOUT * 10; i++)); do
		out=$(new_lines "$offset")
		if grep -q 'msg=started' <<<"$out"; then
			echo "fastway started (pid $child) in $FASTWAY_DIR, log $LOG"
			grep 'msg=listening' <<<"$out" || true
			return 0
		fi
		if ! kill -0 "$child" 2>/dev/null; then
			echo "fastway failed to start:" >&2
			printf '%s\n' "$out" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "fastway (pid $child) has not logged 'started' within ${START_TIMEOUT}s; see $LOG" >&2
	return 1
}

stop() {
	if ! read_pid; then
		echo "fastway is not running (no $PIDFILE)"
		return 0
	fi
	if ! alive "$pid"; then
		echo "fastway is not running (stale $PIDFILE names pid $pid; removed)"
		rm -f "$PIDFILE"
		return 0
	fi
	kill -TERM "$pid"
	local i
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		if ! alive "$pid"; then
			echo "fastway stopped (pid $pid)"
			return 0
		fi
		sleep 0.1
	done
	echo "fastway (pid $pid) is still running ${STOP_TIMEOUT}s after SIGTERM; kill -KILL $pid forces it" >&2
	return 1
}

status() {
	if ! read_pid; then
		echo "fastway is stopped"
		return 3
	fi
	if ! alive "$pid"; then
		echo "fastway is dead: $PIDFILE names pid $pid, which does not run fastway"
		return 1
	fi
	echo "fastway is running (pid $pid) in $FASTWAY_DIR"
}

# send_cmd writes the command file, signals fastway and prints the log
# lines that follow until the command's result; for a multi-line result
# (help) it also prints the result unescaped.
send_cmd() {
	[[ $# -ge 1 && -n $* ]] || usage
	if ! running; then
		echo "fastway is not running" >&2
		return 3
	fi
	local offset i out result
	offset=$(log_size)
	# fastway reads only a regular file of its own user that group and
	# others cannot write, with one link, never through a symbolic link:
	# write a fresh one.
	rm -f "$CMDFILE"
	(umask 022 && printf '%s\n' "$*" >"$CMDFILE")
	kill -USR1 "$pid"
	for ((i = 0; i < CMD_TIMEOUT * 10; i++)); do
		out=$(new_lines "$offset")
		if grep -q 'msg="fastway: cmd: command done"' <<<"$out"; then
			printf '%s\n' "$out"
			result=$(sed -n 's/.*msg="fastway: cmd: command done".* result="\(.*\)"$/\1/p' <<<"$out" | tail -n 1)
			if [[ $result == *'\n'* ]]; then
				result=${result//\\n/$'\n'}
				printf '\n%s\n' "${result//\\\"/\"}"
			fi
			return 0
		fi
		if grep -q 'msg="fastway: cmd: command failed"' <<<"$out"; then
			printf '%s\n' "$out" >&2
			return 1
		fi
		sleep 0.1
	done
	printf '%s\n' "$out" >&2
	echo "no result for \"$*\" within ${CMD_TIMEOUT}s; see $LOG" >&2
	return 1
}

[[ $# -ge 1 ]] || usage
action=$1
shift
case $action in
start) start "$@" ;;
stop) stop ;;
restart)
	stop
	start "$@"
	;;
status) status ;;
cmd) send_cmd "$@" ;;
*) usage ;;
esac
