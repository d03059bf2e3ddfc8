#!/usr/bin/env bash
# A soak run: vprobe with every kind of consumer (bench/soak.rhai) on the seed
# case in a lab, under a TCP_RR load that overflows the macvtap ring, for an
# hour; its resident memory (VmRSS) and open fds are sampled and printed as
# they go, then summed up. Not in CI (it takes the hour); needs root.
#
# Usage: bench/soak.sh [SECONDS] [INTERVAL]   (default 3600 and 60)
#   VPROBE_BIN=P   soak this vprobe binary instead of building one
#
# A leak shows as a curve that keeps rising after the first minutes (the
# maps, rings and the load's histogram are all allocated early); the
# summary compares the last sample with the one at a tenth of the run.
set -euo pipefail
export LC_ALL=C

secs=${1:-3600}
interval=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "soak: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (it loads BPF programs and makes a lab)"

bin=${VPROBE_BIN:-}
if [[ -z $bin ]]; then
	(cd "$root" && cargo build --release --locked -q) || die "cargo build failed"
	bin=$root/target/release/vprobe
fi

out=$(mktemp -d /tmp/vprobe-soak.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the run ends a little after the load; its output is read by nobody
"$bin" run "$here/soak.rhai" --lab macvtap -p "duration=${secs}s" -d "$((secs + 5))s" \
	-f json >"$out/run.jsonl" 2>"$out/run.err" &
pid=$!

sample() { # rss_kb fds
	local rss fds
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	[[ -n $rss ]] && echo "$rss $fds"
}

for _ in $(seq 300); do
	grep -q '"type":"start"' "$out/run.jsonl" 2>/dev/null && break
	kill -0 "$pid" 2>/dev/null || die "vprobe ended before attaching: $(cat "$out/run.err")"
	sleep 0.1
done
start=$SECONDS
printf '%8s %10s %6s\n' "t" "rss" "fds"
samples=()
while kill -0 "$pid" 2>/dev/null && ((SECONDS - start <= secs)); do
	if s=$(sample); then
		read -r rss fds <<<"$s"
		samples+=("$((SECONDS - start)) $rss $fds")
		bar=$(printf '%*s' $((rss / 2048)) '' | tr ' ' '#')
		printf '%7ss %8.1fMB %6d  %s\n' "$((SECONDS - start))" "$(echo "$rss/1024" | bc -l)" "$fds" "$bar"
	fi
	sleep "$interval"
done
wait "$pid" && status=0 || status=$?
pid=
((${#samples[@]} >= 2)) || die "too few samples (vprobe exited $status): $(tail -3 "$out/run.err")"

n=${#samples[@]}
read -r t0 rss0 fds0 <<<"${samples[0]}"
read -r tb rssb fdsb <<<"${samples[$((n / 10))]}"
read -r te rsse fdse <<<"${samples[$((n - 1))]}"
max=$(printf '%s\n' "${samples[@]}" | awk 'max < $2 {max = $2} END {print max}')
summary=$(tail -1 "$out/run.jsonl")
echo
echo "vprobe exited $status after ${te}s; $n samples every ${interval}s"
printf 'rss: %.1f MB at start, %.1f MB at %ss, %.1f MB at the end (max %.1f MB): %+.1f MB since %ss\n' \
	"$(echo "$rss0/1024" | bc -l)" "$(echo "$rssb/1024" | bc -l)" "$tb" \
	"$(echo "$rsse/1024" | bc -l)" "$(echo "$max/1024" | bc -l)" "$(echo "($rsse-$rssb)/1024" | bc -l)" "$tb"
echo "fds: $fds0 at start, $fdsb at ${tb}s, $fdse at the end"
echo "lost: $(echo "$summary" | grep -o '"lost":{[^}]*}' || echo '(no summary)')"
echo "load: $(echo "$summary" | grep -o '"transactions":[0-9]*' | head -1)"
