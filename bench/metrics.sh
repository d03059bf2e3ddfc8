#!/usr/bin/env bash
# The cost of `--metrics`, on this machine:
#   scrape    one GET /metrics of an aggregation with 10 000 series (keys):
#             wall time (ms, median of SCRAPES) and size (bytes), in the text
#             format and in OpenMetrics
#   counting  per counted drop, with the endpoint off and on (scraped every
#             100 ms while the drops are made): in-kernel run_time_ns/run_cnt
#             of vprobe's programs (kernel.bpf_stats_enabled=1) and the extra
#             wall time per drop of a generator making a fixed number of drops
#
# Not a test: it prints numbers. Needs root, bpftool, curl, a C compiler.
# Drops are UDP datagrams to closed ports on the loopback of a namespace the
# script makes (and deletes), bounded in count and time.
#
# Usage: bench/metrics.sh [RUNS]     (RUNS per counting measurement, default 5)
#   BENCH_DROPS=N   drops per generator run (default 300000)
#   SCRAPES=N       scrapes timed per format (default 20)
#   VPROBE_BIN=P    benchmark this vprobe binary instead of building one
set -euo pipefail
export LC_ALL=C

runs=${1:-5}
drops=${BENCH_DROPS:-300000}
scrapes=${SCRAPES:-20}
series=10000
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it loads BPF programs and makes a network namespace)"
for t in bpftool curl ip; do
	command -v "$t" >/dev/null || die "needs $t (apt-get install bpftool curl iproute2)"
done
cc=$(command -v cc || command -v clang) || die "needs a C compiler"

if [[ -n ${VPROBE_BIN:-} ]]; then
	vprobe=$VPROBE_BIN
else
	echo "building vprobe (release)..." >&2
	cargo build --release --locked -p vprobe --manifest-path "$root/Cargo.toml" >&2
	vprobe=$root/target/release/vprobe
fi

tmp=$(mktemp -d /tmp/vprobe-bench-metrics.XXXXXX)
ns=vpbm-$$
stats_was=$(cat /proc/sys/kernel/bpf_stats_enabled)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	echo "$stats_was" >/proc/sys/kernel/bpf_stats_enabled
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$cc" -O2 -Wall -o "$tmp/udp_drops" "$here/udp_drops.c"
ip netns add "$ns"
ip -n "$ns" link set lo up
inode=$(stat -L -c %i "/run/netns/$ns")

