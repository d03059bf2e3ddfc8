// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dev.rx / dev.xmit / dev.queue: packets entering the stack from a device,
 * handed to a driver, and queued for transmission.
 * Slots (keep in sync with probes/src/catalog/dev.rs):
 *   num[0] ifindex  num[1] netns  num[2] len  num[3] protocol  num[4] rc  dev
 * Captures copy the packet at dev.rx and dev.queue; at net_dev_xmit the skb
 * belongs to the driver, which may have freed it already.
 */
#include "vprobe.bpf.h"

#define S_IFINDEX 0
#define S_NETNS 1
#define S_LEN 2
#define S_PROTOCOL 3
#define S_RC 4
#define D_DEV VP_KEY_DEV

/* `btf` (a constant): `skb` is a tp_btf program's typed argument (vp_fill_dev_as). */
static __always_inline struct vp_rec *dev_rec(struct sk_buff *skb, int btf)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return NULL;
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev_as(r, btf ? skb->dev : BPF_CORE_READ(skb, dev), S_IFINDEX, S_NETNS, btf);
	if (vp_need(S_LEN))
		r->num[S_LEN] = btf ? skb->len : BPF_CORE_READ(skb, len);
	if (vp_need(S_PROTOCOL))
		r->num[S_PROTOCOL] = bpf_ntohs(btf ? skb->protocol : BPF_CORE_READ(skb, protocol));
	return r;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(vp_rx_btf, struct sk_buff *skb)
{
	struct vp_rec *r = dev_rec(skb, 1);
	if (r)
		vp_submit_skb(r, skb);
	return 0;
}

/* Raw tracepoints (4.17+): the same arguments as tp_btf, untyped for the verifier. */
SEC("raw_tp/netif_receive_skb")
int BPF_PROG(vp_rx_raw, struct sk_buff *skb)
{
	struct vp_rec *r = dev_rec(skb, 0);
	if (r)
		vp_submit_skb(r, skb);
	return 0;
}

SEC("tracepoint/net/netif_receive_skb")
int vp_rx_tp(struct trace_event_raw_net_dev_template *ctx)
{
	struct vp_rec *r = dev_rec(ctx->skbaddr, 0);
	if (r)
		vp_submit_skb(r, ctx->skbaddr);
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(vp_queue_btf, struct sk_buff *skb)
{
	struct vp_rec *r = dev_rec(skb, 1);
	if (r)
		vp_submit_skb(r, skb);
	return 0;
}

SEC("raw_tp/net_dev_queue")
int BPF_PROG(vp_queue_raw, struct sk_buff *skb)
{
	struct vp_rec *r = dev_rec(skb, 0);
	if (r)
		vp_submit_skb(r, skb);
	return 0;
}

SEC("tracepoint/net/net_dev_queue")
int vp_queue_tp(struct trace_event_raw_net_dev_template *ctx)
{
	struct vp_rec *r = dev_rec(ctx->skbaddr, 0);
	if (r)
		vp_submit_skb(r, ctx->skbaddr);
	return 0;
}

/* The skb may already be freed when rc says so: take len and dev from the arguments. */
static __always_inline void xmit(int rc, struct net_device *dev, unsigned int len, int btf)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return;
	vp_fill_dev_as(r, dev, S_IFINDEX, S_NETNS, btf);
	r->num[S_LEN] = len;
	r->num[S_RC] = (__u64)(__s64)rc;
	vp_submit(r);
}

SEC("tp_btf/net_dev_xmit")
int BPF_PROG(vp_xmit_btf, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	xmit(rc, dev, len, 1);
	return 0;
}

SEC("raw_tp/net_dev_xmit")
int BPF_PROG(vp_xmit_raw, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	xmit(rc, dev, len, 0);
	return 0;
}

SEC("tracepoint/net/net_dev_xmit")
int vp_xmit_tp(struct trace_event_raw_net_dev_xmit *ctx)
{
	struct vp_rec *r = vp_rec_init();
	struct sk_buff *skb = ctx->skbaddr;
	if (!r)
		return 0;
	/* Only the name is recorded; the skb is still valid when rc is 0. */
	if (ctx->rc == 0 && vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev(r, BPF_CORE_READ(skb, dev), S_IFINDEX, S_NETNS);
	r->num[S_LEN] = ctx->len;
	r->num[S_RC] = (__u64)(__s64)ctx->rc;
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
