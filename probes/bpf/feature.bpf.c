// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Feature probes for `vprobe doctor`: the smallest programs of each kind whose
 * load tells whether the kernel allows that mechanism. Never attached.
 */
#include "vprobe.bpf.h"

SEC("fentry/tcp_retransmit_skb")
int BPF_PROG(vp_feat_fentry)
{
	return 0;
}

SEC("kprobe/tcp_retransmit_skb")
int vp_feat_kprobe(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
