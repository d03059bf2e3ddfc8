// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * macvtap.drop and tun.drop: drops where a tap queue's ring is the cause, with
 * the state of that ring at the moment of the drop.
 *
 * macvtap.drop: kfree_skb restricted (in the kernel, by `sites`) to
 * tap_handle_frame, the macvtap/ipvtap receive handler. The drops there that
 * go through its `drop:` label also count in the device's rx_dropped; the
 * segments it makes of a GSO packet and frees itself when the ring is full
 * do not (`counted`, below). The queue is found as tap_get_queue() found it: skb->dev is the
 * macvtap, its rx_handler_data the tap_dev; with one queue it is taps[0],
 * else taps[skb->hash % numvtaps] when the skb has a flow hash, else
 * taps[(queue_mapping - 1) % numvtaps] when the rx queue was recorded, else
 * taps[0].
 *
 * tun.drop: kfree_skb restricted to tun_net_xmit (a tun/tap device sending
 * towards its reader: FULL_RING when the reader lags, DEV_READY when no queue
 * is attached); each such drop also counts in the device's tx_dropped. The
 * queue is tun->tfiles[skb->queue_mapping], the ring its tx_ring.
 *
 * Ring state (struct ptr_ring): the producer writes queue[producer] and fails
 * (FULL_RING) when that slot is not NULL. The consumer takes queue[consumer_head]
 * but NULLs consumed slots lazily, `batch` at a time (batch = 16 for rings of
 * 32 and more, else 1): the slots [consumer_tail, consumer_head) are consumed
 * but still look used to the producer. So:
 *   ring_occupancy  = entries not yet consumed: 0 when queue[consumer_head] is
 *                     NULL, else ((producer - consumer_head - 1) mod size) + 1
 *   ring_unreleased = consumer_head - consumer_tail, consumed slots not yet
 *                     handed back to the producer
 * and at a FULL_RING drop occupancy + unreleased = size. A drop with a low
 * occupancy and a high unreleased count is a ring that only looked full, the
 * kind of drop behind the 2018 macvtap investigation. The values are read
 * without the ring's locks, after the failed produce: a consumer running on
 * another CPU at that instant can have moved on by a slot or two.
 *
 * CO-RE: tap_dev, tap_queue, tun_struct and tun_file come from the drivers;
 * when their types are not in the kernel's BTF (drivers built as modules: the
 * loader relocates against vmlinux BTF only) the ring fields read 0 and the
 * rest still works. netdev_priv() changed in v6.12 (vp_netdev_priv()).
 *
 * counted (macvtap.drop): whether the device's rx_dropped counts the drop.
 * tap_handle_frame frees packets at three kinds of call sites (6.x):
 *   C  `drop:` kfree_skb_reason(skb): counted (count_rx_dropped just before)
 *   A  a GSO segment the ring refused: kfree_skb_reason(seg), not counted
 *   B  the segments after it: kfree_skb_list_reason(next), not counted
 * The tracepoint's location is a return address: for A and C the return
 * from sk_skb_reason_drop() into tap_handle_frame; for B the list function
 * inlines the tracepoint, so its location is kfree_skb_list_reason()'s own
 * return address, again in tap_handle_frame, right after the call. So the
 * kernel text around the location tells them apart (x86-64): B when the 5
 * bytes before it are a direct call to kfree_skb_list_reason, A when such a
 * call starts within CALL_AHEAD bytes after it (A is followed by setting up
 * the arguments of B's call: on 6.18, 8 bytes), else C. The address comes from
 * user space (`site_calls`, sites.bpf.h); without it the field says unknown.
 * The text is read only for drops already inside tap_handle_frame and only
 * when the field is used: one 25-byte read per drop, nothing per packet.
 *
 * Also compiled in: vp_mvtap_fentry / vp_mvtap_kprobe on
 * macvtap_count_rx_dropped, the rx_dropped counting path itself (see below):
 * every drop they see is counted.
 *
 * Slots (keep in sync with probes/src/catalog/tap.rs):
 *   num[0] ifindex  num[1] netns  num[2] reason  num[3] location  num[4] queue
 *   num[5] queues   num[6] ring_size  num[7] ring_producer
 *   num[8] ring_consumer_head  num[9] ring_consumer_tail  num[10] ring_occupancy
 *   num[11] ring_unreleased  num[12] sport  num[13] len  num[14] protocol
 *   num[15] dport  num[16] seq  num[17] ack  num[18] tcp_flags  num[19] tcp_len
 *   num[20] counted (macvtap.drop only)
 *   addr[0] saddr  addr[1] daddr  dev
 * The flow (addresses and ports, IPv4 as ::ffff:a.b.c.d) and the TCP segment
 * are parsed from the packet's own headers (pkt.bpf.h), so a drop can be tied
 * to its TCP connection and to the retransmission that repairs it. A capture
 * copies the dropped packet from its Ethernet header (the kfree_skb
 * mechanisms; the counting path has no packet).
 */
#include "vprobe.bpf.h"
#include "pkt.bpf.h"
#include "sites.bpf.h"
#include <asm/ptrace.h>

#define S_IFINDEX 0
#define S_NETNS 1
#define S_REASON 2
#define S_LOCATION 3
#define S_QUEUE 4
#define S_QUEUES 5
#define S_RING_SIZE 6
#define S_RING_PRODUCER 7
#define S_RING_CONSUMER_HEAD 8
#define S_RING_CONSUMER_TAIL 9
#define S_RING_OCCUPANCY 10
#define S_RING_UNRELEASED 11
#define S_SPORT 12
#define S_LEN 13
#define S_PROTOCOL 14
#define S_DPORT 15
#define S_SEQ 16
#define S_ACK 17
#define S_TCP_FLAGS 18
#define S_TCP_LEN 19
#define S_COUNTED 20
#define A_SADDR 0
#define A_DADDR 1
#define D_DEV VP_KEY_DEV

#define MAX_QUEUES 256 /* MAX_TAP_QUEUES, the size of taps[] and tfiles[] */

/* `counted` values (keep in sync with probes/src/catalog/tap.rs COUNTED_*) */
#define COUNTED_NO 0      /* a GSO segment tap_handle_frame dropped itself (A, B) */
#define COUNTED_YES 1     /* in rx_dropped (C, and the counting-path mechanisms) */
#define COUNTED_UNKNOWN 2 /* not decided: no kfree_skb_list_reason address, text unreadable */

/* site_calls[] index of kfree_skb_list_reason (catalog: MACVTAP_DROP.site_calls) */
#define CALL_LIST_FREE 0
/* How far after the location site A's call to kfree_skb_list_reason may start. */
#define CALL_AHEAD 16

/* queue .. ring_unreleased: whether the queue has to be found at all */
#define QUEUE_BITS (((1u << (S_RING_UNRELEASED + 1)) - 1) & ~((1u << S_QUEUE) - 1))

static __always_inline int need_queue(void)
{
	return settings.need_mask & QUEUE_BITS;
}

/* netdev_priv(): v6.12 gave net_device a flexible `priv[]` member and made
 * netdev_priv() return it; before, the private area followed the struct,
 * aligned to NETDEV_ALIGN. */
static __always_inline void *vp_netdev_priv(struct net_device *dev)
{
	if (bpf_core_field_exists(dev->priv))
		return (char *)dev + bpf_core_field_offset(struct net_device, priv);
	return (char *)dev + ((bpf_core_type_size(struct net_device) + 31) & ~31);
}

static __always_inline void ring_fill(struct vp_rec *r, struct ptr_ring *ring)
{
	__u32 size, producer, head, tail, occupancy = 0;
	void **queue;
	void *entry = NULL;

	size = BPF_CORE_READ(ring, size);
	producer = BPF_CORE_READ(ring, producer);
	head = BPF_CORE_READ(ring, consumer_head);
	tail = BPF_CORE_READ(ring, consumer_tail);
	queue = BPF_CORE_READ(ring, queue);
	r->num[S_RING_SIZE] = size;
	r->num[S_RING_PRODUCER] = producer;
	r->num[S_RING_CONSUMER_HEAD] = head;
	r->num[S_RING_CONSUMER_TAIL] = tail;
	/* consumer_tail <= consumer_head: both go back to 0 together at the wrap */
	r->num[S_RING_UNRELEASED] = head >= tail ? head - tail : 0;
	if (!size || head >= size || producer >= size || !queue)
		return;
	/* __ptr_ring_empty(): the next entry to consume is NULL */
	bpf_probe_read_kernel(&entry, sizeof(entry), queue + head);
	if (entry)
		occupancy = (producer + size - head - 1) % size + 1;
	r->num[S_RING_OCCUPANCY] = occupancy;
}

#define FLOW_SLOTS                                                                                 \
	((struct vp_flow_slots){ .sport = S_SPORT, .dport = S_DPORT, .seq = S_SEQ, .ack = S_ACK,   \
				 .tcp_flags = S_TCP_FLAGS, .tcp_len = S_TCP_LEN, .saddr = A_SADDR,  \
				 .daddr = A_DADDR })

/* The fields every program here fills from the skb and the tracepoint. */
static __always_inline void drop_fill(struct vp_rec *r, struct sk_buff *skb,
				      struct net_device *dev, __u64 location, __u64 reason)
{
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev(r, dev, S_IFINDEX, S_NETNS);
	r->num[S_REASON] = reason;
	r->num[S_LOCATION] = location;
	if (vp_need(S_LEN))
		r->num[S_LEN] = BPF_CORE_READ(skb, len);
	if (vp_need(S_PROTOCOL))
		r->num[S_PROTOCOL] = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	vp_fill_flow(r, skb, FLOW_SLOTS);
}

/* tap_get_queue()'s choice, for an skb seen after that choice was made. */
static __always_inline __u32 tap_queue_index(struct sk_buff *skb, __u32 numvtaps)
{
	__u32 hash, rxq;

	if (numvtaps <= 1)
		return 0;
	/* skb_get_hash() stored the flow hash it computed in skb->hash */
	hash = BPF_CORE_READ(skb, hash);
	if (hash)
		return hash % numvtaps;
	/* skb_rx_queue_recorded(): queue_mapping is the rx queue + 1 */
	rxq = BPF_CORE_READ(skb, queue_mapping);
	if (rxq)
		return (rxq - 1) % numvtaps;
	return 0;
}

static __always_inline void tap_ring_fill(struct vp_rec *r, struct tap_dev *tap, __u32 idx)
{
	struct tap_queue *q = NULL;

	r->num[S_QUEUE] = idx;
	if (idx >= MAX_QUEUES)
		return;
	bpf_probe_read_kernel(&q, sizeof(q),
			      (char *)tap + bpf_core_field_offset(struct tap_dev, taps) +
				      idx * sizeof(q));
	if (q)
		ring_fill(r, &q->ring);
}

/* Whether the drop at `location` (in tap_handle_frame) counts in rx_dropped. */
static __always_inline __u64 mvtap_counted(__u64 location)
{
	/* kernel text [location - VP_CALL_LEN, location + CALL_AHEAD + VP_CALL_LEN - 1) */
	__u8 text[VP_CALL_LEN + CALL_AHEAD + VP_CALL_LEN - 1];
	__u64 fn = vp_site_call(CALL_LIST_FREE);

	if (!fn)
		return COUNTED_UNKNOWN;
	if (bpf_probe_read_kernel(text, sizeof(text), (void *)(location - VP_CALL_LEN)))
		return COUNTED_UNKNOWN;
	/* B: the return from kfree_skb_list_reason() itself */
	if (vp_is_call_to(text, location - VP_CALL_LEN, fn))
		return COUNTED_NO;
	/* A: the call freeing the refused segment, then the list's */
#pragma unroll
	for (int i = 0; i < CALL_AHEAD; i++)
		if (vp_is_call_to(text + VP_CALL_LEN + i, location + i, fn))
			return COUNTED_NO;
	return COUNTED_YES;
}

static __always_inline void mvtap_drop(struct sk_buff *skb, __u64 location, __u64 reason)
{
	struct net_device *dev;
	struct tap_dev *tap;
	struct vp_rec *r;
	int numvtaps;

	if (!vp_at_site(location))
		return;
	r = vp_rec_init();
	if (!r)
		return;
	dev = BPF_CORE_READ(skb, dev);
	drop_fill(r, skb, dev, location, reason);
	if (vp_need(S_COUNTED))
		r->num[S_COUNTED] = mvtap_counted(location);
	if (need_queue() && dev && bpf_core_type_exists(struct tap_dev)) {
		tap = BPF_CORE_READ(dev, rx_handler_data);
		numvtaps = tap ? BPF_CORE_READ(tap, numvtaps) : 0;
		if (numvtaps > 0 && numvtaps <= MAX_QUEUES) {
			r->num[S_QUEUES] = numvtaps;
			tap_ring_fill(r, tap, tap_queue_index(skb, numvtaps));
		}
	}
	vp_submit_skb(r, skb);
}

static __always_inline void tun_drop(struct sk_buff *skb, __u64 location, __u64 reason)
{
	struct tun_struct *tun;
	struct tun_file *tfile = NULL;
	struct net_device *dev;
	struct vp_rec *r;
	__u32 txq;

	if (!vp_at_site(location))
		return;
	r = vp_rec_init();
	if (!r)
		return;
	dev = BPF_CORE_READ(skb, dev);
	drop_fill(r, skb, dev, location, reason);
	if (need_queue() && dev && bpf_core_type_exists(struct tun_struct)) {
		tun = vp_netdev_priv(dev);
		r->num[S_QUEUES] = BPF_CORE_READ(tun, numqueues);
		/* tun_net_xmit(): tfile = tun->tfiles[skb->queue_mapping] */
		txq = BPF_CORE_READ(skb, queue_mapping);
		r->num[S_QUEUE] = txq;
		if (txq < MAX_QUEUES)
			bpf_probe_read_kernel(&tfile, sizeof(tfile),
					      (char *)tun +
						      bpf_core_field_offset(struct tun_struct, tfiles) +
						      txq * sizeof(tfile));
		/* NULL: no queue attached (DEV_READY); no ring to show */
		if (tfile)
			ring_fill(r, &tfile->tx_ring);
	}
	vp_submit_skb(r, skb);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(vp_mvtap_btf, struct sk_buff *skb, void *location, unsigned int reason)
{
	mvtap_drop(skb, (__u64)location, reason);
	return 0;
}

SEC("tracepoint/skb/kfree_skb")
int vp_mvtap_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u64 reason = 0;

	/* `reason` appeared in 5.17; older kernels only say "dropped". */
	if (bpf_core_field_exists(ctx->reason))
		reason = ctx->reason;
	mvtap_drop((struct sk_buff *)ctx->skbaddr, (__u64)ctx->location, reason);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(vp_tun_btf, struct sk_buff *skb, void *location, unsigned int reason)
{
	tun_drop(skb, (__u64)location, reason);
	return 0;
}

SEC("tracepoint/skb/kfree_skb")
int vp_tun_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u64 reason = 0;

	if (bpf_core_field_exists(ctx->reason))
		reason = ctx->reason;
	tun_drop((struct sk_buff *)ctx->skbaddr, (__u64)ctx->location, reason);
	return 0;
}

/*
 * The rx_dropped counting path: tap_handle_frame()'s drop label calls
 * tap->count_rx_dropped, which for a macvtap is macvtap_count_rx_dropped()
 * (through a function pointer, so never inlined). Exactly one call per
 * rx_dropped increment, no kallsyms needed, but no skb: the queue is the one
 * whose ring is full (the first among the first SCAN_QUEUES), else queue 0;
 * the reason is FULL_RING when that ring is full, else NOT_SPECIFIED; the
 * location is the counting function. fentry needs 5.5, kprobe any kernel;
 * bpf_get_func_ip() 5.15 (older: location 0).
 */
#define SCAN_QUEUES 8

static __always_inline int ring_full(struct tap_queue *q)
{
	struct ptr_ring *ring = &q->ring;
	__u32 size = BPF_CORE_READ(ring, size);
	__u32 producer = BPF_CORE_READ(ring, producer);
	void **queue = BPF_CORE_READ(ring, queue);
	void *entry = NULL;

	if (!size || producer >= size || !queue)
		return 0;
	bpf_probe_read_kernel(&entry, sizeof(entry), queue + producer);
	return entry != NULL;
}

static __always_inline void count_rx_dropped(struct tap_dev *tap, __u64 location)
{
	struct net_device *dev;
	struct vp_rec *r;
	__u32 idx = 0, full = 0;
	int numvtaps;

	r = vp_rec_init();
	if (!r || !tap)
		return;
	dev = BPF_CORE_READ(tap, dev);
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev(r, dev, S_IFINDEX, S_NETNS);
	r->num[S_LOCATION] = location;
	/* one call per rx_dropped increment */
	r->num[S_COUNTED] = COUNTED_YES;
	numvtaps = BPF_CORE_READ(tap, numvtaps);
	if (numvtaps > 0 && numvtaps <= MAX_QUEUES) {
		r->num[S_QUEUES] = numvtaps;
		for (__u32 i = 0; i < SCAN_QUEUES; i++) {
			struct tap_queue *q = NULL;

			if (i >= (__u32)numvtaps)
				break;
			bpf_probe_read_kernel(&q, sizeof(q),
					      (char *)tap + bpf_core_field_offset(struct tap_dev, taps) +
						      i * sizeof(q));
			if (q && ring_full(q)) {
				idx = i;
				full = 1;
				break;
			}
		}
		if (need_queue())
			tap_ring_fill(r, tap, idx);
	}
	r->num[S_REASON] = full ? bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_FULL_RING)
				: bpf_core_enum_value(enum skb_drop_reason,
						      SKB_DROP_REASON_NOT_SPECIFIED);
	vp_submit(r);
}

SEC("fentry/macvtap_count_rx_dropped")
int BPF_PROG(vp_mvtap_fentry, struct tap_dev *tap)
{
	count_rx_dropped(tap, bpf_get_func_ip(ctx));
	return 0;
}

SEC("kprobe/macvtap_count_rx_dropped")
int vp_mvtap_kprobe(struct pt_regs *ctx)
{
	count_rx_dropped((struct tap_dev *)PT_REGS_PARM1(ctx), bpf_get_func_ip(ctx));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
