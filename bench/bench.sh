#!/usr/bin/env bash
# vprobe against bpftrace, side by side in one run, on this machine (issue 17's
# goals in the last column):
#
#   startup   launch → attached (vprobe: its JSON `start` line, printed once
#             every probe is attached; bpftrace: its `Attaching N probes...`,
#             printed just before it attaches, so bpftrace is flattered)
#   peak RSS  VmHWM of the tracer process, polled until it exits
#   shutdown  SIGINT → the process has exited (final output written)
#             for three jobs: a bare count of one tracepoint (skb:kfree_skb),
#             five probes counted, and a count of kfree_skb keyed by reason,
#             after a first run on this kernel filled vprobe's relocation
#             cache; and the five as that first run (`cold`: BTF parsed)
#   cost      per counted drop of the keyed job: in-kernel run_time_ns/run_cnt
#             of each tool's programs (kernel.bpf_stats_enabled=1), and the
#             extra wall time per drop of a generator making a fixed number
#   flood     a UDP flood to a closed port in a namespace while two CPU hogs
#             run: vprobe's on_event callback against bpftrace's printf, events
#             delivered per second, events lost, and for vprobe whether
#             delivered + lost equals the datagrams sent (each is one drop)
#   tcp_rr    16 TCP_RR streams over veth between two namespaces, made by
#             `vprobe rr`/`vprobe serve` (netperf's TCP_RR semantics; netperf
#             is not used: it is not in Debian main). Transactions/s with no
#             tracer, with vprobe's on_event on dev.xmit, with bpftrace's printf
#             on net:net_dev_xmit, and with bpftrace's keyed count() there;
#             events delivered and lost, and for vprobe whether delivered +
#             lost equals the packets the two veths were handed (their
#             tx_packets + tx_dropped). Each tool runs one program.
#
# Medians of RUNS runs, the tools interleaved and alternating who goes first;
# the load average is printed before each series (the numbers mean little on a
# busy machine: re-run when it is idle).
#
# Not a test: it prints numbers. Needs root, bpftrace, bpftool, iproute2, a C
# compiler. Traffic stays in namespaces the script makes (and deletes), on
# documentation addresses (198.51.100.0/24); every loop and process is bounded
# in count and time.
#
# Usage: bench/bench.sh [RUNS]     (RUNS per measurement, default 5)
#   BENCH_DROPS=N        drops per cost generator run (default 300000)
#   BENCH_FLOOD=N        datagrams per flood run (default 1000000, at most 10 s)
#   BENCH_RR_SECS=S      seconds per TCP_RR run (default 5)
#   BENCH_ONLY=LIST      sections to run, of startup,cost,flood,rr (default all)
#   VPROBE_BIN=P         benchmark this vprobe binary instead of building one
set -euo pipefail
export LC_ALL=C

runs=${1:-5}
drops=${BENCH_DROPS:-300000}
flood=${BENCH_FLOOD:-1000000}
rr_secs=${BENCH_RR_SECS:-5}
only=${BENCH_ONLY:-startup,cost,flood,rr}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it loads BPF programs and makes network namespaces)"
for t in bpftrace bpftool ip timeout; do
	command -v "$t" >/dev/null || die "needs $t (apt-get install bpftrace bpftool iproute2 coreutils)"
done
cc=$(command -v cc || command -v clang) || die "needs a C compiler"
want() { [[ ,$only, == *,$1,* ]]; }

if [[ -n ${VPROBE_BIN:-} ]]; then
	vprobe=$VPROBE_BIN # an installed or prebuilt binary instead
else
	echo "building vprobe (release)..." >&2
	cargo build --release --locked -p vprobe --manifest-path "$root/Cargo.toml" >&2
	vprobe=$root/target/release/vprobe
fi

