// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcp.retransmit: every TCP segment retransmission (tcp_retransmit_skb) and
 * every SYN-ACK a listener sends again (tcp_retransmit_synack, a companion),
 * with the segment: sequence, payload length, segments (what TcpRetransSegs
 * adds), the error (6.13+: the tracepoint also fires for attempts not made,
 * which the kernel does not count, and for transmits that failed, which it
 * counts in TcpRetransSegs and TCPRetransFail) and the kind.
 * tcp.probe: every segment an established socket receives (tcp_rcv_established),
 * with the sender-side state: smoothed RTT, congestion window, windows.
 * Slots (keep in sync with probes/src/catalog/tcp.rs):
 *   num[0] sport  num[1] dport  num[2] state  num[3] family  num[4] netns
 *   addr[0] saddr addr[1] daddr  (IPv4 as ::ffff:a.b.c.d)  num[11] len
 *   tcp.probe also: num[5] srtt (ns)  num[6] rttvar (ns)  num[7] cwnd
 *   num[8] ssthresh  num[9] snd_wnd  num[10] rcv_wnd
 *   num[12] snd_nxt  num[13] snd_una  num[14] mark
 *   tcp.retransmit also: num[15] seq  num[16] ack  num[17] segs  num[18] err
 *   num[19] kind  num[20] tcp_flags
 *
 * The retransmitted skb is the one in the write queue: it has no headers yet
 * (tcp_transmit_skb() builds them on a clone), so the segment comes from its
 * control block (TCP_SKB_CB) and the socket, and a capture of it is the
 * header user space writes from these fields (engine/src/output/pcap.rs).
 *
 * Kernels: tcp:tcp_retransmit_skb since 4.15, tcp:tcp_retransmit_synack since
 * 4.15, tcp:tcp_probe since 4.16 (as tp_btf with BTF, 5.5+). Where the classic
 * tcp_probe record carries the socket (skaddr, recent kernels; a CO-RE check)
 * every field is read from it; from older records state, netns and rttvar read 0.
 */
#include "sock.bpf.h"

#define S_SPORT 0
#define S_DPORT 1
#define S_STATE 2
#define S_FAMILY 3
#define S_NETNS 4
#define S_SRTT 5
#define S_RTTVAR 6
#define S_CWND 7
#define S_SSTHRESH 8
#define S_SND_WND 9
#define S_RCV_WND 10
#define S_LEN 11
#define S_SND_NXT 12
#define S_SND_UNA 13
#define S_MARK 14
#define S_SEQ 15
#define S_ACK 16
#define S_SEGS 17
#define S_ERR 18
#define S_KIND 19
#define S_TCP_FLAGS 20
#define A_SADDR 0
#define A_DADDR 1

/* Shared with tcp.probe: the same slots for the same socket fields. */
#define SOCK_SLOTS                                                                                 \
	((struct vp_sock_slots){                                                                   \
		.sport = S_SPORT, .dport = S_DPORT, .state = S_STATE, .family = S_FAMILY,          \
		.netns = S_NETNS, .saddr = A_SADDR, .daddr = A_DADDR })

/* Retransmission kinds (the catalog's RetransmitKind names them). */
#define KIND_OTHER 0
#define KIND_TIMEOUT 1 /* after an RTO: the socket is in loss recovery (TCP_CA_Loss) */
#define KIND_PROBE 2   /* a tail-loss probe: the timer that fired is ICSK_TIME_LOSS_PROBE */
#define KIND_FAST 3    /* fast retransmit / recovery (TCP_CA_Recovery) */
#define KIND_SYN 4     /* a SYN again (connect) */
#define KIND_SYNACK 5  /* a SYN-ACK again (a listener's request) */

#define TCP_CA_RECOVERY 3
#define TCP_CA_LOSS 4
#define ICSK_TIME_LOSS_PROBE 5

#define TCPHDR_FIN 0x01
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* include/net/tcp.h: skb->cb of a TCP skb in the write queue */
struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	union {
		struct {
			__u16 tcp_gso_segs; /* tcp_skb_pcount() */
			__u16 tcp_gso_size;
		};
	};
	__u8 tcp_flags; /* __u16 since 6.16: read with BPF_CORE_READ_BITFIELD_PROBED */
};

struct inet_connection_sock {
	__u8 icsk_ca_state : 5;
	__u8 icsk_pending;
};

struct tcp_sock___retx {
	__u32 rcv_nxt;
};

struct tcp_request_sock {
	__u32 rcv_nxt;
	__u32 snt_isn;
};

struct trace_event_raw_tcp_retransmit_synack {
	struct trace_entry ent;
	const void *skaddr;
	const void *req;
};

#pragma clang attribute pop

