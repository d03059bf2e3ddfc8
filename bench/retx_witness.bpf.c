// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * retx_witness: a raw tracepoint program on tcp_retransmit_skb, independent of
 * vprobe (libbpf, not aya; raw_tp, not tp_btf), for bench/retx_witness.py.
 *
 * Counts every invocation per CPU (before any filter), and for the sockets on
 * `port` keeps each event in an array: when, where, the socket, the segment
 * and the socket's total_retrans, the kernel's own per-socket count of what it
 * adds to TcpRetransSegs: a jump between two events of a socket is a
 * retransmission the kernel counted and this program never ran for.
 * Built by retx_witness.py with a vmlinux.h from the running kernel's BTF.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "retx_witness.h"

#define MAXEV 16384
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAXEV);
	__type(key, __u32);
	__type(value, struct ev);
} evs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} n SEC(".maps");

/* [0] events on `port`, [1] every invocation */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

const volatile __u16 port = 0;

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(retx_witness, struct sock *sk, struct sk_buff *skb, int err)
{
	struct tcp_skb_cb *cb = (void *)skb->cb;
	__u32 zero = 0, one = 1, i;
	__u64 *h, *np;
	struct ev *e;
	__u16 sport, dport;

	h = bpf_map_lookup_elem(&hits, &one);
	if (h)
		*h += 1;
	sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (sport != port && dport != port)
		return 0;
	h = bpf_map_lookup_elem(&hits, &zero);
	if (h)
		*h += 1;
	np = bpf_map_lookup_elem(&n, &zero);
	if (!np)
		return 0;
	i = __sync_fetch_and_add(np, 1);
	if (i >= MAXEV)
		return 0;
	e = bpf_map_lookup_elem(&evs, &i);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_ns();
	e->sk = (__u64)sk;
	e->seq = BPF_CORE_READ(cb, seq);
	e->segs = BPF_CORE_READ(cb, tcp_gso_segs);
	e->total_retrans = BPF_CORE_READ((struct tcp_sock *)sk, total_retrans);
	e->err = err;
	e->sport = sport;
	e->dport = dport;
	e->cpu = bpf_get_smp_processor_id();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
