#!/usr/bin/env bash
# `vprobe rr` against `sockperf ping-pong --tcp`, side by side in one run, over
# a veth pair between two network namespaces this script makes (and deletes):
#   vprobe-bench-srv-PID  198.51.100.1/24   vprobe serve + sockperf server --tcp
#   vprobe-bench-cli-PID  198.51.100.2/24   vprobe rr    + sockperf ping-pong --tcp
# at 1 and 16 streams (BENCH_STREAMS), ROUNDS rounds each, the two tools
# alternating (which goes first flips every round, so a drift of the machine
# hits both alike). Prints every run, then the median of the rounds and the
# ratios vprobe/sockperf of transactions/s and of p50 latency.
#
# Same semantics on both sides:
#   - one TCP connection per stream, TCP_NODELAY, one message in flight, a
#     blocking client (sockperf's client blocks in recvfrom() on one socket);
#   - N streams: vprobe rr --streams N (N threads) against N sockperf client
#     processes (one connection each); their rates are added;
#   - message size: sockperf's minimum is 14 bytes (its header), so both send
#     14-byte requests and get 14-byte responses (BENCH_MSG); netperf's default
#     of 1 byte cannot be asked of sockperf;
#   - latency: the full round trip of a transaction (sockperf --full-rtt; by
#     default sockperf reports half of it); the p50 of N sockperf clients is
#     computed over all their transactions (--full-log), not averaged;
#   - warm-up: sockperf discards its first 400 ms (and its last 50 ms); vprobe
#     rr gets --warmup 400ms;
#   - servers: one `vprobe serve` (a thread per connection, blocking), and two
#     sockperf setups, each measured:
#       sockperf      one `sockperf server -F epoll` for all streams: one thread
#                     multiplexing every connection. (`sockperf server --tcp`
#                     alone blocks in recvfrom() on one connection at a time and
#                     leaves the other clients hanging; -F epoll is accepted only
#                     with a feed file, whose `T:` line means TCP.)
#       sockperf-1:1  one `sockperf server --tcp` (blocking) per stream, on its
#                     own port: a process per connection on both sides, the
#                     model of netperf/netserver.
#   - vprobe rr runs its N streams as N threads of one process against one
#     `vprobe serve` (a thread per connection). So that a difference between
#     threads and processes can be told from one in the tools, it is also run
#     as `vprobe-1:1`: N `vprobe rr --streams 1` processes, each against its own
#     `vprobe serve`, compared with sockperf-1:1. Its p50 comes from the merged
#     histograms of the N processes (buckets 1/8 of a power of two wide,
#     interpolated linearly inside the bucket).
# Neither side busy-polls (no --lls, no SO_BUSY_POLL).
#
# Not a test: it prints numbers. Needs root, iproute2, python3, sockperf
# (installed with apt-get if missing). Every command is bounded in time.
#
# Usage: bench/rr_vs_sockperf.sh [SECONDS [ROUNDS]]   (default 10 s, 3 rounds)
#   BENCH_STREAMS="1 16"  stream counts
#   BENCH_MSG=14          request and response size, bytes (sockperf: >= 14)
#   BENCH_SOCKPERF="sockperf sockperf-1:1"   which sockperf setups to measure
#   BENCH_VPROBE_1TO1=0   skip the vprobe-1:1 runs
#   VPROBE_BIN=P          benchmark this vprobe binary instead of building one
set -euo pipefail
export LC_ALL=C

secs=${1:-10}
rounds=${2:-3}
streams_list=${BENCH_STREAMS:-1 16}
setups=${BENCH_SOCKPERF:-sockperf sockperf-1:1}
one_to_one=${BENCH_VPROBE_1TO1:-1}
msg=${BENCH_MSG:-14}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "bench: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it makes network namespaces)"
[[ $secs =~ ^[0-9]+$ && $secs -ge 2 ]] || die "SECONDS must be a whole number >= 2"
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 ]] || die "ROUNDS must be a whole number >= 1"
(( msg >= 14 )) || die "BENCH_MSG must be >= 14 (sockperf's minimum message)"
for t in ip python3 timeout; do
	command -v "$t" >/dev/null || die "needs $t"
done
if ! command -v sockperf >/dev/null; then
	echo "installing sockperf..." >&2
	timeout 300 apt-get install -y sockperf >&2 || die "cannot install sockperf (apt-get install -y sockperf)"
fi

if [[ -n ${VPROBE_BIN:-} ]]; then
	vprobe=$VPROBE_BIN
else
	echo "building vprobe (release)..." >&2
	cargo build --release --locked -p vprobe --manifest-path "$root/Cargo.toml" >&2
	vprobe=$root/target/release/vprobe
fi

tmp=$(mktemp -d /tmp/vprobe-bench-rr.XXXXXX)
srv=vprobe-bench-srv-$$
cli=vprobe-bench-cli-$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	ip netns del "$srv" 2>/dev/null || true
	ip netns del "$cli" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$srv"
