#!/usr/bin/env bash
# What a session costs at the edge, side by side with plain reverse_proxy.
#
#   bench/run.sh
#
# Builds ./caddy (./xcaddy.sh build) and a tiny upstream (bench/upstream),
# starts a redis-server on a free loopback port, and three Caddy processes:
#
#   A  reverse_proxy alone (the limit)
#   B  session (memory store) + reverse_proxy
#   C  session (redis store)  + reverse_proxy, Redis over TCP
#   D  session (redis store)  + reverse_proxy, the same Redis over its
#      unix socket, as a Redis on the same host can be reached
#
# and drives each with wrk in four scenarios:
#
#   read        a known session, unchanged
#   write       known sessions (10000); every response changes one key
#   hot         one session changed by 32 connections at once
#   cookieless  visitors without a cookie who never get data
#   many        100k distinct sessions, a random one per request
#
# The configurations alternate within each round (A B C, then B C A, C A B,
# ...) so that the machine's drift falls on all of them; the table shows the
# median of the rounds, each figure with its ratio to A in the same
# scenario.
#
# Caddy gets one core of its own (CADDY_CPUS); wrk, the upstream and Redis
# share another (LOAD_CPUS), so Caddy is the bottleneck and the ratios are
# Caddy's own. Without taskset, or with fewer than 2 cores, nothing is
# pinned.
#
# Besides wrk's requests/s and latency, it reads the CPU time each Caddy
# process used during the run (/proc/PID/stat) and reports it per request:
# that figure hardly moves when other programs compete for the machine,
# and says what the session costs where requests/s alone may be noise.
#
# Settings (environment): DURATION seconds per run (3), ROUNDS (5),
# CONNS wrk connections (16), THREADS wrk threads (1), SESSIONS for the
# many scenario (100000), WRITE_SESSIONS for the write scenario (10000),
# HOT_CONNS wrk connections of the hot scenario (32), BASE_CADDY another
# build run as config E, configured as B (to compare commits side by side),
# BASE_AS=C to configure E as C instead (the Redis store over TCP, on C's
# Redis and sessions: to compare the Redis store of two builds),
# WARMUP seconds per configuration (2), BASE_PORT where the search for
# free ports starts (18080), CADDY_CPUS (1), LOAD_CPUS (0), SKIP_BUILD=1
# to use an existing ./caddy.
#
# Needs Go; installs wrk and redis-server with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
SESSIONS=${SESSIONS:-100000}
WRITE_SESSIONS=${WRITE_SESSIONS:-10000}
HOT_CONNS=${HOT_CONNS:-32}
WARMUP=${WARMUP:-2}
BASE_PORT=${BASE_PORT:-18080}
CADDY_CPUS=${CADDY_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}

SCENARIOS=(read write hot cookieless many)
CONFIGS=(A B C D)
declare -A CONFIG_NAME=([A]="reverse_proxy" [B]="session memory" [C]="session redis" [D]="session redis unix" [E]="session memory, base")
# BASE_CADDY names another build (an earlier commit's, say): it runs as E,
# configured as B, so a regression shows beside B in the same run.
declare -A CADDY_BIN_OF=([A]=./caddy [B]=./caddy [C]=./caddy [D]=./caddy)
BASE_AS=${BASE_AS:-B}
case $BASE_AS in
B) ;;
C) CONFIG_NAME[E]="session redis, base" ;;
*)
	echo "BASE_AS=$BASE_AS: B or C" >&2
	exit 1
	;;
esac
if [ -n "${BASE_CADDY:-}" ]; then
	[ -x "$BASE_CADDY" ] || { echo "BASE_CADDY=$BASE_CADDY is not an executable" >&2; exit 1; }
	CONFIGS+=(E)
	CADDY_BIN_OF[E]=$BASE_CADDY
fi

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- what it needs beyond Go ---------------------------------------------
command -v go >/dev/null || die "Go is required (https://go.dev/dl/)"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
	sudo=()
	[ "$(id -u)" -ne 0 ] && sudo=(sudo)
	log "installing ${need[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- cleanup: everything started here is stopped on exit ------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/caddy-session-bench.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- CPU pinning ------------------------------------------------------------
PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	PIN_SERVER=(taskset -c "$CADDY_CPUS")
	PIN_LOAD=(taskset -c "$LOAD_CPUS")
	PINNING="caddy on CPU $CADDY_CPUS; wrk, upstream and redis-server on CPU $LOAD_CPUS"