/* The segment, from the skb's control block; its kind, from the socket. */
static __always_inline void retx_fill(struct vp_rec *r, const struct sock *sk,
				      const struct sk_buff *skb, int err)
{
	const struct tcp_skb_cb *cb =
		(const void *)((const char *)skb + bpf_core_field_offset(struct sk_buff, cb));
	const struct inet_connection_sock *icsk = (const void *)sk;
	__u32 seq = BPF_CORE_READ(cb, seq), end = BPF_CORE_READ(cb, end_seq);
	__u32 flags = BPF_CORE_READ_BITFIELD_PROBED(cb, tcp_flags);
	__u32 len = end - seq;
	__u64 kind = KIND_OTHER;

	/* SYN and FIN take a sequence number each but carry no byte */
	if (flags & TCPHDR_SYN)
		len = len ? len - 1 : 0;
	if (flags & TCPHDR_FIN)
		len = len ? len - 1 : 0;
	r->num[S_SEQ] = seq;
	r->num[S_LEN] = len;
	r->num[S_TCP_FLAGS] = flags & 0xff;
	r->num[S_SEGS] = BPF_CORE_READ(cb, tcp_gso_segs);
	r->num[S_ERR] = (__u64)(__s64)err;
	if (vp_need(S_ACK))
		r->num[S_ACK] = BPF_CORE_READ((const struct tcp_sock___retx *)sk, rcv_nxt);
	if (flags & TCPHDR_SYN) {
		kind = (flags & TCPHDR_ACK) ? KIND_SYNACK : KIND_SYN;
	} else {
		/* tcp_write_timer_handler() clears icsk_pending before an RTO,
		 * not before tcp_send_loss_probe() */
		__u8 pending = BPF_CORE_READ(icsk, icsk_pending);
		__u8 ca = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);

		if (pending == ICSK_TIME_LOSS_PROBE)
			kind = KIND_PROBE;
		else if (ca == TCP_CA_LOSS)
			kind = KIND_TIMEOUT;
		else if (ca == TCP_CA_RECOVERY)
			kind = KIND_FAST;
	}
	r->num[S_KIND] = kind;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(vp_retx_btf, const struct sock *sk, const struct sk_buff *skb)
{
	struct vp_rec *r = vp_rec_init();
	int err = 0;

	if (!r)
		return 0;
	/* A third argument, err, since 6.13 (the event got its own class then):
	 * a CO-RE constant, so older kernels never see the read of ctx[2]. */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb))
		err = (int)ctx[2];
	vp_fill_sock(r, sk, SOCK_SLOTS);
	retx_fill(r, sk, skb, err);
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
	const struct sk_buff *skb;
	int err = 0;

	if (!r)
		return 0;
	/* Its own event class since 6.13 (added `err`); tcp_event_sk_skb before. */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *t = ctx;

		sk = BPF_CORE_READ(t, skaddr);
		skb = BPF_CORE_READ(t, skbaddr);
		err = BPF_CORE_READ(t, err);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *t = ctx;

		sk = BPF_CORE_READ(t, skaddr);
		skb = BPF_CORE_READ(t, skbaddr);
	}
	vp_fill_sock(r, sk, SOCK_SLOTS);
	retx_fill(r, sk, skb, err);
	vp_submit(r);
	return 0;
}

/*
 * A SYN-ACK sent again (tcp_rtx_synack(), which counts it in TcpRetransSegs
 * without tcp_retransmit_skb firing): the request sock starts with the same
 * sock_common as a socket, so its ports and addresses read the same way.
 */