ip netns add "$cli"
ip link add vpb-s netns "$srv" type veth peer name vpb-c netns "$cli"
ip -n "$srv" addr add 198.51.100.1/24 dev vpb-s
ip -n "$cli" addr add 198.51.100.2/24 dev vpb-c
for ns in "$srv" "$cli"; do
	ip -n "$ns" link set lo up
done
ip -n "$srv" link set vpb-s up
ip -n "$cli" link set vpb-c up

# The servers live until the cleanup; bounded anyway.
limit=$(( (secs + 20) * rounds * 2 * $(wc -w <<<"$streams_list") + 60 ))
ip netns exec "$srv" timeout "$limit" "$vprobe" serve --bind 198.51.100.1:12866 >"$tmp/serve.out" 2>&1 &
pids+=($!)
max_streams=0
for n in $streams_list; do
	[[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 256 ]] || die "stream counts must be 1 to 256, not $n"
	(( n > max_streams )) && max_streams=$n
done
echo "T:198.51.100.1:11111" >"$tmp/feed"
ip netns exec "$srv" timeout "$limit" sockperf server -F epoll -f "$tmp/feed" >"$tmp/sockperf-server.out" 2>&1 &
pids+=($!)
if [[ " $setups " == *" sockperf-1:1 "* ]]; then
	for i in $(seq "$max_streams"); do
		ip netns exec "$srv" timeout "$limit" sockperf server --tcp -i 198.51.100.1 -p $((11200 + i)) \
			>"$tmp/sockperf-server-$i.out" 2>&1 &
		pids+=($!)
	done
fi
serves=("$tmp/serve.out")
if [[ $one_to_one == 1 ]]; then
	for i in $(seq "$max_streams"); do
		ip netns exec "$srv" timeout "$limit" "$vprobe" serve --bind 198.51.100.1:$((12900 + i)) \
			>"$tmp/serve-$i.out" 2>&1 &
		pids+=($!)
		serves+=("$tmp/serve-$i.out")
	done
fi
for out in "${serves[@]}"; do
	for _ in $(seq 50); do
		grep -q listening "$out" 2>/dev/null && break
		sleep 0.1
	done
	grep -q listening "$out" || die "vprobe serve did not start: $(cat "$out")"
done
sleep 0.5 # sockperf server prints nothing useful when ready

# vprobe_rr PORT STREAMS OUT: one `vprobe rr` client, its JSON result in OUT.json
vprobe_rr() {
	timeout $((secs + 20)) ip netns exec "$cli" "$vprobe" rr 198.51.100.1:"$1" \
		--streams "$2" --duration "${secs}s" --warmup 400ms \
		--request-size "$msg" --response-size "$msg" --format json >"$3.json" 2>"$3.err" ||
		die "vprobe rr failed: $(cat "$3.err")"
}

run_vprobe() { # STREAMS TAG
	vprobe_rr 12866 "$1" "$tmp/$2"
}

run_vprobe_1to1() { # STREAMS TAG: a process per stream, each to its own server
	local p=() i
	for i in $(seq "$1"); do
		vprobe_rr $((12900 + i)) 1 "$tmp/$2-$i" &
		p+=($!)
	done
	for i in "${p[@]}"; do
		wait "$i" || die "a vprobe-1:1 client failed"
	done
}

run_sockperf() { # SETUP STREAMS TAG
	local p=() i port
	for i in $(seq "$2"); do
		port=11111
		[[ $1 == sockperf-1:1 ]] && port=$((11200 + i))
		timeout $((secs + 20)) ip netns exec "$cli" sockperf ping-pong --tcp -i 198.51.100.1 -p "$port" \
			-m "$msg" -t "$secs" --full-rtt --full-log "$tmp/$3-$i.csv" >"$tmp/$3-$i.out" 2>&1 &
		p+=($!)
	done
	for i in "${p[@]}"; do
		wait "$i" || die "sockperf ping-pong failed: $(cat "$tmp/$3"-*.out | tail -5)"
	done
}

echo "vprobe rr vs sockperf ping-pong --tcp ($setups): ${msg}-byte request/response, ${secs}s runs, $rounds rounds, veth between two namespaces" >&2
for n in $streams_list; do
	for r in $(seq "$rounds"); do
		echo "  $n stream(s), round $r..." >&2
		if (( r % 2 )); then
			run_vprobe "$n" "vprobe-$n-$r"
			if [[ $one_to_one == 1 ]]; then run_vprobe_1to1 "$n" "vprobe-1:1-$n-$r"; fi
		fi
		for s in $setups; do
			run_sockperf "$s" "$n" "$s-$n-$r"
		done
		if (( r % 2 == 0 )); then
			if [[ $one_to_one == 1 ]]; then run_vprobe_1to1 "$n" "vprobe-1:1-$n-$r"; fi
			run_vprobe "$n" "vprobe-$n-$r"
		fi
	done
