/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A packet's flow and TCP segment from its own headers, for the drop
 * programs (tap.bpf.c, skb_drop.bpf.c): addresses and ports, and for TCP the
 * sequence and acknowledgment numbers, the flags and the payload length, so
 * a drop can be matched with the retransmission that repairs it.
 *
 * The network header offset is set on both the receive and the transmit
 * path; a packet without one (0xffff) fills nothing. IPv6 extension headers
 * are not walked: TCP or UDP must be the first next header.
 */
#ifndef __VPROBE_PKT_BPF_H
#define __VPROBE_PKT_BPF_H

#include "vprobe.bpf.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* Slot numbers of the flow fields in one program's record. saddr and daddr
 * are addr[] slots; the TCP ones are -1 where a program has none. */
struct vp_flow_slots {
	int sport;
	int dport;
	int seq;
	int ack;
	int tcp_flags;
	int tcp_len;
	int saddr;
	int daddr;
};

static __always_inline int vp_need_flow(const struct vp_flow_slots s)
{
	return vp_need(s.sport) || vp_need(s.dport) || vp_need(VP_KEY_ADDR(s.saddr)) ||
	       vp_need(VP_KEY_ADDR(s.daddr)) || (s.seq >= 0 && vp_need(s.seq)) ||
	       (s.ack >= 0 && vp_need(s.ack)) || (s.tcp_flags >= 0 && vp_need(s.tcp_flags)) ||
	       (s.tcp_len >= 0 && vp_need(s.tcp_len));
}

/* The headers as read, one bpf_probe_read_kernel() each. */
struct vp_ipv4_hdr {
	__u8 vihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct vp_ipv6_hdr {
	__u32 vtc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* From the source port to the flags: what the record keeps of a TCP header. */
struct vp_tcp_hdr {
	__u16 sport;
	__u16 dport;
	__u32 seq;
	__u32 ack;
	__u8 doff;
	__u8 flags;
} __attribute__((packed));

/*
 * Addresses (IPv4 as ::ffff:a.b.c.d), TCP/UDP ports and the TCP segment.
 * Each header is read whole, in one call: a bpf_probe_read_kernel() costs
 * ~40 ns whatever its size, and reading field by field (eight calls for an
 * IPv4 TCP segment) made the flow ~300 ns of a drop event's cost.
 */
static __always_inline void vp_fill_flow(struct vp_rec *r, struct sk_buff *skb,
					 const struct vp_flow_slots s)
{
	unsigned char *head;
	__u16 nh, proto;
	__u8 l4;
	__u32 th, ip_payload; /* TCP header offset; bytes after the IP header */
	union {
		struct vp_ipv4_hdr v4;
		struct vp_ipv6_hdr v6;
		struct vp_tcp_hdr tcp;
		__u16 ports[2];
	} h;

	/* nothing read from the packet unless a flow field is used: the
	 * common case, a count keyed by reason, pays nothing for it */
	if (!vp_need_flow(s))
		return;
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (!head || nh == (__u16)~0U)
		return;
	if (proto == ETH_P_IP) {
		__u32 ihl;
		__u16 tot;

		if (bpf_probe_read_kernel(&h.v4, sizeof(h.v4), head + nh))
			return;
		vp_v4_mapped(r->addr[s.saddr & (VP_ADDR - 1)], h.v4.saddr);
		vp_v4_mapped(r->addr[s.daddr & (VP_ADDR - 1)], h.v4.daddr);
		/* ports only in the first fragment */
		if (bpf_ntohs(h.v4.frag_off) & 0x1fff)
			return;
		l4 = h.v4.protocol;
		ihl = (h.v4.vihl & 0xf) * 4;
		th = nh + ihl;
		tot = bpf_ntohs(h.v4.tot_len);
		ip_payload = tot > ihl ? tot - ihl : 0;
	} else if (proto == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(&h.v6, sizeof(h.v6), head + nh))
			return;
		__builtin_memcpy(r->addr[s.saddr & (VP_ADDR - 1)], h.v6.saddr, 16);
		__builtin_memcpy(r->addr[s.daddr & (VP_ADDR - 1)], h.v6.daddr, 16);
		l4 = h.v6.nexthdr;
		th = nh + 40;
		ip_payload = bpf_ntohs(h.v6.payload_len);
	} else {
		return;
	}
	if (l4 == IPPROTO_UDP || s.seq < 0) {
		if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
			return;
		if (bpf_probe_read_kernel(h.ports, sizeof(h.ports), head + th))
			return;
		r->num[VP_SLOT(s.sport)] = bpf_ntohs(h.ports[0]);
		r->num[VP_SLOT(s.dport)] = bpf_ntohs(h.ports[1]);
		return;
	}
	if (l4 != IPPROTO_TCP)
		return;
	if (bpf_probe_read_kernel(&h.tcp, sizeof(h.tcp), head + th))
		return;
	r->num[VP_SLOT(s.sport)] = bpf_ntohs(h.tcp.sport);
	r->num[VP_SLOT(s.dport)] = bpf_ntohs(h.tcp.dport);
	r->num[VP_SLOT(s.seq)] = bpf_ntohl(h.tcp.seq);
	r->num[VP_SLOT(s.ack)] = bpf_ntohl(h.tcp.ack);
	r->num[VP_SLOT(s.tcp_flags)] = h.tcp.flags;
	/* the payload: what follows the TCP header (data offset in words) */
	if (ip_payload > (__u32)(h.tcp.doff >> 4) * 4)
		r->num[VP_SLOT(s.tcp_len)] = ip_payload - (h.tcp.doff >> 4) * 4;
}

#endif /* __VPROBE_PKT_BPF_H */
