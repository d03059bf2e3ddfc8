// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sock.rcvqueue_full: a packet refused because the socket's receive queue
 * holds its whole receive buffer (sk_rmem_alloc >= sk_rcvbuf): in
 * __sock_queue_rcv_skb() (sock:sock_rcvqueue_full: raw IP and ping sockets and
 * the protocols that queue through sock_queue_rcv_skb(); not raw sockets on
 * recent kernels, whose raw_v4_input()/raw_v6_input() skip a full socket
 * before cloning the packet: nothing is freed, no tracepoint fires, only
 * sk_drops grows), and for UDP over
 * IPv4 and IPv6, which accounts its own queue since 4.10, in
 * __udp_enqueue_schedule_skb() (udp:udp_fail_queue_rcv_skb with rc -ENOMEM, a
 * companion program: what the kernel counts as RcvbufErrors). TCP accounts
 * its queue otherwise (see skb.drop).
 * Slots (keep in sync with probes/src/catalog/sock.rs):
 *   num[0] ifindex  num[1] sport  num[2] dport  num[3] family  num[4] netns
 *   num[5] protocol num[6] rmem   num[7] truesize  num[8] rcvbuf
 *   addr[0] saddr addr[1] daddr  dev (the skb's device)
 *
 * Kernels: the tracepoint is old (2.6.35); tp_btf with BTF, 5.5+. The classic
 * record has no socket: there only rmem, truesize and rcvbuf are known.
 */
#include "sock.bpf.h"

#define S_IFINDEX 0
#define S_SPORT 1
#define S_DPORT 2
#define S_FAMILY 3
#define S_NETNS 4
#define S_PROTOCOL 5
#define S_RMEM 6
#define S_TRUESIZE 7
#define S_RCVBUF 8
#define A_SADDR 0
#define A_DADDR 1
#define D_DEV VP_KEY_DEV

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* local flavors: kernel.h declares only what the other programs read */
struct sock___rcvq {
	struct {
		struct {
			int counter;
		} rmem_alloc;
	} sk_backlog;
	int sk_rcvbuf;
	__u16 sk_protocol; /* a bitfield before 5.6: read with BPF_CORE_READ_BITFIELD_PROBED */
};

struct sk_buff___rcvq {
	unsigned int truesize;
};

struct trace_event_raw_sock_rcvqueue_full {
	struct trace_entry ent;
	int rmem_alloc;
	unsigned int truesize;
	int sk_rcvbuf;
};

struct trace_event_raw_udp_fail_queue_rcv_skb {
	struct trace_entry ent;
	int rc;
	/* since 6.10, with the skb argument: a CO-RE check */
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[28]; /* struct sockaddr_in or sockaddr_in6 */
	__u8 daddr[28];
};

#pragma clang attribute pop

#define ENOMEM 12
#define IPPROTO_UDP 17

#define SOCK_SLOTS                                                                                 \
	((struct vp_sock_slots){ .sport = S_SPORT, .dport = S_DPORT, .state = -1,                 \
				 .family = S_FAMILY, .netns = S_NETNS, .saddr = A_SADDR,            \
				 .daddr = A_DADDR })

static __always_inline __u64 nonneg(int v)
{
	return v < 0 ? 0 : v;
}

/* The socket's identity and queue, and the refused skb's device and size (skb may be NULL). */
static __always_inline void rcvq_fill(struct vp_rec *r, struct sock *sk, struct sk_buff *skb)
{
	struct sock___rcvq *s = (struct sock___rcvq *)sk;

	vp_fill_sock(r, sk, SOCK_SLOTS);
	/* The device, not its namespace: netns is the socket's (above). */
	if (skb && (vp_need(D_DEV) || vp_need(S_IFINDEX))) {
		struct net_device *dev = BPF_CORE_READ(skb, dev);
		if (dev && vp_need(D_DEV))
			bpf_probe_read_kernel_str(r->dev, VP_DEV_LEN, dev->name);
		if (dev && vp_need(S_IFINDEX))
			r->num[S_IFINDEX] = BPF_CORE_READ(dev, ifindex);
	}
	if (vp_need(S_PROTOCOL))
		r->num[S_PROTOCOL] = BPF_CORE_READ_BITFIELD_PROBED(s, sk_protocol);
	r->num[S_RMEM] = nonneg(BPF_CORE_READ(s, sk_backlog.rmem_alloc.counter));
	if (skb)
		r->num[S_TRUESIZE] = BPF_CORE_READ((struct sk_buff___rcvq *)skb, truesize);
	r->num[S_RCVBUF] = nonneg(BPF_CORE_READ(s, sk_rcvbuf));
}

SEC("tp_btf/sock_rcvqueue_full")
int BPF_PROG(vp_rcvq_btf, struct sock *sk, struct sk_buff *skb)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	rcvq_fill(r, sk, skb);
	vp_submit_skb(r, skb);
	return 0;
}

/* UDP's own queue: only rc -ENOMEM is a full receive buffer (-ENOBUFS is
 * protocol memory, PROTO_MEM). The skb argument came in 6.10. */
SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(vp_rcvq_udp_btf, int rc, struct sock *sk)
{
	struct sk_buff *skb = NULL;
	struct vp_rec *r;

	if (rc != -ENOMEM)
		return 0;
	r = vp_rec_init();
	if (!r)
		return 0;
	if (bpf_core_field_exists(((struct trace_event_raw_udp_fail_queue_rcv_skb *)0)->family))
		skb = (struct sk_buff *)ctx[2];
	rcvq_fill(r, sk, skb);
	vp_submit_skb(r, skb);
	return 0;
}

SEC("tracepoint/sock/sock_rcvqueue_full")
int vp_rcvq_tp(struct trace_event_raw_sock_rcvqueue_full *ctx)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	r->num[S_RMEM] = nonneg(ctx->rmem_alloc);
	r->num[S_TRUESIZE] = ctx->truesize;
	r->num[S_RCVBUF] = nonneg(ctx->sk_rcvbuf);
	vp_submit(r);
	return 0;
}

/* The classic record has no socket: the flow where it carries one (6.10+). */
SEC("tracepoint/udp/udp_fail_queue_rcv_skb")
int vp_rcvq_udp_tp(struct trace_event_raw_udp_fail_queue_rcv_skb *ctx)
{
	struct vp_rec *r;

	if (BPF_CORE_READ(ctx, rc) != -ENOMEM)
		return 0;
	r = vp_rec_init();
	if (!r)
		return 0;
	r->num[S_PROTOCOL] = IPPROTO_UDP;
	if (bpf_core_field_exists(ctx->family)) {
		__u16 family = BPF_CORE_READ(ctx, family);
		__u8 sa[28], da[28];

		/* the record's flow is the packet's: its destination is the
		 * socket's local end, as the fields mean it */
		r->num[S_FAMILY] = family;
		r->num[S_SPORT] = BPF_CORE_READ(ctx, dport);
		r->num[S_DPORT] = BPF_CORE_READ(ctx, sport);
		BPF_CORE_READ_INTO(&sa, ctx, saddr);
		BPF_CORE_READ_INTO(&da, ctx, daddr);
		vp_sockaddr_addr(r->addr[A_SADDR], da, family);
		vp_sockaddr_addr(r->addr[A_DADDR], sa, family);
	}
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