done

python3 - "$tmp" "$rounds" "$msg" "$setups" "$one_to_one" $streams_list <<'PY'
import json, re, statistics, sys

tmp, rounds, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
setups, one_to_one = sys.argv[4].split(), sys.argv[5] == "1"
streams = [int(s) for s in sys.argv[6:]]

def pct(sorted_vals, q):
    # nearest rank, as sockperf does
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]

def vprobe(tag):
    r = json.load(open(f"{tmp}/{tag}.json"))["workloads"]["tcp_rr"]
    l = r["latency_us"]
    return r["tps"], l["p50"], l["p99"], r["transactions"], len(r["errors"])

def merged_pct(buckets, q):
    # nearest rank in merged histogram buckets, interpolated inside the bucket
    total = sum(c for _, _, c in buckets)
    rank, seen = max(1, int(round(q * total + 0.5))), 0
    for lo, hi, c in sorted(buckets):
        if c and seen + c >= rank:
            return lo + (hi - lo) * (rank - seen - 0.5) / c
        seen += c
    return float("nan")

def vprobe_1to1(tag, n):
    tps, total, errors, buckets = 0.0, 0, 0, []
    for i in range(1, n + 1):
        r = json.load(open(f"{tmp}/{tag}-{i}.json"))["workloads"]["tcp_rr"]
        tps += r["tps"]
        total += r["transactions"]
        errors += len(r["errors"])
        buckets += [(b["lo_us"], b["hi_us"], b["count"]) for b in r["buckets"]]
    return tps, merged_pct(buckets, 0.5), merged_pct(buckets, 0.99), total, errors

def sockperf(tag, n):
    tps, rtts, total = 0.0, [], 0
    for i in range(1, n + 1):
        out = open(f"{tmp}/{tag}-{i}.out").read()
        m = re.search(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)", out)
        if not m:
            sys.exit(f"bench: no [Valid Duration] line from sockperf client {i}:\n{out[-2000:]}")
        tps += int(m.group(3)) / float(m.group(1))
        total += int(m.group(3))
        for line in open(f"{tmp}/{tag}-{i}.csv"):
            f = line.split(",")
            if len(f) == 4 and f[0].strip().isdigit():
                rtts.append(float(f[3]))
    rtts.sort()
    return tps, pct(rtts, 0.5), pct(rtts, 0.99), total, 0

print(f"{'streams':>7} {'round':>5}  {'tool':12} {'tx/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'transactions':>12}")
summary = []
for n in streams:
    ours = ["vprobe"] + (["vprobe-1:1"] if one_to_one else [])
    runs = {t: [] for t in ours + setups}
    for r in range(1, rounds + 1):
        runs["vprobe"].append(vprobe(f"vprobe-{n}-{r}"))
        if one_to_one:
            runs["vprobe-1:1"].append(vprobe_1to1(f"vprobe-1:1-{n}-{r}", n))
        for s in setups:
            runs[s].append(sockperf(f"{s}-{n}-{r}", n))
        for tool in runs:
            x = runs[tool][-1]
            err = f"  ({x[4]} stream errors)" if x[4] else ""
            print(f"{n:>7} {r:>5}  {tool:12} {x[0]:>10.0f} {x[1]:>8.1f} {x[2]:>8.1f} {x[3]:>12}{err}")
    med = lambda rows, k: statistics.median(x[k] for x in rows)
    pairs = [("vprobe", s) for s in setups]
    if one_to_one and "sockperf-1:1" in setups:
        pairs.append(("vprobe-1:1", "sockperf-1:1"))
    for ours_tool, s in pairs:
        vp, sp = runs[ours_tool], runs[s]
        # ratios per round (the two ran back to back), then their median
        tps_ratio = statistics.median(a[0] / b[0] for a, b in zip(vp, sp))
        p50_ratio = statistics.median(a[1] / b[1] for a, b in zip(vp, sp))
        summary.append((n, ours_tool, s, med(vp, 0), med(sp, 0), tps_ratio, med(vp, 1), med(sp, 1), p50_ratio))

print()
print(f"median of {rounds} round(s), {msg}-byte request/response:")
print(f"{'streams':>7}  {'vprobe':10} {'peer':12} {'vprobe tx/s':>11} {'peer tx/s':>10} {'ratio':>6}   {'vprobe p50':>10} {'peer p50':>9} {'ratio':>6}")
for n, o, s, vt, st, tr, vl, sl, lr in summary:
    print(f"{n:>7}  {o:10} {s:12} {vt:>11.0f} {st:>10.0f} {tr:>6.3f}   {vl:>10.1f} {sl:>9.1f} {lr:>6.3f}")
print("(ratio = vprobe/peer, the median of the per-round ratios; target: tx/s >= 0.95, p50 within 0.90-1.10)")
print("(vprobe: N threads, one process; vprobe-1:1: N processes, like sockperf-1:1 and netperf)")
PY
