#!/usr/bin/env bash
# measure-idle.sh: resident memory and CPU of an idle `wasso-runner run`.
#
#   runner/measure-idle.sh [WARMUP_SECONDS [WINDOW_SECONDS [RUN_FLAGS...]]]
#
# (defaults 60 60; RUN_FLAGS are passed to `wasso-runner run`, e.g. --no-http)
#
# Builds the binary, starts `wasso-runner run` (HTTP and River UI on, the
# periodic sweep every 5 minutes, nothing else to do), waits WARMUP seconds,
# then reads CPU ticks (utime+stime of /proc/PID/stat) across a WINDOW-second
# window and VmRSS/VmHWM from /proc/PID/status at its end.
#
# Database: WASSO_DATABASE_URL (or DATABASE_URL) if set, which must be
# migrated; otherwise a scratch schema on the local Postgres
# (postgres://postgres@127.0.0.1:5432/test), migrated here and dropped at exit.
set -euo pipefail

warmup=${1:-60}
window=${2:-60}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
bin=$work/wasso-runner
pid=""
schema=""
admin_url="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ -n "$schema" ]; then
		psql -q "$admin_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$here/.." && go build -trimpath -o "$bin" ./runner/cmd/wasso-runner)

args=()
if [ -z "${WASSO_DATABASE_URL:-}" ] && [ -z "${DATABASE_URL:-}" ]; then
	schema="wasso_idle_$$"
	psql -q "$admin_url" -c "CREATE SCHEMA $schema"
	export WASSO_DATABASE_URL="$admin_url&search_path=$schema"
	args+=(--schema "$schema")
	"$bin" migrate up --with-wasso-schema "${args[@]}" --log-level warn >/dev/null
fi

"$bin" run "${args[@]}" --http-addr 127.0.0.1:0 --log-level warn "$@" >"$work/run.log" 2>&1 &
pid=$!

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

sleep "$warmup"
kill -0 "$pid" || { echo "wasso-runner exited:"; cat "$work/run.log"; exit 1; }
t0=$(ticks); s0=$(date +%s.%N)
sleep "$window"
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads/{print $2}' "/proc/$pid/status")

awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" -v th="$threads" \
	-v warmup="$warmup" -v flags="$*" 'BEGIN {
	cpu = (t1 - t0) / hz
	wall = s1 - s0
	printf "idle wasso-runner run %s, after %ss warm-up, over %.1fs:\n", flags, warmup, wall
	printf "  RSS        %.1f MB (peak %.1f MB), %d threads\n", rss / 1024, hwm / 1024, th
	printf "  CPU        %.2fs = %.2f%% of one core\n", cpu, 100 * cpu / wall
}'
