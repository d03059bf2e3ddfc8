// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skb.drop: every skb freed as a drop (kfree_skb with a reason).
 * Slots (keep in sync with probes/src/catalog/skb_drop.rs):
 *   num[0] ifindex  num[1] netns  num[2] reason  num[3] location
 *   num[4] protocol num[5] len    num[6] layer  num[7] sport  num[8] dport
 *   num[9] seq  num[10] ack  num[11] tcp_flags  num[12] tcp_len
 *   addr[0] saddr  addr[1] daddr  dev
 * The flow and TCP segment come from the packet's headers (pkt.bpf.h); a
 * capture copies the dropped packet.
 */
#include "vprobe.bpf.h"
#include "layer.bpf.h"
#include "pkt.bpf.h"

#define S_IFINDEX 0
#define S_NETNS 1
#define S_REASON 2
#define S_LOCATION 3
#define S_PROTOCOL 4
#define S_LEN 5
#define S_LAYER 6
#define S_SPORT 7
#define S_DPORT 8
#define S_SEQ 9
#define S_ACK 10
#define S_TCP_FLAGS 11
#define S_TCP_LEN 12
#define A_SADDR 0
#define A_DADDR 1
#define D_DEV VP_KEY_DEV

#define FLOW_SLOTS                                                                                 \
	((struct vp_flow_slots){ .sport = S_SPORT, .dport = S_DPORT, .seq = S_SEQ, .ack = S_ACK,   \
				 .tcp_flags = S_TCP_FLAGS, .tcp_len = S_TCP_LEN, .saddr = A_SADDR,  \
				 .daddr = A_DADDR })

/* Whether the tracepoint passes the receiving socket (6.11+, a CO-RE constant). */
#define HAS_RX_SK bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->rx_sk)

/*
 * `rx_sk` is the socket a packet was being delivered to: TCP frees old data
 * (TCP_OLD_DATA) after skb->dev stopped being a device, and before skb->sk is
 * set, so the namespace comes from it there.
 */
static __always_inline void drop_fill(struct vp_rec *r, struct sk_buff *skb, __u64 location,
				      __u64 reason, struct sock *rx_sk, int btf)
{
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev_as(r, btf ? skb->dev : BPF_CORE_READ(skb, dev), S_IFINDEX, S_NETNS, btf);
	if (vp_need(S_NETNS) && !r->num[S_NETNS]) {
		if (btf) {
			/* RCU pointers: the verifier wants each checked before it is followed */
			struct sock *sk = skb->sk;
			struct net *net = sk ? sk->__sk_common.skc_net.net : NULL;
			r->num[S_NETNS] = net ? net->ns.inum : 0;
		} else {
			r->num[S_NETNS] = BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
		}
	}
	if (vp_need(S_NETNS) && !r->num[S_NETNS] && rx_sk)
		r->num[S_NETNS] = BPF_CORE_READ(rx_sk, __sk_common.skc_net.net, ns.inum);
	r->num[S_REASON] = reason;
	r->num[S_LOCATION] = location;
	if (vp_need(S_PROTOCOL))
		r->num[S_PROTOCOL] = bpf_ntohs(btf ? skb->protocol : BPF_CORE_READ(skb, protocol));
	if (vp_need(S_LEN))
		r->num[S_LEN] = btf ? skb->len : BPF_CORE_READ(skb, len);
	if (vp_need(S_LAYER))
		r->num[S_LAYER] = vp_layer_of(location, reason);
	vp_fill_flow(r, skb, FLOW_SLOTS);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(vp_drop_btf, struct sk_buff *skb, void *location, unsigned int reason)
{
	struct vp_rec *r = vp_rec_init();
	struct sock *rx_sk = NULL;

	if (!r)
		return 0;
	/* a fourth argument since 6.11: never read where the kernel has none */
	if (HAS_RX_SK)
		rx_sk = (struct sock *)ctx[3];
	drop_fill(r, skb, (__u64)location, reason, rx_sk, 1);
	vp_submit_skb(r, skb);
	return 0;
}

SEC("tracepoint/skb/kfree_skb")
int vp_drop_tp(struct trace_event_raw_kfree_skb *ctx)
{
	struct vp_rec *r = vp_rec_init();
	struct sock *rx_sk = NULL;
	__u64 reason = 0;

	if (!r)
		return 0;
	/* `reason` appeared in 5.17; older kernels only say "dropped". */
	if (bpf_core_field_exists(ctx->reason))
		reason = ctx->reason;
	if (HAS_RX_SK)
		rx_sk = BPF_CORE_READ(ctx, rx_sk);
	drop_fill(r, (struct sk_buff *)ctx->skbaddr, (__u64)ctx->location, reason, rx_sk, 0);
	vp_submit_skb(r, (struct sk_buff *)ctx->skbaddr);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
