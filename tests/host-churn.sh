#!/usr/bin/env bash
# Keeps creating and deleting network namespaces, veth pairs and macvtaps of
# its own, as a developer's VMs and containers do on a busy host, until
# stopped (Ctrl-C in the foreground; SIGTERM, as a background job ignores
# SIGINT) or for DURATION seconds. The e2e suite must pass
# while this runs (docs/DESIGN.md, "Reliability"): its leftover checks judge
# only what each test created.
#
#   tests/host-churn.sh [DURATION] &    # then: cargo test --workspace --locked --no-fail-fast -- --test-threads=1
#
# Everything it makes is named vpchurn-$$-* and deleted on exit; each round
# leaves pinned namespaces (/run/netns) and a macvtap (/sys/dev/char) alive
# for a moment, so whole-host views keep changing.
set -euo pipefail

duration=${1:-0}
prefix=vpchurn-$$
rounds=0
start=$SECONDS

cleanup() {
	for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	echo "host-churn: $rounds rounds in $((SECONDS - start)) s" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM

[[ $(id -u) == 0 ]] || { echo "host-churn: must run as root" >&2; exit 1; }

while ((duration == 0 || SECONDS - start < duration)); do
	a=$prefix-$rounds-a
	b=$prefix-$rounds-b
	ip netns add "$a"
	ip netns add "$b"
	ip -n "$a" link set lo up
	# a veth between the two, a bridge-mode macvtap on one end (a char device
	# in /sys/dev/char, like the lab's), and some traffic so sockets and
	# neighbours exist when the namespaces go
	ip link add c0 netns "$a" type veth peer name c1 netns "$b"
	ip -n "$a" addr add 198.51.100.1/30 dev c0
	ip -n "$b" addr add 198.51.100.2/30 dev c1
	ip -n "$a" link set c0 up
	ip -n "$b" link set c1 up
	ip -n "$b" link add link c1 name mvt0 type macvtap mode bridge
	ip -n "$b" link set mvt0 up
	ip netns exec "$a" ping -c 2 -i 0.05 -W 1 198.51.100.2 >/dev/null 2>&1 || true
	# the previous round's namespaces go while this round's are up
	if ((rounds > 0)); then
		ip netns del "$prefix-$((rounds - 1))-a" 2>/dev/null || true
		ip netns del "$prefix-$((rounds - 1))-b" 2>/dev/null || true
	fi
	rounds=$((rounds + 1))
	sleep 0.$((RANDOM % 5))
done
