// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcp.retransmit: every TCP segment retransmission.
 * Slots (keep in sync with probes/src/catalog.rs, TCP_RETRANSMIT_FIELDS):
 *   num[0] sport  num[1] dport  num[2] state  num[3] family  num[4] netns
 *   addr[0] saddr addr[1] daddr  (IPv4 as ::ffff:a.b.c.d)
 */
#include "vprobe.bpf.h"

#define S_SPORT 0
#define S_DPORT 1
#define S_STATE 2
#define S_FAMILY 3
#define S_NETNS 4

#define AF_INET 2
#define AF_INET6 10

static __always_inline void v4_mapped(__u8 *dst, __u32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

static __always_inline void retx_fill_sk(struct vp_rec *r, const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (vp_need(S_SPORT))
		r->num[S_SPORT] = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (vp_need(S_DPORT))
		r->num[S_DPORT] = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (vp_need(S_STATE))
		r->num[S_STATE] = BPF_CORE_READ(sk, __sk_common.skc_state);
	r->num[S_FAMILY] = family;
	if (vp_need(S_NETNS))
		r->num[S_NETNS] = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (!vp_need(VP_KEY_ADDR0) && !vp_need(VP_KEY_ADDR0 + 1))
		return;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->addr[0], sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->addr[1], sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		v4_mapped(r->addr[0], BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(r->addr[1], BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(vp_retx_btf, const struct sock *sk, const struct sk_buff *skb)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	retx_fill_sk(r, sk);
	vp_submit(r);
	return 0;
}

/*
 * The classic record carries ports and addresses, but the namespace only via
 * the socket: read it from skaddr like the BTF variant. Read through
 * BPF_CORE_READ because the two layouts put skaddr at relocated offsets and the
 * verifier forbids direct loads from a ctx pointer at a variable offset.
 */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int vp_retx_tp(void *ctx)
{
	struct vp_rec *r = vp_rec_init();
	const struct sock *sk;
	if (!r)
		return 0;
	/* Its own event class since 6.13 (added `err`); tcp_event_sk_skb before. */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb))
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_retransmit_skb *)ctx, skaddr);
	else
		sk = BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb *)ctx, skaddr);
	retx_fill_sk(r, sk);
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
