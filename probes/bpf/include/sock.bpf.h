/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A socket's identity (ports, addresses, family, state, namespace) into a
 * record, for the socket-side attach points (tcp.bpf.c, sock.bpf.c).
 */
#ifndef __VPROBE_SOCK_BPF_H
#define __VPROBE_SOCK_BPF_H

#include "vprobe.bpf.h"

#define AF_INET 2
#define AF_INET6 10

/* Slot numbers of the socket fields in one program's record; -1 = not recorded.
 * saddr and daddr are addr[] slots. */
struct vp_sock_slots {
	int sport;
	int dport;
	int state;
	int family;
	int netns;
	int saddr;
	int daddr;
};

static __always_inline int vp_need_slot(int slot)
{
	return slot >= 0 && vp_need(slot);
}

/* An address from a classic tracepoint record's sockaddr (sockaddr_in or
 * sockaddr_in6: family, then the port, then the address). */
static __always_inline void vp_sockaddr_addr(__u8 *dst, const __u8 *sa, __u16 family)
{
	if (family == AF_INET6) {
		__builtin_memcpy(dst, sa + 8, 16);
	} else {
		__u32 a;
		__builtin_memcpy(&a, sa + 4, 4);
		vp_v4_mapped(dst, a);
	}
}

/* Local port, remote port, state, family, netns, local and remote address. */
static __always_inline void vp_fill_sock(struct vp_rec *r, const struct sock *sk,
					 const struct vp_sock_slots s)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (vp_need_slot(s.sport))
		r->num[VP_SLOT(s.sport)] = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (vp_need_slot(s.dport))
		r->num[VP_SLOT(s.dport)] = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (vp_need_slot(s.state))
		r->num[VP_SLOT(s.state)] = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (s.family >= 0)
		r->num[VP_SLOT(s.family)] = family;
	if (vp_need_slot(s.netns))
		r->num[VP_SLOT(s.netns)] = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	if (!vp_need(VP_KEY_ADDR(s.saddr)) && !vp_need(VP_KEY_ADDR(s.daddr)))
		return;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->addr[s.saddr & (VP_ADDR - 1)], sk,
				   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->addr[s.daddr & (VP_ADDR - 1)], sk,
				   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		vp_v4_mapped(r->addr[s.saddr & (VP_ADDR - 1)],
			     BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		vp_v4_mapped(r->addr[s.daddr & (VP_ADDR - 1)],
			     BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
}

#endif /* __VPROBE_SOCK_BPF_H */
