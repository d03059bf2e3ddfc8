/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * retx_witness: the event record, shared by the program (retx_witness.bpf.c)
 * and its loader (retx_witness.c). Include after the __u64-style types.
 */
#ifndef RETX_WITNESS_H
#define RETX_WITNESS_H

struct ev {
	__u64 ts;
	__u64 sk;
	__u32 seq;
	__u32 total_retrans;
	__s32 err;
	__u16 segs;
	__u16 sport;
	__u16 dport;
	__u16 cpu;
};

#endif /* RETX_WITNESS_H */
