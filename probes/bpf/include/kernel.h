/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Minimal kernel structure definitions for CO-RE. Only the members vprobe reads
 * are declared; preserve_access_index makes libbpf/aya relocate every access
 * against the running kernel's BTF, so offsets here do not matter.
 */
#ifndef __VPROBE_KERNEL_H
#define __VPROBE_KERNEL_H

#include <linux/types.h>
#include <linux/bpf.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
	/* the rx handler's private data: the tap_dev of a macvtap/ipvtap */
	void *rx_handler_data;
	/* netdev_priv() since v6.12; before, the private area followed the
	 * struct at ALIGN(sizeof(struct net_device), 32) (vp_netdev_priv()) */
	u8 priv[];
};

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	__u16 protocol;
	__u16 queue_mapping;
	__u32 hash;
	unsigned char *head;
	unsigned char *data;
	__u32 tail; /* sk_buff_data_t: an offset from head on 64-bit kernels */
	__u16 mac_header;
	__u16 network_header;
	char cb[48];
};

struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct sock {
	struct sock_common __sk_common;
};

/* Classic tracepoint records (layouts from the events' format files). */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

/* Only the type name matters to CO-RE; the values come from the kernel's BTF. */
enum skb_drop_reason {
	SKB_DROP_REASON_NOT_SPECIFIED = 2,
	SKB_DROP_REASON_FULL_RING = 80,
};

struct trace_event_raw_kfree_skb {
	struct trace_entry ent;
	void *skbaddr;
	void *location;
	unsigned short protocol;
	/* since 5.17; declared as the enum because CO-RE matches field types too */
	enum skb_drop_reason reason;
	/* since 6.11: the receiving socket, when the drop is on its way in */
	void *rx_sk;
};

struct trace_event_raw_tcp_event_sk_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* tcp_retransmit_skb has its own class since 6.13 (it gained `err`). */
struct trace_event_raw_tcp_retransmit_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
	int err;
};

struct trace_event_raw_net_dev_template {
	struct trace_entry ent;
	void *skbaddr;
	unsigned int len;
	__u32 __data_loc_name;
};

struct trace_event_raw_net_dev_xmit {
	struct trace_entry ent;
	void *skbaddr;
	unsigned int len;
	int rc;
	__u32 __data_loc_name;
};

/* ---- tap/tun queues (probes/bpf/tap.bpf.c) ---- */

/* include/linux/ptr_ring.h; the layout has been stable since 4.16, when
 * tap and tun moved from skb_array to ptr_ring. */
struct ptr_ring {
	int producer;
	int consumer_head;
	int consumer_tail;
	int size;
	int batch;
	void **queue;
};

/* drivers/net/tap.c: one per open of the char device */
struct tap_queue {
	u16 queue_index;
	struct ptr_ring ring;
};

/* include/linux/if_tap.h: dev->rx_handler_data of a macvtap or ipvtap */
struct tap_dev {
	struct net_device *dev;
	struct tap_queue *taps[256];
	int numvtaps;
	int numqueues;
};

/* drivers/net/tun.c: one per attached queue (open of /dev/net/tun) */
struct tun_file {
	struct ptr_ring tx_ring;
};

/* drivers/net/tun.c: netdev_priv() of a tun/tap device */
struct tun_struct {
	struct tun_file *tfiles[256];
	unsigned int numqueues;
};

#pragma clang attribute pop

#endif /* __VPROBE_KERNEL_H */