else
	PINNING="not pinned"
fi

# --- build ------------------------------------------------------------------
if [ "${SKIP_BUILD:-}" = 1 ] && [ -x ./caddy ]; then
	log "using the existing ./caddy (SKIP_BUILD=1)"
else
	log "building ./caddy"
	./xcaddy.sh build >"$WORK/build.log" 2>&1 || {
		cat "$WORK/build.log" >&2
		die "./xcaddy.sh build failed"
	}
fi
./caddy list-modules 2>/dev/null | grep -q '^http.handlers.session$' || die "./caddy has no session module"
log "building bench/upstream and bench/mksessions"
go build -o "$WORK/upstream" ./bench/upstream
go build -o "$WORK/mksessions" ./bench/mksessions

# --- ports ------------------------------------------------------------------
next_port=$BASE_PORT
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port VAR sets VAR to a loopback port nobody listens on.
free_port() {
	while port_in_use "$next_port"; do
		next_port=$((next_port + 1))
	done
	printf -v "$1" '%d' "$next_port"
	next_port=$((next_port + 1))
}

# wait_port PORT PID LOG waits until PORT listens, or fails if PID died.
wait_port() {
	local i
	for i in $(seq 1 150); do
		port_in_use "$1" && return 0
		if ! kill -0 "$2" 2>/dev/null; then
			tail -n 30 "$3" >&2
			die "process $2 exited before listening on $1 (log above)"
		fi
		sleep 0.1
	done
	tail -n 30 "$3" >&2
	die "nothing listens on $1 after 15 s"
}

# --- the upstream and Redis ------------------------------------------------
free_port UPSTREAM_PORT
"${PIN_LOAD[@]}" "$WORK/upstream" -addr "127.0.0.1:$UPSTREAM_PORT" >"$WORK/upstream.log" 2>&1 &
PIDS+=($!)
wait_port "$UPSTREAM_PORT" "$!" "$WORK/upstream.log"

free_port REDIS_PORT
REDIS_SOCKET=$WORK/redis.sock
"${PIN_LOAD[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
	--unixsocket "$REDIS_SOCKET" --unixsocketperm 700 \
	--protected-mode no --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT" "$!" "$WORK/redis.log"

# --- Caddy, one process per configuration ----------------------------------
declare -A PORT CADDY_PID
session_of() {
	case $1 in
	A) ;;
	B) printf '\tsession\n' ;;
	# C and D listen on different ports and share one Redis: the same
	# scope lets D take the sessions started through C.
	C) printf '\tsession {\n\t\tscope bench\n\t\tstore redis {\n\t\t\taddress redis://127.0.0.1:%d/0\n\t\t}\n\t}\n' "$REDIS_PORT" ;;
	D) printf '\tsession {\n\t\tscope bench\n\t\tstore redis {\n\t\t\taddress unix://%s\n\t\t}\n\t}\n' "$REDIS_SOCKET" ;;
	E) if [ "$BASE_AS" = C ]; then session_of C; else printf '\tsession\n'; fi ;;
	esac
}
for c in "${CONFIGS[@]}"; do
	free_port "PORT[$c]"
	cat >"$WORK/Caddyfile.$c" <<-EOF
		{
			admin off
			persist_config off
			auto_https off
			grace_period 1s
		}

		http://:${PORT[$c]} {
			bind 127.0.0.1
		$(session_of "$c")
			reverse_proxy 127.0.0.1:$UPSTREAM_PORT
		}
	EOF
	mkdir -p "$WORK/home-$c"
	XDG_DATA_HOME="$WORK/home-$c" XDG_CONFIG_HOME="$WORK/home-$c" \
		"${PIN_SERVER[@]}" "${CADDY_BIN_OF[$c]}" run --adapter caddyfile --config "$WORK/Caddyfile.$c" \
		>"$WORK/caddy-$c.log" 2>&1 &
	PIDS+=($!)
	CADDY_PID[$c]=$!
	wait_port "${PORT[$c]}" "$!" "$WORK/caddy-$c.log"
	log "config $c (${CONFIG_NAME[$c]}) on 127.0.0.1:${PORT[$c]}"
done