prog_ids() { bpftool prog show -j | { grep -o '"id":[0-9]*' || true; } | cut -d: -f2 | sort -n; }
prog_stats() {
	local t=0 c=0 id j
	for id in "$@"; do
		j=$(bpftool prog show id "$id" -j 2>/dev/null) || continue
		t=$((t + $(grep -o '"run_time_ns":[0-9]*' <<<"$j" | cut -d: -f2 || echo 0)))
		c=$((c + $(grep -o '"run_cnt":[0-9]*' <<<"$j" | cut -d: -f2 || echo 0)))
	done
	echo "$t $c"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# generate COUNT [SIZES]: wall ns of COUNT drops in the namespace
generate() {
	local sent ns_
	read -r sent ns_ < <(ip netns exec "$ns" "$tmp/udp_drops" "$1" 30 "${2:-1}")
	[[ $sent == "$1" ]] || die "generator sent $sent of $1"
	echo "$ns_"
}

# start NAME ARGS...: vprobe in the background until its start line; sets
# $vp (pid) and $url (the metrics URL, if any) and $ids (its programs).
start() {
	local name=$1
	shift
	local before
	before=$(prog_ids)
	"$vprobe" "$@" --format json >"$tmp/$name.out" 2>"$tmp/$name.err" &
	vp=$!
	pids+=("$vp")
	local waited=0
	until grep -q '"type":"start"' "$tmp/$name.out" 2>/dev/null; do
		kill -0 "$vp" 2>/dev/null || die "$name exited: $(cat "$tmp/$name.err")"
		((waited++ < 6000)) || die "$name did not attach within 60 s"
		sleep 0.01
	done
	url=$(grep -o '"metrics":"[^"]*"' "$tmp/$name.out" | head -n 1 | cut -d'"' -f4 || true)
	ids=$(comm -13 <(echo "$before") <(prog_ids) | tr '\n' ' ')
}
stop() {
	kill -INT "$vp"
	local waited=0
	while kill -0 "$vp" 2>/dev/null; do
		((waited++ < 2000)) || { kill -KILL "$vp"; break; }
		sleep 0.01
	done
	wait "$vp" 2>/dev/null || true
}

# --- one scrape of 10 000 series
start scrape -e "probe(\"skb.drop\").filter(\"netns\", $inode).count(\"drops\", [\"len\"]);" \
	--metrics 127.0.0.1:0 --metrics-series-limit "$series"
generate "$series" "$series" >/dev/null
got=$(curl -sf "$url" | grep -c '^vprobe_drops_total{' || true)
((got == series)) || die "the exposition has $got series of drops, not $series"
for fmt in text openmetrics; do
	accept=text/plain
	[[ $fmt == openmetrics ]] && accept='application/openmetrics-text;version=1.0.0'
	: >"$tmp/$fmt.ms"
	for _ in $(seq "$scrapes"); do
		curl -sf -o /dev/null -H "Accept: $accept" -w '%{time_total} %{size_download}\n' "$url" >>"$tmp/$fmt.raw"
	done
	awk '{ print $1 * 1000 }' "$tmp/$fmt.raw" | median >"$tmp/$fmt.ms"
	tail -n 1 "$tmp/$fmt.raw" | awk '{ print $2 }' >"$tmp/$fmt.bytes"
done
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$vp/status")
stop

# --- counting cost per event, endpoint off and on
job=(-e "probe(\"skb.drop\").filter(\"netns\", $inode).count(\"drops\", [\"reason\"]);")
session() {
	local name=$1
	shift
	start "$name" "${job[@]}" "$@"
	local scraper=""
	if [[ -n $url ]]; then
		(while sleep 0.1; do curl -sf -o /dev/null "$url" || true; done) &
		scraper=$!
		pids+=("$scraper")
	fi
	echo 0 >/proc/sys/kernel/bpf_stats_enabled
	generate "$drops" >>"$tmp/$name.wall"
	echo 1 >/proc/sys/kernel/bpf_stats_enabled
	local t0 c0 t1 c1
	# shellcheck disable=SC2086
	read -r t0 c0 < <(prog_stats $ids)
	generate "$drops" >/dev/null
	# shellcheck disable=SC2086
	read -r t1 c1 < <(prog_stats $ids)
	echo 0 >/proc/sys/kernel/bpf_stats_enabled
	[[ -n $scraper ]] && kill "$scraper" 2>/dev/null
	((c1 > c0)) || die "$name's programs did not run"
	awk -v t=$((t1 - t0)) -v c=$((c1 - c0)) 'BEGIN { printf "%.1f\n", t / c }' >>"$tmp/$name.kns"
	stop
}
for _ in 1 2; do generate "$drops" >/dev/null; done
for i in $(seq "$runs"); do
	echo "run $i/$runs..." >&2
	generate "$drops" >>"$tmp/none.wall"
	if ((i % 2)); then
		session off
		session on --metrics 127.0.0.1:0
	else
		session on --metrics 127.0.0.1:0
		session off
	fi
done
m() { median <"$tmp/$1"; }
extra() { awk -v t="$(m "$1.wall")" -v n="$(m none.wall)" -v d="$drops" 'BEGIN { printf "%.1f", (t - n) / d }'; }

echo
echo "one scrape, $series series of one count aggregation (median of $scrapes):"
printf '  %-12s %8s ms %10s bytes\n' text "$(cat "$tmp/text.ms")" "$(cat "$tmp/text.bytes")"
printf '  %-12s %8s ms %10s bytes\n' openmetrics "$(cat "$tmp/openmetrics.ms")" "$(cat "$tmp/openmetrics.bytes")"
echo "  vprobe RSS after $((2 * scrapes + 1)) scrapes: $rss KiB"
echo
echo "counting skb drops by reason, per drop (median of $runs runs of $drops drops):"
printf '  %-28s %10s %10s\n' "" "in-kernel" "wall extra"
printf '  %-28s %7s ns %7s ns\n' "--metrics off" "$(m off.kns)" "$(extra off)"
printf '  %-28s %7s ns %7s ns\n' "--metrics on, scraped /100ms" "$(m on.kns)" "$(extra on)"
