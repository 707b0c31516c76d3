#!/usr/bin/env bash
# CPU profiles of Caddy under bench/run.sh's load, for the memory store (B)
# and the Redis store (C), through Caddy's admin endpoint
# (/debug/pprof/profile):
#
#   bench/profile.sh OUTDIR [CADDY_BIN] [SECONDS]
#
# Starts the upstream, a redis-server and the two Caddy processes on fixed
# loopback ports (17091-17096), 10,000 sessions in each, and for each
# scenario (SCENARIOS, default "write read": as run.sh's write and read)
# and config runs wrk -t1 -c16 for SECONDS+1 (15+1) while the profile is
# taken. Writes OUTDIR/<scenario>-<config>.pprof, the wrk output beside it,
# and summary.txt (wrk's result line and Caddy's CPU per request). Pinned
# as run.sh pins: Caddy on CPU 1, the rest on CPU 0. Read a profile with
#   go tool pprof -top -cum CADDY_BIN OUTDIR/write-C.pprof
# and divide a function's seconds by the requests served in the window.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [CADDY_BIN] [SECONDS]" >&2; exit 2; }
OUT=$(realpath -m "$1")
BIN=
[ -n "${2:-}" ] && BIN=$(realpath -m "$2")
SECS=${3:-15}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
BIN=${BIN:-./caddy}
W=$(mktemp -d "${TMPDIR:-/tmp}/caddy-session-profile.XXXXXX")
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
go build -o "$W/upstream" ./bench/upstream
go build -o "$W/mksessions" ./bench/mksessions
taskset -c 0 "$W/upstream" -addr 127.0.0.1:17091 >"$W/up.log" 2>&1 &
PIDS+=($!)
taskset -c 0 redis-server --port 17092 --bind 127.0.0.1 --save '' --appendonly no --protected-mode no --dir "$W" >"$W/redis.log" 2>&1 &
PIDS+=($!)
sleep 1
declare -A PORT=([B]=17093 [C]=17095) ADMIN=([B]=17094 [C]=17096) PID
for c in B C; do
	if [ $c = B ]; then sess='	session'; else sess=$'\tsession {\n\t\tscope bench\n\t\tstore redis {\n\t\t\taddress redis://127.0.0.1:17092/0\n\t\t}\n\t}'; fi
	cat >"$W/Caddyfile.$c" <<EOF
{
	admin 127.0.0.1:${ADMIN[$c]}
	persist_config off
	auto_https off
	grace_period 1s
}

http://:${PORT[$c]} {
	bind 127.0.0.1
$sess
	reverse_proxy 127.0.0.1:17091
}
EOF
	XDG_DATA_HOME=$W/home-$c XDG_CONFIG_HOME=$W/home-$c taskset -c 1 "$BIN" run --adapter caddyfile --config "$W/Caddyfile.$c" >"$W/caddy-$c.log" 2>&1 &
	PIDS+=($!)
	PID[$c]=$!
done
sleep 2
for c in B C; do
	taskset -c 0 "$W/mksessions" -url "http://127.0.0.1:${PORT[$c]}/login" -n 1 >"$W/known-$c"
	taskset -c 0 "$W/mksessions" -url "http://127.0.0.1:${PORT[$c]}/login" -n 10000 -c 16 >"$W/write-$c"
done
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
for scen in ${SCENARIOS:-write read}; do
	for c in B C; do
		args=() path=/ cookies=
		if [ $scen = read ]; then args=(-H "Cookie: session=$(cat "$W/known-$c")"); else path=/write cookies=$W/write-$c; fi
		t0=$(ticks "${PID[$c]}")
		curl -s -o "$OUT/$scen-$c.pprof" "http://127.0.0.1:${ADMIN[$c]}/debug/pprof/profile?seconds=$SECS" &
		cp=$!
		BENCH_COOKIES=$cookies taskset -c 0 wrk -t1 -c16 -d$((SECS + 1))s --timeout 2s -s bench/bench.lua "${args[@]}" "http://127.0.0.1:${PORT[$c]}$path" >"$OUT/$scen-$c.wrk" 2>&1
		wait $cp
		t1=$(ticks "${PID[$c]}")
		req=$(sed -nE 's/^BENCH .*requests=([0-9]+).*/\1/p' "$OUT/$scen-$c.wrk")
		echo "$scen $c $(grep '^BENCH' "$OUT/$scen-$c.wrk") cpu_us_per_req=$(awk -v t=$((t1 - t0)) -v r="$req" 'BEGIN{printf "%.1f", t*1e4/r}')" | tee -a "$OUT/summary.txt"
	done
done