static __always_inline void synack(const struct sock *req)
{
	struct vp_rec *r = vp_rec_init();

	if (!r)
		return;
	vp_fill_sock(r, req, SOCK_SLOTS);
	r->num[S_SEQ] = BPF_CORE_READ((const struct tcp_request_sock *)req, snt_isn);
	if (vp_need(S_ACK))
		r->num[S_ACK] = BPF_CORE_READ((const struct tcp_request_sock *)req, rcv_nxt);
	r->num[S_SEGS] = 1;
	r->num[S_TCP_FLAGS] = TCPHDR_SYN | TCPHDR_ACK;
	r->num[S_KIND] = KIND_SYNACK;
	vp_submit(r);
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(vp_synack_btf, const struct sock *sk, const struct sock *req)
{
	synack(req);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_synack")
int vp_synack_tp(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	synack(BPF_CORE_READ(ctx, req));
	return 0;
}

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct tcp_sock {
	__u32 srtt_us;  /* smoothed RTT << 3, in us */
	__u32 mdev_us;  /* mean deviation << 2, in us */
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 snd_nxt;
	__u32 snd_una;
};

/* local flavors: kernel.h declares only what the other programs read */
struct sock___probe {
	__u32 sk_mark;
};

struct sk_buff___probe {
	unsigned char *data;
};

struct trace_event_raw_tcp_probe {
	struct trace_entry ent;
	__u8 saddr[28]; /* struct sockaddr_in or sockaddr_in6 */
	__u8 daddr[28];
	__u16 sport;
	__u16 dport;
	__u16 family; /* a CO-RE check: older records have none */
	__u32 mark;
	__u16 data_len;
	__u32 snd_nxt;
	__u32 snd_una;
	__u32 snd_cwnd;
	__u32 ssthresh;
	__u32 snd_wnd;
	__u32 srtt; /* us */
	__u32 rcv_wnd;
	const void *skaddr; /* a CO-RE check: recent records only */
};

#pragma clang attribute pop

/* Sender state of a TCP socket, from struct tcp_sock. */
static __always_inline void probe_fill_tp(struct vp_rec *r, const struct sock *sk)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	if (vp_need(S_SRTT))
		r->num[S_SRTT] = (__u64)(BPF_CORE_READ(tp, srtt_us) >> 3) * 1000;
	if (vp_need(S_RTTVAR))
		r->num[S_RTTVAR] = (__u64)(BPF_CORE_READ(tp, mdev_us) >> 2) * 1000;
	if (vp_need(S_CWND))
		r->num[S_CWND] = BPF_CORE_READ(tp, snd_cwnd);
	if (vp_need(S_SSTHRESH))
		r->num[S_SSTHRESH] = BPF_CORE_READ(tp, snd_ssthresh);
	if (vp_need(S_SND_WND))
		r->num[S_SND_WND] = BPF_CORE_READ(tp, snd_wnd);
	if (vp_need(S_RCV_WND))
		r->num[S_RCV_WND] = BPF_CORE_READ(tp, rcv_wnd);
	if (vp_need(S_SND_NXT))
		r->num[S_SND_NXT] = BPF_CORE_READ(tp, snd_nxt);
	if (vp_need(S_SND_UNA))
		r->num[S_SND_UNA] = BPF_CORE_READ(tp, snd_una);
	if (vp_need(S_MARK))
		r->num[S_MARK] = BPF_CORE_READ((const struct sock___probe *)sk, sk_mark);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(vp_probe_btf, const struct sock *sk, const struct sk_buff *skb)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	vp_fill_sock(r, sk, SOCK_SLOTS);
	probe_fill_tp(r, sk);
	if (vp_need(S_LEN)) {
		/* As the classic record computes it: payload after the TCP header
		 * (skb->data points at the TCP header in tcp_rcv_established()). */
		const unsigned char *th = BPF_CORE_READ((const struct sk_buff___probe *)skb, data);
		__u8 doff = 0;
		__u32 len = BPF_CORE_READ(skb, len);
		bpf_probe_read_kernel(&doff, 1, th + 12);
		doff = (doff >> 4) * 4;
		r->num[S_LEN] = len > doff ? len - doff : 0;
	}
	vp_submit(r);
	return 0;
}

SEC("tracepoint/tcp/tcp_probe")
int vp_probe_tp(struct trace_event_raw_tcp_probe *ctx)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
	if (bpf_core_field_exists(ctx->skaddr)) {
		const struct sock *sk = BPF_CORE_READ(ctx, skaddr);
		vp_fill_sock(r, sk, SOCK_SLOTS);
		probe_fill_tp(r, sk);
	} else {
		__u16 family = AF_INET;
		__u8 sa[28], da[28];
		if (bpf_core_field_exists(ctx->family))
			family = BPF_CORE_READ(ctx, family);
		r->num[S_SPORT] = BPF_CORE_READ(ctx, sport);
		r->num[S_DPORT] = BPF_CORE_READ(ctx, dport);
		r->num[S_FAMILY] = family;
		r->num[S_SRTT] = (__u64)BPF_CORE_READ(ctx, srtt) * 1000;
		r->num[S_CWND] = BPF_CORE_READ(ctx, snd_cwnd);
		r->num[S_SSTHRESH] = BPF_CORE_READ(ctx, ssthresh);
		r->num[S_SND_WND] = BPF_CORE_READ(ctx, snd_wnd);
		r->num[S_RCV_WND] = BPF_CORE_READ(ctx, rcv_wnd);
		r->num[S_SND_NXT] = BPF_CORE_READ(ctx, snd_nxt);
		r->num[S_SND_UNA] = BPF_CORE_READ(ctx, snd_una);
		r->num[S_MARK] = BPF_CORE_READ(ctx, mark);
		if (vp_need(VP_KEY_ADDR(A_SADDR)) || vp_need(VP_KEY_ADDR(A_DADDR))) {
			BPF_CORE_READ_INTO(&sa, ctx, saddr);
			BPF_CORE_READ_INTO(&da, ctx, daddr);
			vp_sockaddr_addr(r->addr[A_SADDR], sa, family);
			vp_sockaddr_addr(r->addr[A_DADDR], da, family);
		}
	}
	r->num[S_LEN] = BPF_CORE_READ(ctx, data_len);
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