tmp=$(mktemp -d /tmp/vprobe-bench.XXXXXX)
ns=vpb-$$ srv=vpb-s-$$ cli=vpb-c-$$
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
tracer="" hogs=() server=""
cleanup() {
	if [[ -n $tracer ]] && kill -0 "$tracer" 2>/dev/null; then
		kill -KILL "$tracer" 2>/dev/null || true
	fi
	for p in "${hogs[@]}" $server; do kill -KILL "$p" 2>/dev/null || true; done
	echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
	ip netns del "$ns" 2>/dev/null || true
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$cc" -O2 -Wall -o "$tmp/udp_drops" "$here/udp_drops.c"
ip netns add "$ns"
ip -n "$ns" link set lo up

load() { cut -d' ' -f1-3 /proc/loadavg; }
series() { echo "  [$(date -u +%T)] load average before $1: $(load)" | tee -a "$tmp/loads" >&2; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m() { median <"$tmp/$1"; }

# The jobs, each as vprobe and as bpftrace.
vp_ready='"type":"start"'
bt_ready='Attaching '
declare -A vp bt
vp[bare]='probe("skb.drop").count("n");'
bt[bare]='tracepoint:skb:kfree_skb { @n = count(); }'
vp[five]='probe("skb.drop").count("a"); probe("tcp.retransmit").count("b"); probe("dev.xmit").count("c"); probe("dev.rx").count("d"); probe("qdisc.enqueue").count("e");'
bt[five]='tracepoint:skb:kfree_skb { @a = count(); } tracepoint:tcp:tcp_retransmit_skb { @b = count(); } tracepoint:net:net_dev_xmit { @c = count(); } tracepoint:net:netif_receive_skb { @d = count(); } tracepoint:qdisc:qdisc_enqueue { @e = count(); }'
vp[reason]='probe("skb.drop").count("drops", ["reason"]);'
bt[reason]='tracepoint:skb:kfree_skb { @drops[args->reason] = count(); }'
vp[cold]=${vp[five]}
bt[cold]=${bt[five]}
jobs=(bare five reason cold)

prog_ids() { bpftool prog show -j | { grep -o '"id":[0-9]*' || true; } | cut -d: -f2 | sort -n; }

# launch NAME READY CMD...: starts the tracer with stdout into $tmp/NAME.out,
# records launch→READY-line in ms into $tmp/NAME.startup, and polls its VmHWM
# into $tmp/NAME.hwm until it exits. Sets $tracer.
launch() {
	local name=$1 ready=$2
	shift 2
	rm -f "$tmp/$name".{out,err,startup,hwm,attached}
	local t0=$EPOCHREALTIME
	if [[ -n ${direct:-} ]]; then
		# events at full rate: stdout straight to a file (a shell loop reading
		# it would slow the tracer down); readiness found by polling the file.
		# The readiness file is renamed into place: read on a file created
		# but not yet written fails, and set -e ended the bench silently.
		"$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
		tracer=$!
		(
			for _ in $(seq 6000); do
				if grep -q -- "$ready" "$tmp/$name.out" 2>/dev/null; then
					echo "$t0 $EPOCHREALTIME" >"$tmp/$name.attached.tmp" && mv "$tmp/$name.attached.tmp" "$tmp/$name.attached"
					break
				fi
				sleep 0.01
			done
		) &
	else
		"$@" 2>"$tmp/$name.err" > >(
			while IFS= read -r line; do
				if [[ ! -e $tmp/$name.attached && $line == *"$ready"* ]]; then
					echo "$t0 $EPOCHREALTIME" >"$tmp/$name.attached.tmp" && mv "$tmp/$name.attached.tmp" "$tmp/$name.attached"
				fi
				printf '%s\n' "$line" >>"$tmp/$name.out"
			done
		) &
		tracer=$!
	fi
	(
		hwm=0
		while [[ -r /proc/$tracer/status ]]; do
			while read -r k v _; do
				[[ $k == VmHWM: ]] && hwm=$v
			done 2>/dev/null </proc/$tracer/status || true
			sleep 0.005
		done
		echo "$hwm" >"$tmp/$name.hwm"
	) &
	poller=$!
	local waited=0
	until [[ -e $tmp/$name.attached ]]; do
		kill -0 "$tracer" 2>/dev/null || die "$name exited before attaching: $(cat "$tmp/$name.err")"
		((waited++ < 6000)) || die "$name did not attach within 60 s"
		sleep 0.002
	done
	read -r a b <"$tmp/$name.attached"
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >"$tmp/$name.startup"
	# bpftrace prints its line before attaching: give both a moment to settle.
	sleep 0.3
}

# stop: SIGINT the tracer, wait (bounded) for it; SIGINT→exit in ms into
# $tmp/shutdown.last; then its VmHWM poller.
stop() {
	local t0=$EPOCHREALTIME
	if ! kill -INT "$tracer" 2>/dev/null; then
		# ended by itself before it was asked to: say why, and go on
		echo "bench: the tracer (pid $tracer) had already exited: $(tail -c 300 "$tmp"/*.err 2>/dev/null | tr '\n' ' ')" >&2
	fi
	local waited=0
	while kill -0 "$tracer" 2>/dev/null; do
		((waited++ < 20000)) || { kill -KILL "$tracer"; break; }
		sleep 0.0005
	done
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >"$tmp/shutdown.last"
	wait "$tracer" 2>/dev/null || true
	tracer=""
	wait "$poller" 2>/dev/null || true
}

# generate: the wall time (ns) of $drops drops in the namespace.
generate() {
	local sent ns_
	read -r sent ns_ < <(ip netns exec "$ns" "$tmp/udp_drops" "$drops" 30)
	[[ $sent == "$drops" ]] || die "generator sent $sent of $drops"
	echo "$ns_"
}

# prog_stats IDS...: total run_time_ns and run_cnt of those programs.
prog_stats() {
	local t=0 c=0 id j
	for id in "$@"; do
		# A program gone since (a feature probe) counts for nothing.
		j=$(bpftool prog show id "$id" -j 2>/dev/null) || continue
		t=$((t + $(grep -o '"run_time_ns":[0-9]*' <<<"$j" | cut -d: -f2 || echo 0)))
		c=$((c + $(grep -o '"run_cnt":[0-9]*' <<<"$j" | cut -d: -f2 || echo 0)))
	done
	echo "$t $c"
}

# quick TOOL JOB: one launch/stop of the job: startup, peak RSS, shutdown.
quick() {
	local tool=$1 job=$2
	if [[ $tool == vprobe && $job == cold ]]; then
		rm -rf "$tmp/cold-cache"
		VPROBE_CACHE_DIR=$tmp/cold-cache launch "$tool-$job" "$vp_ready" "$vprobe" -e "${vp[$job]}" --format json
	elif [[ $tool == vprobe ]]; then
		launch "$tool-$job" "$vp_ready" "$vprobe" -e "${vp[$job]}" --format json
	else
		launch "$tool-$job" "$bt_ready" bpftrace -e "${bt[$job]}"
	fi
	cat "$tmp/$tool-$job.startup" >>"$tmp/$tool-$job.startups"
	stop
	cat "$tmp/shutdown.last" >>"$tmp/$tool-$job.shutdowns"
	cat "$tmp/$tool-$job.hwm" >>"$tmp/$tool-$job.rss"
}

# cost NAME READY CMD...: in-kernel cost and generator wall time of one session.
cost() {
	local name=$1 ready=$2
	shift 2
	local before
	before=$(prog_ids)
	launch "$name" "$ready" "$@"
	local ids
	ids=$(comm -13 <(echo "$before") <(prog_ids) | tr '\n' ' ')
	[[ -n $ids ]] || die "$name loaded no program?"
	echo 0 >/proc/sys/kernel/bpf_stats_enabled
	generate >>"$tmp/$name.wall"
	echo 1 >/proc/sys/kernel/bpf_stats_enabled
	local t0 c0 t1 c1
	# shellcheck disable=SC2086
	read -r t0 c0 < <(prog_stats $ids)
	generate >/dev/null
	# shellcheck disable=SC2086
	read -r t1 c1 < <(prog_stats $ids)
	echo 0 >/proc/sys/kernel/bpf_stats_enabled
	((c1 > c0)) || die "$name's programs did not run"
	awk -v t=$((t1 - t0)) -v c=$((c1 - c0)) 'BEGIN { printf "%.1f\n", t / c }' >>"$tmp/$name.kns"
	stop
}

# Warm the page cache, and vprobe's relocation cache for this kernel
# (~/.cache/vprobe), once per job, unmeasured: the jobs below are what every
# run after the first on a kernel costs. The `cold` job is the first run: the
# five probes with an empty cache (VPROBE_CACHE_DIR), so the BTF is parsed.
for job in "${jobs[@]}"; do
	quick vprobe "$job"
	quick bpftrace "$job"
done
rm -f "$tmp"/*.startups "$tmp"/*.shutdowns "$tmp"/*.rss
echo 0 >/proc/sys/kernel/bpf_stats_enabled

if want startup; then
	for job in "${jobs[@]}"; do
		series "startup/RSS/shutdown, job $job"
		for i in $(seq "$runs"); do
			if ((i % 2)); then
				quick vprobe "$job"
				quick bpftrace "$job"
			else
				quick bpftrace "$job"
				quick vprobe "$job"
			fi
		done
	done
fi

if want cost; then
	series "in-kernel cost (keyed count, $drops drops per run)"
	for _ in 1 2; do generate >/dev/null; done
	for i in $(seq "$runs"); do
		generate >>"$tmp/none.wall"
		if ((i % 2)); then
			cost vprobe-cost "$vp_ready" "$vprobe" -e "${vp[reason]}" --format json
			cost bpftrace-cost "$bt_ready" bpftrace -e "${bt[reason]}"
		else
			cost bpftrace-cost "$bt_ready" bpftrace -e "${bt[reason]}"
			cost vprobe-cost "$vp_ready" "$vprobe" -e "${vp[reason]}" --format json
		fi
	done
	grep -q 'NO_SOCKET' "$tmp/vprobe-cost.out" || echo "warning: vprobe's summary has no NO_SOCKET entry" >&2
	grep -q '^@drops\[' "$tmp/bpftrace-cost.out" || echo "warning: bpftrace printed no @drops" >&2
fi

# hogs START|STOP: two busy loops, each bounded to 60 s.
hogs() {
	if [[ $1 == start ]]; then
		for _ in 1 2; do
			timeout 60 sh -c 'while :; do :; done' &
			hogs+=($!)
		done
	else
		for p in "${hogs[@]}"; do kill "$p" 2>/dev/null || true; done
		for p in "${hogs[@]}"; do wait "$p" 2>/dev/null || true; done
		hogs=()
	fi
}

# The flood's events: the drops of the generator's datagrams (reason NO_SOCKET)
# in the bench's namespace only (by its netns inode for vprobe; bpftrace has no
# netns in the tracepoint's arguments, so it filters by reason alone). One
# program, as bpftrace's: the check counts against the datagrams sent, each
# one such drop.
cat >"$tmp/flood.rhai" <<'EOF'
//! name: bench-flood
//! about: bench/bench.sh: count the flood's drops in the kernel and deliver each to a callback
//! param: netns=0  the flood's namespace inode
let netns = param("netns", 0);
let delivered = 0;
probe("skb.drop").filter("netns", netns).filter("reason", "NO_SOCKET").on_event(|e| { delivered += 1; });
on_end(|| report("delivered", delivered));
EOF
netns_ino=$(ip netns exec "$ns" stat -L -c %i /proc/self/ns/net)

# flood_run TOOL: one flood under TOOL with the hogs running; appends
# events/s, lost and (vprobe) the accounting check to $tmp/flood-TOOL.*
flood_run() {
	local tool=$1 sent ns_
	local direct=1
	if [[ $tool == vprobe ]]; then
		launch flood-vprobe "$vp_ready" "$vprobe" run "$tmp/flood.rhai" -p netns="$netns_ino" --format json
	else
		launch flood-bpftrace "$bt_ready" bpftrace -e \
			'tracepoint:skb:kfree_skb /args->reason == SKB_DROP_REASON_NO_SOCKET/ { printf("%d\n", args->protocol); }'
	fi
	hogs start
	read -r sent ns_ < <(ip netns exec "$ns" "$tmp/udp_drops" "$flood" 10)
	hogs stop
	sleep 0.5 # the reader drains what is left
	stop
	if [[ $tool == vprobe ]]; then
		local s
		s=$(grep '"type":"summary"' "$tmp/flood-vprobe.out")
		python3 - "$s" "$sent" "$ns_" >>"$tmp/flood-vprobe.rows" <<'EOF'
import json, sys
s = json.loads(sys.argv[1]); sent = int(sys.argv[2]); ns = int(sys.argv[3])
delivered = int(s["reports"]["delivered"])
lost = s["lost"]["events"] + s["lost"]["undelivered"] + s["lost"]["callback_errors"]
ok = "ok" if delivered + lost == sent else "MISMATCH"
print(round(delivered / (ns / 1e9)), lost, delivered, sent, ok, s.get("delivery", {}).get("ns_per_record", "-"))
EOF
	else
		local delivered lost
		delivered=$(grep -c '^[0-9]' "$tmp/flood-bpftrace.out" || true)
		lost=$({ cat "$tmp/flood-bpftrace.out" "$tmp/flood-bpftrace.err" | grep -o 'Lost [0-9]*' || true; } | awk '{ s += $2 } END { print s + 0 }')
		echo "$(awk -v d="$delivered" -v ns="$ns_" 'BEGIN { printf "%.0f", d / (ns / 1e9) }') $lost $delivered $sent -" >>"$tmp/flood-bpftrace.rows"
	fi
}

if want flood; then
	command -v python3 >/dev/null || die "needs python3 (reads vprobe's JSON summary)"
	series "UDP flood with two CPU hogs ($flood datagrams per run)"
	for i in $(seq "$runs"); do
		if ((i % 2)); then flood_run vprobe; flood_run bpftrace; else flood_run bpftrace; flood_run vprobe; fi
	done
fi

# TCP_RR: 16 streams of `vprobe rr` over a veth between two namespaces.
rr_run() { # TAG: one TCP_RR run; its tps into $tmp/rr-TAG.tps
	timeout $((rr_secs + 20)) ip netns exec "$cli" "$vprobe" rr 198.51.100.1:12866 \
		--streams 16 --duration "${rr_secs}s" --warmup 300ms --format json >"$tmp/rr.json" 2>"$tmp/rr.err" ||
		die "vprobe rr failed: $(cat "$tmp/rr.err"); the server: $(cat "$tmp/serve.out")"
	grep -o '"tps":[0-9.]*' "$tmp/rr.json" | head -1 | cut -d: -f2 >>"$tmp/rr-$1.tps"
}
# One program, as bpftrace's; the check counts against the kernel's own
# counters: every packet the two veths were handed (net_dev_xmit fires once per
# skb a driver takes) is in their tx_packets or tx_dropped.
cat >"$tmp/rr.rhai" <<'EOF'
//! name: bench-rr
//! about: bench/bench.sh: deliver every packet handed to a driver (as bpftrace's printf sees them) to a callback
//! param: netns=[]  the two namespaces (names)
let delivered = 0;
probe("dev.xmit").filter("netns", param("netns", [])).on_event(|e| { delivered += 1; });
on_end(|| report("delivered", delivered));
EOF
xmits() { # packets the bench's two veths were handed, both directions
	local n=0 v
	for v in "$srv:vpb-s" "$cli:vpb-c"; do
		n=$((n + $(ip netns exec "${v%%:*}" cat "/sys/class/net/${v#*:}/statistics/tx_packets") +
			$(ip netns exec "${v%%:*}" cat "/sys/class/net/${v#*:}/statistics/tx_dropped")))
	done
	echo "$n"
}
rr_traced() { # TOOL: a TCP_RR run under the tracer
	local tool=$1 direct=1
	case $tool in
	vprobe) launch rr-vprobe "$vp_ready" "$vprobe" run "$tmp/rr.rhai" -p "netns=[$srv, $cli]" --format json ;;
	bpftrace) launch rr-bpftrace "$bt_ready" bpftrace -e 'tracepoint:net:net_dev_xmit { printf("%d\n", args->len); }' ;;
	bpfcount) launch rr-bpfcount "$bt_ready" bpftrace -e 'tracepoint:net:net_dev_xmit { @c[args->len] = count(); }' ;;
	esac
	local x0 x1
	x0=$(xmits)
	rr_run "$tool"
	sleep 0.5
	x1=$(xmits)
	stop
	case $tool in
	vprobe)
		python3 - "$(grep '"type":"summary"' "$tmp/rr-vprobe.out")" "$((x1 - x0))" >>"$tmp/rr-vprobe.rows" <<'EOF'
import json, sys
s = json.loads(sys.argv[1]); xmits = int(sys.argv[2])
delivered = int(s["reports"]["delivered"])
lost = s["lost"]["events"] + s["lost"]["undelivered"] + s["lost"]["callback_errors"]
print(delivered, lost, xmits, "ok" if delivered + lost == xmits else "MISMATCH", s.get("delivery", {}).get("ns_per_record", "-"))
EOF
		;;
	bpftrace)
		local d l
		d=$(grep -c '^[0-9]' "$tmp/rr-bpftrace.out" || true)
		l=$({ cat "$tmp/rr-bpftrace.out" "$tmp/rr-bpftrace.err" | grep -o 'Lost [0-9]*' || true; } | awk '{ s += $2 } END { print s + 0 }')
		echo "$d $l - -" >>"$tmp/rr-bpftrace.rows"
		;;
	esac
}

if want rr; then
	command -v python3 >/dev/null || die "needs python3 (reads vprobe's JSON summary)"
	ip netns add "$srv"
	ip netns add "$cli"
	# no IPv6: its unsolicited packets (router solicitations, MLD reports)
	# would cross the check's window edges
	ip netns exec "$srv" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip netns exec "$cli" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip link add vpb-s netns "$srv" type veth peer name vpb-c netns "$cli"
	ip -n "$srv" addr add 198.51.100.1/24 dev vpb-s
	ip -n "$cli" addr add 198.51.100.2/24 dev vpb-c
	ip -n "$srv" link set vpb-s up
	ip -n "$cli" link set vpb-c up
	limit=$((runs * 4 * (rr_secs + 8) + 60))
	setsid ip netns exec "$srv" timeout "$limit" "$vprobe" serve --bind 198.51.100.1:12866 >"$tmp/serve.out" 2>&1 &
	server=$!
	for _ in $(seq 50); do grep -q listening "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
	grep -q listening "$tmp/serve.out" || die "vprobe serve did not start: $(cat "$tmp/serve.out")"
	series "TCP_RR, 16 streams (vprobe rr), ${rr_secs}s per run"
	for i in $(seq "$runs"); do
		order=(none vprobe bpftrace bpfcount)
		((i % 2)) || order=(bpfcount bpftrace vprobe none)
		for t in "${order[@]}"; do
			if [[ $t == none ]]; then rr_run none; else rr_traced "$t"; fi
		done
	done
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
fi

# ---- the report -------------------------------------------------------------
col() { awk -v c="$1" '{ print $c }' "$tmp/$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { printf '%-44s %12s %12s %8s   %s\n' "$@"; }

echo
echo "vprobe vs bpftrace, $runs runs each (medians), tools interleaved"
echo "kernel $(uname -r), $(nproc) CPUs, $(bpftrace --version 2>/dev/null), vprobe $(timeout 5 "$vprobe" --version 2>/dev/null | awk '{print $2}' || true)"
echo "load averages before each series:"
sed 's/^ *//; s/^/  /' "$tmp/loads"
echo
row "" vprobe bpftrace ratio goal
if want startup; then
	for job in "${jobs[@]}"; do
		a=$(m "vprobe-$job.startups") b=$(m "bpftrace-$job.startups")
		goal="<= 0.5"
		[[ $job == reason ]] && goal="<= 0.25"
		[[ $job == cold ]] && goal="(five, first run on a kernel: BTF parsed)"
		row "startup to attached, $job (ms)" "$a" "$b" "$(ratio "$a" "$b")" "$goal"
	done
	for job in "${jobs[@]}"; do
		a=$(m "vprobe-$job.rss") b=$(m "bpftrace-$job.rss")
		goal="<= 0.25"
		[[ $job == cold ]] && goal="(first run on a kernel)"
		row "peak RSS, $job (MiB)" "$(awk -v k="$a" 'BEGIN { printf "%.1f", k / 1024 }')" \
			"$(awk -v k="$b" 'BEGIN { printf "%.1f", k / 1024 }')" "$(ratio "$a" "$b")" "$goal"
	done
	for job in "${jobs[@]}"; do
		a=$(m "vprobe-$job.shutdowns") b=$(m "bpftrace-$job.shutdowns")
		row "shutdown, SIGINT to exit, $job (ms)" "$a" "$b" "$(ratio "$a" "$b")" "<= 0.25"
	done
fi
if want cost; then
	a=$(m vprobe-cost.kns) b=$(m bpftrace-cost.kns)
	row "in-kernel ns per event (keyed count)" "$a" "$b" "$(ratio "$a" "$b")" "<= 0.8"
	nw=$(m none.wall)
	a=$(awk -v t="$(m vprobe-cost.wall)" -v n="$nw" -v d="$drops" 'BEGIN { printf "%.1f", (t - n) / d }')
	b=$(awk -v t="$(m bpftrace-cost.wall)" -v n="$nw" -v d="$drops" 'BEGIN { printf "%.1f", (t - n) / d }')
	row "extra wall ns per drop (keyed count)" "$a" "$b" "$(ratio "$a" "$b")" "(no tracer: $(awk -v n="$nw" -v d="$drops" 'BEGIN { printf "%.0f", n / d }') ns/drop)"
fi
if want flood; then
	col 1 flood-vprobe.rows >"$tmp/fv.eps"
	col 1 flood-bpftrace.rows >"$tmp/fb.eps"
	col 2 flood-vprobe.rows >"$tmp/fv.lost"
	col 2 flood-bpftrace.rows >"$tmp/fb.lost"
	a=$(m fv.eps) b=$(m fb.eps)
	row "flood + 2 hogs: events/s delivered" "$(printf '%.0f' "$a")" "$(printf '%.0f' "$b")" "$(ratio "$a" "$b")" ">= 2"
	row "flood + 2 hogs: events lost (median)" "$(m fv.lost)" "$(m fb.lost)" "" "<= 1 % of the events"
	col 6 flood-vprobe.rows >"$tmp/fv.ns"
	row "flood + 2 hogs: user-space ns per event" "$(m fv.ns)" "" "" "(vprobe's summary: delivery.ns_per_record)"
	echo "  vprobe per run: events/s lost delivered sent check(delivered+lost = sent: one drop each) ns/event"
	sed 's/^/    /' "$tmp/flood-vprobe.rows"
	echo "  bpftrace per run: events/s lost delivered sent"
	sed 's/^/    /' "$tmp/flood-bpftrace.rows"
fi
if want rr; then
	n=$(m rr-none.tps) v=$(m rr-vprobe.tps) b=$(m rr-bpftrace.tps) c=$(m rr-bpfcount.tps)
	col 1 rr-vprobe.rows >"$tmp/rv.d"
	col 1 rr-bpftrace.rows >"$tmp/rb.d"
	col 2 rr-vprobe.rows >"$tmp/rv.l"
	col 2 rr-bpftrace.rows >"$tmp/rb.l"
	row "TCP_RR 16 streams: tps, no tracer" "$(printf '%.0f' "$n")" "" "" "(vprobe rr, not netperf)"
	row "TCP_RR tps under on_event / printf" "$(printf '%.0f' "$v")" "$(printf '%.0f' "$b")" "$(ratio "$v" "$b")" ""
	row "TCP_RR tps under on_event / count()" "$(printf '%.0f' "$v")" "$(printf '%.0f' "$c")" "$(ratio "$v" "$c")" ">= 1 (bpftrace's keyed count())"
	row "TCP_RR events delivered per run" "$(m rv.d)" "$(m rb.d)" "$(ratio "$(m rv.d)" "$(m rb.d)")" ">= 2"
	row "TCP_RR events lost per run" "$(m rv.l)" "$(m rb.l)" "" "<= 1 %"
	col 5 rr-vprobe.rows >"$tmp/rv.ns"
	row "TCP_RR: user-space ns per event" "$(m rv.ns)" "" "" "(vprobe's summary: delivery.ns_per_record)"
	echo "  vprobe per run: delivered lost xmits check(delivered+lost = the veths' tx_packets+tx_dropped) ns/event"
	sed 's/^/    /' "$tmp/rr-vprobe.rows"
fi
