// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * kvm.exit: a guest vCPU exited to the host (x86 kvm:kvm_exit), in the
 * context of the VMM's vCPU thread.
 * Slots (keep in sync with probes/src/catalog/kvm.rs):
 *   num[0] reason (isa << 32 | exit_reason: named per ISA in user space)
 *   num[1] exit_reason  num[2] isa  num[3] vcpu  num[4] pid  num[5] tgid
 *   num[6] rip  dev = comm of the vCPU thread
 *
 * Only the classic tracepoint: its record holds the exit reason, which the
 * BTF-typed arguments (vcpu, isa) do not (KVM computes it through a vendor
 * callback). Needs KVM built in or its module loaded (x86); vcpu_id is in the
 * record since 4.x (a CO-RE check).
 */
#include "vprobe.bpf.h"

#define S_REASON 0
#define S_EXIT_REASON 1
#define S_ISA 2
#define S_VCPU 3
#define S_PID 4
#define S_TGID 5
#define S_RIP 6
#define D_COMM VP_KEY_DEV

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct trace_event_raw_kvm_exit {
	struct trace_entry ent;
	unsigned int exit_reason;
	unsigned long guest_rip;
	__u32 isa;
	unsigned int vcpu_id;
};

#pragma clang attribute pop

SEC("tracepoint/kvm/kvm_exit")
int vp_kvm_exit_tp(struct trace_event_raw_kvm_exit *ctx)
{
	struct vp_rec *r = vp_rec_init();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 reason, isa;
	if (!r)
		return 0;
	reason = BPF_CORE_READ(ctx, exit_reason);
	isa = BPF_CORE_READ(ctx, isa);
	r->num[S_REASON] = ((__u64)isa << 32) | reason;
	r->num[S_EXIT_REASON] = reason;
	r->num[S_ISA] = isa;
	if (bpf_core_field_exists(ctx->vcpu_id))
		r->num[S_VCPU] = BPF_CORE_READ(ctx, vcpu_id);
	r->num[S_PID] = (__u32)id;
	r->num[S_TGID] = id >> 32;
	if (vp_need(S_RIP))
		r->num[S_RIP] = BPF_CORE_READ(ctx, guest_rip);
	if (vp_need(D_COMM))
		bpf_get_current_comm(r->dev, VP_DEV_LEN);
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