# --- sessions -----------------------------------------------------------------
# Per session configuration: one known session for the read scenario,
# WRITE_SESSIONS for the write scenario (one session written by CONNS
# connections at once would measure contention on one key, not the write
# path), and SESSIONS for the many scenario. A, which keeps no sessions, is
# sent B's cookies: the same bytes. D shares C's Redis and prefix, so C's
# sessions are D's.
session_makers=(B C)
[ -n "${BASE_CADDY:-}" ] && [ "$BASE_AS" = B ] && session_makers+=(E)
for c in "${session_makers[@]}"; do
	log "starting 1 + $WRITE_SESSIONS + $SESSIONS sessions through config $c"
	url="http://127.0.0.1:${PORT[$c]}/login"
	"${PIN_LOAD[@]}" "$WORK/mksessions" -url "$url" -n 1 >"$WORK/known-$c"
	"${PIN_LOAD[@]}" "$WORK/mksessions" -url "$url" -n "$WRITE_SESSIONS" -c "$CONNS" >"$WORK/write-$c"
	"${PIN_LOAD[@]}" "$WORK/mksessions" -url "$url" -n "$SESSIONS" -c "$CONNS" >"$WORK/many-$c"
	[ "$(wc -l <"$WORK/many-$c")" -eq "$SESSIONS" ] || die "config $c: fewer than $SESSIONS sessions started"
done
for f in known write many; do
	cp "$WORK/$f-B" "$WORK/$f-A"
	cp "$WORK/$f-C" "$WORK/$f-D"
	if [ -n "${BASE_CADDY:-}" ] && [ "$BASE_AS" = C ]; then
		cp "$WORK/$f-C" "$WORK/$f-E"
	fi
done

# --- load ---------------------------------------------------------------------
# upstream_stats prints the upstream's "new=N known=N none=N", the
# X-Session-New values of the requests it got since the last call.
upstream_stats() {
	local reply
	exec 4<>"/dev/tcp/127.0.0.1/$UPSTREAM_PORT"
	printf 'GET /stats HTTP/1.0\r\nHost: upstream\r\n\r\n' >&4
	reply=$(cat <&4)
	exec 4<&- 4>&-
	grep -a -o 'new=[0-9]* known=[0-9]* none=[0-9]*' <<<"$reply"
}

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID prints the user and system time PID has used, in ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# bench CONFIG SCENARIO SECONDS prints "rps p50_us p99_us cpu_us_per_request",
# the last being the CPU time Caddy used per request. It fails unless
# the session configurations took the path the scenario measures: a known
# session for every request of read, write and many, a new one for every
# request of cookieless.
bench() {
	local c=$1 scenario=$2 secs=$3 path=/ cookies= args=() conns=$CONNS
	case $scenario in
	read) args=(-H "Cookie: session=$(cat "$WORK/known-$c")") ;;
	write)
		path=/write
		cookies="$WORK/write-$c"
		;;
	hot) # HOT_CONNS connections changing one session at once, as a
		# single-page app's parallel requests do
		path=/write
		conns=$HOT_CONNS
		args=(-H "Cookie: session=$(cat "$WORK/known-$c")")
		;;
	cookieless) ;;
	many) cookies="$WORK/many-$c" ;;
	esac
	upstream_stats >/dev/null
	local out ticks
	ticks=$(cpu_ticks "${CADDY_PID[$c]}")
	out=$(BENCH_COOKIES=$cookies timeout $((secs + 30)) "${PIN_LOAD[@]}" wrk -t"$THREADS" -c"$conns" -d"${secs}s" \
		--timeout 2s -s bench/bench.lua "${args[@]}" "http://127.0.0.1:${PORT[$c]}$path" 2>&1) ||
		die "wrk failed on config $c, $scenario: $out"
	local line stats
	line=$(grep '^BENCH ' <<<"$out") || die "no result from wrk on config $c, $scenario: $out"
	ticks=$(($(cpu_ticks "${CADDY_PID[$c]}") - ticks))
	stats=$(upstream_stats)
	local errors status new known
	errors=$(sed -E 's/.* errors=([0-9]+).*/\1/' <<<"$line")
	status=$(sed -E 's/.* status=([0-9]+).*/\1/' <<<"$line")
	if [ "$errors" != 0 ] || [ "$status" != 0 ]; then
		die "config $c, $scenario: $errors socket errors, $status responses not 2xx/3xx"
	fi
	new=$(sed -E 's/new=([0-9]+).*/\1/' <<<"$stats")
	known=$(sed -E 's/.*known=([0-9]+).*/\1/' <<<"$stats")
	if [ "$c" != A ]; then
		case $scenario in
		cookieless) [ "$known" = 0 ] && [ "$new" -gt 0 ] ;;
		*) [ "$new" = 0 ] && [ "$known" -gt 0 ] ;;
		esac || die "config $c, $scenario: the upstream saw $stats (X-Session-New values), not the path measured"
	fi
	sed -E 's/^BENCH rps=([0-9.]+) p50=([0-9]+) p99=([0-9]+) requests=([0-9]+).*/\1 \2 \3 \4/' <<<"$line" |
		awk -v t="$ticks" -v hz="$CLK_TCK" '{ printf "%s %s %s %.1f\n", $1, $2, $3, t * 1e6 / hz / $4 }'
}

