// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * napi.poll: one NAPI poll of a device's RX (or TX completion) context in
 * softirq: how much work it did out of its budget.
 * Slots (keep in sync with probes/src/catalog/napi.rs):
 *   num[0] ifindex  num[1] netns  num[2] work  num[3] budget
 *   num[4] exhausted  num[5] napi_id  num[6] cpu  dev
 *
 * Kernels: napi:napi_poll has `work` and `budget` since 4.6; tp_btf with BTF, 5.5+.
 */
#include "vprobe.bpf.h"

#define S_IFINDEX 0
#define S_NETNS 1
#define S_WORK 2
#define S_BUDGET 3
#define S_EXHAUSTED 4
#define S_NAPI_ID 5
#define S_CPU 6
#define D_DEV VP_KEY_DEV

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct napi_struct {
	struct net_device *dev;
	unsigned int napi_id;
};

struct trace_event_raw_napi_poll {
	struct trace_entry ent;
	struct napi_struct *napi;
	__u32 __data_loc_dev_name;
	int work;
	int budget;
};

#pragma clang attribute pop

/* `btf` (a constant): `napi` is a tp_btf program's typed argument (vp_fill_dev_as). */
static __always_inline void napi_rec(struct napi_struct *napi, int work, int budget, int btf)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return;
	if (vp_need_dev(S_IFINDEX, S_NETNS))
		vp_fill_dev_as(r, btf ? napi->dev : BPF_CORE_READ(napi, dev), S_IFINDEX, S_NETNS,
			       btf);
	r->num[S_WORK] = work < 0 ? 0 : work;
	r->num[S_BUDGET] = budget < 0 ? 0 : budget;
	/* A poll that used its whole budget is polled again: the device has more. */
	r->num[S_EXHAUSTED] = budget > 0 && work >= budget;
	/* napi_id: busy-poll ids, unconditional since 4.12 */
	if (vp_need(S_NAPI_ID) && bpf_core_field_exists(napi->napi_id))
		r->num[S_NAPI_ID] = BPF_CORE_READ(napi, napi_id);
	r->num[S_CPU] = bpf_get_smp_processor_id();
	vp_submit(r);
}

SEC("tp_btf/napi_poll")
int BPF_PROG(vp_napi_btf, struct napi_struct *napi, int work, int budget)
{
	napi_rec(napi, work, budget, 1);
	return 0;
}

SEC("tracepoint/napi/napi_poll")
int vp_napi_tp(struct trace_event_raw_napi_poll *ctx)
{
	napi_rec(ctx->napi, ctx->work, ctx->budget, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
