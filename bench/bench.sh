#!/usr/bin/env bash
# vprobe against bpftrace, side by side in one run, on this machine:
#   startup   launch → attached (vprobe: its JSON `start` line, printed once
#             every probe is attached; bpftrace: its `Attaching N probes...`)
#   peak RSS  VmHWM of the tracer process, polled until it exits
#   cost      per counted drop: in-kernel run_time_ns/run_cnt of each tool's
#             programs (kernel.bpf_stats_enabled=1), and the extra wall time
#             per drop of a generator making a fixed number of drops
# for the same job: count skb:kfree_skb by drop reason.
#
# Not a test: it prints numbers. Needs root, bpftrace, bpftool, a C compiler.
# The drops are UDP datagrams to a closed port on the loopback of a network
# namespace the script makes (and deletes), bounded in count and time.
#
# Usage: bench/bench.sh [RUNS]     (RUNS per measurement, default 5)
#   BENCH_DROPS=N   drops per generator run (default 300000)
#   VPROBE_BIN=P    benchmark this vprobe binary instead of building one
set -euo pipefail
export LC_ALL=C

runs=${1:-5}
drops=${BENCH_DROPS:-300000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it loads BPF programs and makes a network namespace)"
for t in bpftrace bpftool ip; do
	command -v "$t" >/dev/null || die "needs $t (apt-get install bpftrace bpftool iproute2)"
done
cc=$(command -v cc || command -v clang) || die "needs a C compiler"

if [[ -n ${VPROBE_BIN:-} ]]; then
	vprobe=$VPROBE_BIN # an installed or prebuilt binary instead
else
	echo "building vprobe (release)..." >&2
	cargo build --release --locked -p vprobe --manifest-path "$root/Cargo.toml" >&2
	vprobe=$root/target/release/vprobe
fi

tmp=$(mktemp -d /tmp/vprobe-bench.XXXXXX)
ns=vpb-$$
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
tracer=""
cleanup() {
	if [[ -n $tracer ]] && kill -0 "$tracer" 2>/dev/null; then
		kill -KILL "$tracer" 2>/dev/null || true
	fi
	echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$cc" -O2 -Wall -o "$tmp/udp_drops" "$here/udp_drops.c"
ip netns add "$ns"
ip -n "$ns" link set lo up

# The two equivalent jobs.
vp_cmd=("$vprobe" -e 'probe("skb.drop").count("drops", ["reason"]);' --format json)
bt_cmd=(bpftrace -e 'tracepoint:skb:kfree_skb { @drops[args->reason] = count(); }')
vp_ready='"type":"start"'
bt_ready='Attaching '

prog_ids() { bpftool prog show -j | { grep -o '"id":[0-9]*' || true; } | cut -d: -f2 | sort -n; }

# launch NAME READY CMD...: starts the tracer with stdout into $tmp/NAME.out,
# records launch→READY-line in ms into $tmp/NAME.startup, and polls its VmHWM
# into $tmp/NAME.hwm until it exits. Sets $tracer.
launch() {
	local name=$1 ready=$2
	shift 2
	rm -f "$tmp/$name".{out,err,startup,hwm,attached}
	local t0=$EPOCHREALTIME
	"$@" 2>"$tmp/$name.err" > >(
		while IFS= read -r line; do
			if [[ ! -e $tmp/$name.attached && $line == *"$ready"* ]]; then
				echo "$t0 $EPOCHREALTIME" >"$tmp/$name.attached"
			fi
			printf '%s\n' "$line" >>"$tmp/$name.out"
		done
	) &
	tracer=$!
	(
		hwm=0
		while [[ -r /proc/$tracer/status ]]; do
			while read -r k v _; do
				[[ $k == VmHWM: ]] && hwm=$v
			done </proc/$tracer/status 2>/dev/null || true
			sleep 0.01
		done
		echo "$hwm" >"$tmp/$name.hwm"
	) &
	local waited=0
	until [[ -e $tmp/$name.attached ]]; do
		kill -0 "$tracer" 2>/dev/null || die "$name exited before attaching: $(cat "$tmp/$name.err")"
		((waited++ < 6000)) || die "$name did not attach within 60 s"
		sleep 0.01
	done
	read -r a b <"$tmp/$name.attached"
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }' >"$tmp/$name.startup"
	# bpftrace prints its line before attaching: give both a moment to settle.
	sleep 0.3
}