log "warming up: ${WARMUP}s per configuration"
for c in "${CONFIGS[@]}"; do
	bench "$c" many "$WARMUP" >/dev/null
done

mkdir -p "$WORK/results"
total=$((ROUNDS * ${#SCENARIOS[@]} * ${#CONFIGS[@]}))
log "measuring: $ROUNDS rounds x ${#SCENARIOS[@]} scenarios x ${#CONFIGS[@]} configurations, ${DURATION}s each (about $((total * (DURATION + 1) / 60 + 1)) min)"
for round in $(seq 1 "$ROUNDS"); do
	# Each round starts one configuration further (A B C D, B C D A,
	# ...), so that none always runs first or after the same other.
	order=()
	for i in "${!CONFIGS[@]}"; do
		order+=("${CONFIGS[$(((i + round - 1) % ${#CONFIGS[@]}))]}")
	done
	for scenario in "${SCENARIOS[@]}"; do
		for c in "${order[@]}"; do
			r=$(bench "$c" "$scenario" "$DURATION")
			echo "$r" >>"$WORK/results/$scenario.$c"
			log "round $round  $scenario  $c (${CONFIG_NAME[$c]}): $r"
		done
	done
done

# Every Caddy must still be up: a crash would make a config look fast.
for pid in "${PIDS[@]}"; do
	kill -0 "$pid" 2>/dev/null || die "process $pid exited during the run"
done

# --- report -------------------------------------------------------------------
# median prints the median of the numbers on stdin.
median() {
	sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# column SCENARIO CONFIG N prints column N of every round.
column() { awk -v n="$3" '{ print $n }' "$WORK/results/$1.$2"; }
# paired SCENARIO CONFIG N [BASE] prints CONFIG's column N over BASE's (A),
# round by round.
paired() {
	local base=${4:-A}
	paste "$WORK/results/$1.$2" "$WORK/results/$1.$base" |
		awk -v n="$3" -v w="$(head -n1 "$WORK/results/$1.$base" | wc -w)" '{ printf "%.6f\n", $n / $(n + w) }'
}

declare -A MED
for scenario in "${SCENARIOS[@]}"; do
	for c in "${CONFIGS[@]}"; do
		for col in 1 2 3 4; do
			MED[$scenario.$c.$col]=$(column "$scenario" "$c" "$col" | median)
		done
	done
done

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "## caddy-session: bench/run.sh"
echo
echo "- $(date -u '+%Y-%m-%d %H:%M UTC'); $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout'); $(nproc) CPUs (${cpu_model:-unknown}); $(go version | awk '{print $3}'); Caddy $(./caddy version | awk '{print $1}'); $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }'); redis-server $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')"
echo "- wrk -t$THREADS -c$CONNS, ${DURATION}s per run, $ROUNDS rounds (${CONFIGS[*]} alternating, rotated each round), median of the rounds; $PINNING"
echo "- scenarios: read = 1 known session; write = $WRITE_SESSIONS known sessions, each response changes one key; hot = 1 session changed by $HOT_CONNS connections at once; cookieless; many = $SESSIONS known sessions, a random one per request"
echo "- ×A: the ratio to A (reverse_proxy alone) in the same scenario; CPU µs/req: the CPU time the Caddy process used per request"
echo
echo "| scenario | config | req/s | ×A | p50 ms | ×A | p99 ms | ×A | CPU µs/req | ×A |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for scenario in "${SCENARIOS[@]}"; do
	for c in "${CONFIGS[@]}"; do
		awk -v s="$scenario" -v c="$c ${CONFIG_NAME[$c]}" \
			-v r="${MED[$scenario.$c.1]}" -v p50="${MED[$scenario.$c.2]}" -v p99="${MED[$scenario.$c.3]}" -v cpu="${MED[$scenario.$c.4]}" \
			-v ra="${MED[$scenario.A.1]}" -v p50a="${MED[$scenario.A.2]}" -v p99a="${MED[$scenario.A.3]}" -v cpua="${MED[$scenario.A.4]}" \
			'BEGIN { printf "| %s | %s | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f |\n",
				s, c, r, r / ra, p50 / 1000, p50 / p50a, p99 / 1000, p99 / p99a, cpu, cpu / cpua }'
	done
done

echo
echo "Targets, as the ratio of the medians and, in brackets, the median of the ratios round by round:"
echo
# target NAME SCENARIO CONFIG COLUMN OP LIMIT [BASE]: CONFIG over BASE (A).
target() {
	local of_medians of_rounds base=${7:-A}
	of_medians=$(awk -v a="${MED[$2.$3.$4]}" -v b="${MED[$2.$base.$4]}" 'BEGIN { printf "%.6f", a / b }')
	of_rounds=$(paired "$2" "$3" "$4" "$base" | median)
	awk -v n="$1" -v v="$of_medians" -v p="$of_rounds" -v op="$5" -v l="$6" 'BEGIN {
		ok = (op == ">=") ? (v >= l) : (v <= l)
		printf "- %s: %.3f [%.3f] (target %s %s): %s\n", n, v, p, op, l, ok ? "met" : "MISSED" }'
}
target "read path, memory (B): req/s ×A" read B 1 ">=" 0.97
target "read path, memory (B): p99 ×A" read B 3 "<=" 1.05
target "write path, memory (B): req/s ×A" write B 1 ">=" 0.93
target "read path, Redis (C): req/s ×A" read C 1 ">=" 0.85
target "read path, Redis over its unix socket (D): req/s ×A" read D 1 ">=" 0.85
# Issue 13: the Redis store against the memory store.
target "read path, Redis (C) over memory (B): req/s" read C 1 ">=" 0.95 B
target "read path, Redis (C) over memory (B): CPU µs/req" read C 4 "<=" 1.053 B
target "read path, Redis (C) over memory (B): p99" read C 3 "<=" 1.1 B
target "write path ($WRITE_SESSIONS sessions), Redis (C) over memory (B): req/s" write C 1 ">=" 0.85 B
target "hot session ($HOT_CONNS writers), Redis (C) over memory (B): req/s" hot C 1 ">=" 0.85 B
if [ -n "${BASE_CADDY:-}" ] && [ "$BASE_AS" = C ]; then
	# This build's Redis store (C) against BASE_CADDY's (E), and E against
	# the memory store, as C's targets are.
	for s in read write hot cookieless many; do
		target "$s, Redis, this build (C) over BASE_CADDY (E): req/s" "$s" C 1 ">=" 0.97 E
		target "$s, Redis, this build (C) over BASE_CADDY (E): CPU µs/req" "$s" C 4 "<=" 1.03 E
	done
	target "read path, BASE_CADDY's Redis (E) over memory (B): req/s" read E 1 ">=" 0.95 B
	target "read path, BASE_CADDY's Redis (E) over memory (B): CPU µs/req" read E 4 "<=" 1.053 B
	target "read path, BASE_CADDY's Redis (E) over memory (B): p99" read E 3 "<=" 1.1 B
	target "write path ($WRITE_SESSIONS sessions), BASE_CADDY's Redis (E) over memory (B): req/s" write E 1 ">=" 0.85 B
	target "hot session ($HOT_CONNS writers), BASE_CADDY's Redis (E) over memory (B): req/s" hot E 1 ">=" 0.85 B
elif [ -n "${BASE_CADDY:-}" ]; then
	# No regression: this build's memory store (B) against BASE_CADDY's (E).
	for s in read write hot cookieless many; do
		target "$s, memory, this build (B) over BASE_CADDY (E): req/s" "$s" B 1 ">=" 0.97 E
		target "$s, memory, this build (B) over BASE_CADDY (E): CPU µs/req" "$s" B 4 "<=" 1.03 E
	done
fi

echo
echo "<details><summary>every run: req/s, p50 µs, p99 µs, CPU µs/req; rounds in order</summary>"
echo
for scenario in "${SCENARIOS[@]}"; do
	for c in "${CONFIGS[@]}"; do
		printf -- '- %s %s: %s\n' "$scenario" "$c" "$(paste -sd';' "$WORK/results/$scenario.$c" | sed 's/;/; /g')"
	done
done
echo
echo "</details>"
