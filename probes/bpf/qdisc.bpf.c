// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * qdisc.enqueue / qdisc.dequeue: packets entering and leaving a queueing
 * discipline, with the queue's length after the operation.
 * Slots (keep in sync with probes/src/catalog/qdisc.rs):
 *   num[0] ifindex  num[1] netns  num[2] handle  num[3] parent  num[4] qlen
 *   num[5] backlog  num[6] len    num[7] packets num[8] queue    dev
 *
 * Kernels: qdisc_dequeue since 4.16, qdisc_enqueue since 5.14 (both as
 * tp_btf with BTF, 5.5+). qdisc_enqueue fires only for packets the qdisc
 * accepted; packets that bypass an empty work-conserving qdisc
 * (TCQ_F_CAN_BYPASS: pfifo_fast, pfifo, bfifo) fire neither tracepoint.
 */
#include "vprobe.bpf.h"

#define S_IFINDEX 0
#define S_NETNS 1
#define S_HANDLE 2
#define S_PARENT 3
#define S_QLEN 4
#define S_BACKLOG 5
#define S_LEN 6
#define S_PACKETS 7
#define S_QUEUE 8
#define D_DEV VP_KEY_DEV

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct qdisc_skb_head {
	__u32 qlen;
};

struct gnet_stats_queue {
	__u32 qlen;
	__u32 backlog;
};

struct netdev_queue {
	struct net_device *dev;
};

struct Qdisc {
	__u32 handle;
	__u32 parent;
	struct netdev_queue *dev_queue;
	struct qdisc_skb_head q;
	struct gnet_stats_queue qstats;
};

/* local flavor: kernel.h's net_device has no _tx */
struct net_device___qdisc {
	struct netdev_queue *_tx;
};

struct trace_event_raw_qdisc_enqueue {
	struct trace_entry ent;
	struct Qdisc *qdisc;
	const struct netdev_queue *txq;
	void *skbaddr;
};

struct trace_event_raw_qdisc_dequeue {
	struct trace_entry ent;
	struct Qdisc *qdisc;
	const struct netdev_queue *txq;
	int packets;
	void *skbaddr;
};

#pragma clang attribute pop

/*
 * qlen and backlog are the qdisc's shared counters (what `tc -s` shows for
 * locked qdiscs). Lockless per-CPU qdiscs (pfifo_fast: TCQ_F_CPUSTATS) keep
 * them per CPU, which a tracing program cannot sum without per-CPU BTF
 * tags; there they read 0.
 */
static __always_inline void qdisc_fill(struct vp_rec *r, struct Qdisc *q,
				       const struct netdev_queue *txq, struct sk_buff *skb)
{
	struct net_device *dev = NULL;

	if (!txq)
		txq = BPF_CORE_READ(q, dev_queue);
	if (txq)
		dev = BPF_CORE_READ(txq, dev);
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev(r, dev, S_IFINDEX, S_NETNS);
	if (vp_need(S_QUEUE) && dev) {
		__u64 tx0 = (__u64)BPF_CORE_READ((struct net_device___qdisc *)dev, _tx);
		__u64 size = bpf_core_type_size(struct netdev_queue);
		__u64 at = 0;
		/* As a number: the verifier forbids arithmetic on a BTF-typed pointer. */
		bpf_probe_read_kernel(&at, sizeof(at), &txq);
		if (tx0 && size && at >= tx0)
			r->num[S_QUEUE] = (at - tx0) / size;
	}
	r->num[S_HANDLE] = BPF_CORE_READ(q, handle);
	if (vp_need(S_PARENT))
		r->num[S_PARENT] = BPF_CORE_READ(q, parent);
	if (vp_need(S_QLEN))
		r->num[S_QLEN] = BPF_CORE_READ(q, q.qlen);
	if (vp_need(S_BACKLOG))
		r->num[S_BACKLOG] = BPF_CORE_READ(q, qstats.backlog);
	if (vp_need(S_LEN) && skb)
		r->num[S_LEN] = BPF_CORE_READ(skb, len);
}

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(vp_qdisc_enq_btf, struct Qdisc *q, const struct netdev_queue *txq,
	     struct sk_buff *skb)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	qdisc_fill(r, q, txq, skb);
	vp_submit(r);
	return 0;
}

SEC("tracepoint/qdisc/qdisc_enqueue")
int vp_qdisc_enq_tp(struct trace_event_raw_qdisc_enqueue *ctx)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	qdisc_fill(r, ctx->qdisc, ctx->txq, ctx->skbaddr);
	vp_submit(r);
	return 0;
}

/* The tracepoint also fires when nothing was dequeued (skb NULL): not an event here. */
SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(vp_qdisc_deq_btf, struct Qdisc *q, const struct netdev_queue *txq, int packets,
	     struct sk_buff *skb)
{
	struct vp_rec *r;
	if (!skb)
		return 0;
	r = vp_rec_init();
	if (!r)
		return 0;
	qdisc_fill(r, q, txq, skb);
	r->num[S_PACKETS] = packets;
	vp_submit(r);
	return 0;
}

SEC("tracepoint/qdisc/qdisc_dequeue")
int vp_qdisc_deq_tp(struct trace_event_raw_qdisc_dequeue *ctx)
{
	struct vp_rec *r;
	if (!ctx->skbaddr)
		return 0;
	r = vp_rec_init();
	if (!r)
		return 0;
	qdisc_fill(r, ctx->qdisc, ctx->txq, ctx->skbaddr);
	r->num[S_PACKETS] = ctx->packets;
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
