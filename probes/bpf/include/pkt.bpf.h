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

/* Addresses (IPv4 as ::ffff:a.b.c.d), TCP/UDP ports and the TCP segment. */
static __always_inline void vp_fill_flow(struct vp_rec *r, struct sk_buff *skb,
					 const struct vp_flow_slots s)
{
	unsigned char *head;
	__u16 nh, proto;
	__u8 l4 = 0;
	__u32 th, ip_payload; /* TCP header offset; bytes after the IP header */
	__u16 ports[2];
	struct {
		__u32 seq;
		__u32 ack;
		__u8 doff;
		__u8 flags;
	} __attribute__((packed)) tcp;

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
		__u8 vihl = 0;
		__u16 frag = 0, tot = 0;
		__u32 saddr = 0, daddr = 0, ihl;

		bpf_probe_read_kernel(&vihl, 1, head + nh);
		bpf_probe_read_kernel(&tot, 2, head + nh + 2);
		bpf_probe_read_kernel(&frag, 2, head + nh + 6);
		bpf_probe_read_kernel(&l4, 1, head + nh + 9);
		bpf_probe_read_kernel(&saddr, 4, head + nh + 12);
		bpf_probe_read_kernel(&daddr, 4, head + nh + 16);
		vp_v4_mapped(r->addr[s.saddr & (VP_ADDR - 1)], saddr);
		vp_v4_mapped(r->addr[s.daddr & (VP_ADDR - 1)], daddr);
		/* ports only in the first fragment */
		if (bpf_ntohs(frag) & 0x1fff)
			return;
		ihl = (vihl & 0xf) * 4;
		th = nh + ihl;
		tot = bpf_ntohs(tot);
		ip_payload = tot > ihl ? tot - ihl : 0;
	} else if (proto == ETH_P_IPV6) {
		__u16 plen = 0;

		bpf_probe_read_kernel(&plen, 2, head + nh + 4);
		bpf_probe_read_kernel(&l4, 1, head + nh + 6);
		bpf_probe_read_kernel(r->addr[s.saddr & (VP_ADDR - 1)], 16, head + nh + 8);
		bpf_probe_read_kernel(r->addr[s.daddr & (VP_ADDR - 1)], 16, head + nh + 24);
		th = nh + 40;
		ip_payload = bpf_ntohs(plen);
	} else {
		return;
	}
	if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP)
		return;
	if (bpf_probe_read_kernel(ports, sizeof(ports), head + th))
		return;
	r->num[VP_SLOT(s.sport)] = bpf_ntohs(ports[0]);
	r->num[VP_SLOT(s.dport)] = bpf_ntohs(ports[1]);
	if (l4 != IPPROTO_TCP || s.seq < 0)
		return;
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + th + 4))
		return;
	r->num[VP_SLOT(s.seq)] = bpf_ntohl(tcp.seq);
	r->num[VP_SLOT(s.ack)] = bpf_ntohl(tcp.ack);
	r->num[VP_SLOT(s.tcp_flags)] = tcp.flags;
	/* the payload: what follows the TCP header (data offset in words) */
	if (ip_payload > (__u32)(tcp.doff >> 4) * 4)
		r->num[VP_SLOT(s.tcp_len)] = ip_payload - (tcp.doff >> 4) * 4;
}

#endif /* __VPROBE_PKT_BPF_H */