# stop: SIGINT the tracer, wait (bounded) for it and its VmHWM poller.
stop() {
	kill -INT "$tracer"
	local waited=0
	while kill -0 "$tracer" 2>/dev/null; do
		((waited++ < 1000)) || { kill -KILL "$tracer"; break; }
		sleep 0.01
	done
	wait "$tracer" 2>/dev/null || true
	tracer=""
	wait 2>/dev/null || true
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

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One tracer session: startup, generator wall time (stats off), in-kernel
# cost (stats on), peak RSS. Appends to $tmp/NAME.{startups,rss,wall,kns}.
session() {
	local name=$1 ready=$2
	shift 2
	local before
	before=$(prog_ids)
	launch "$name" "$ready" "$@"
	cat "$tmp/$name.startup" >>"$tmp/$name.startups"
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
	cat "$tmp/$name.hwm" >>"$tmp/$name.rss"
}

# Warm the page cache and the BTF parse paths once each, unmeasured.
launch warm-vp "$vp_ready" "${vp_cmd[@]}"; stop
launch warm-bt "$bt_ready" "${bt_cmd[@]}"; stop
echo 0 >/proc/sys/kernel/bpf_stats_enabled
for _ in 1 2; do generate >/dev/null; done

for i in $(seq "$runs"); do
	echo "run $i/$runs..." >&2
	generate >>"$tmp/none.wall"
	# Alternate which goes first, so neither always meets a warmer cache.
	if ((i % 2)); then
		session vprobe "$vp_ready" "${vp_cmd[@]}"
		session bpftrace "$bt_ready" "${bt_cmd[@]}"
	else
		session bpftrace "$bt_ready" "${bt_cmd[@]}"
		session vprobe "$vp_ready" "${vp_cmd[@]}"
	fi
done

# Sanity: both counted the generator's drops (NO_SOCKET) in their last session.
grep -q 'NO_SOCKET' "$tmp/vprobe.out" || echo "warning: vprobe's summary has no NO_SOCKET entry" >&2
grep -q '^@drops\[' "$tmp/bpftrace.out" || echo "warning: bpftrace printed no @drops" >&2

m() { median <"$tmp/$1"; }
none_wall=$(m none.wall)
vp_start=$(m vprobe.startups) bt_start=$(m bpftrace.startups)
vp_rss=$(m vprobe.rss) bt_rss=$(m bpftrace.rss)
vp_kns=$(m vprobe.kns) bt_kns=$(m bpftrace.kns)
vp_extra=$(awk -v t="$(m vprobe.wall)" -v n="$none_wall" -v d="$drops" 'BEGIN { printf "%.1f", (t - n) / d }')
bt_extra=$(awk -v t="$(m bpftrace.wall)" -v n="$none_wall" -v d="$drops" 'BEGIN { printf "%.1f", (t - n) / d }')

echo
echo "vprobe vs bpftrace: count skb:kfree_skb by reason; $runs runs each, medians; $drops drops per generator run"
echo "kernel $(uname -r), $(nproc) CPUs, $(bpftrace --version 2>/dev/null), vprobe $(timeout 5 "$vprobe" --version 2>/dev/null | awk '{print $2}' || true)"
echo
awk -v vs="$vp_start" -v bs="$bt_start" -v vr="$vp_rss" -v br="$bt_rss" \
	-v vk="$vp_kns" -v bk="$bt_kns" -v ve="$vp_extra" -v be="$bt_extra" -v nw="$none_wall" -v d="$drops" '
function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
BEGIN {
	fmt = "%-30s %12s %12s %10s   %s\n"
	printf fmt, "", "vprobe", "bpftrace", "ratio", "target"
	printf fmt, "startup to attached (ms)", sprintf("%.1f", vs), sprintf("%.1f", bs), ratio(vs, bs), "<= 0.5"
	printf fmt, "peak RSS (MiB)", sprintf("%.1f", vr / 1024), sprintf("%.1f", br / 1024), ratio(vr, br), "<= 0.5"
	printf fmt, "in-kernel ns per event", sprintf("%.1f", vk), sprintf("%.1f", bk), ratio(vk, bk), "<= 1.0"
	printf fmt, "extra wall ns per drop", ve, be, ratio(ve, be), "(no tracer: " sprintf("%.0f", nw / d) " ns/drop)"
}'
