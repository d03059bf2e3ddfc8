// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sched.wakeup_latency: how long a thread waited for a CPU after it was woken
 * (wakeup -> switched in), for threads whose name matches the comm filter
 * (like libbpf-tools runqslower/runqlat, wakeups only). A vhost-net worker
 * that runs late lets a macvtap ring fill.
 *
 * sched_wakeup / sched_wakeup_new stamp the woken thread in `start` (only
 * threads that pass the comm and pid filters, so the map stays small);
 * sched_switch measures when a stamped thread is switched in, and forgets
 * the stamp of the thread switched out (a wakeup of a thread that was still
 * running is not a wait).
 * Slots (keep in sync with probes/src/catalog/sched.rs):
 *   num[0] pid  num[1] tgid  num[2] latency (ns)  num[3] cpu  num[4] prio
 *   num[5] prev_pid  dev = comm
 *
 * Kernels: tp_btf with BTF, 5.5+ (sched_switch gained a 4th argument in 5.18;
 * only the first three are read). Classic tracepoints everywhere; their
 * records do not carry the tgid, which then reads 0.
 */
#include "vprobe.bpf.h"

#define S_PID 0
#define S_TGID 1
#define S_LATENCY 2
#define S_CPU 3
#define S_PRIO 4
#define S_PREV_PID 5
#define D_COMM VP_KEY_DEV

#define TASK_COMM_LEN 16

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct task_struct___sched {
	int prio;
	int pid;
	int tgid;
	char comm[TASK_COMM_LEN];
};

struct trace_event_raw_sched_wakeup_template {
	struct trace_entry ent;
	char comm[TASK_COMM_LEN];
	int pid;
};

struct trace_event_raw_sched_switch {
	struct trace_entry ent;
	char prev_comm[TASK_COMM_LEN];
	int prev_pid;
	char next_comm[TASK_COMM_LEN];
	int next_pid;
	int next_prio;
};

#pragma clang attribute pop

/* Wakeup time of each stamped thread, by tid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/* Whether `v` passes the filter on numeric slot `i` (vp_submit checks all
 * slots at once, which a wakeup cannot: its latency is not known yet). */
static __always_inline int slot_match(int i, __u64 v)
{
	__u32 n = settings.filter_n[VP_SLOT(i)];
	int ok = 0;
	if (!n)
		return 1;
#pragma unroll
	for (int j = 0; j < VP_FILTER_MAX; j++) {
		if (j < n && v >= settings.filter_lo[VP_SLOT(i)][j] &&
		    v <= settings.filter_hi[VP_SLOT(i)][j])
			ok = 1;
	}
	return ok;
}

/* `comm` is kernel memory (a task's or a tracepoint record's). */
static __always_inline void stamp(__u32 pid, __u32 tgid, int has_tgid, const char *comm)
{
	__u64 ts;

	if (!pid || !slot_match(S_PID, pid))
		return;
	if (has_tgid && !slot_match(S_TGID, tgid))
		return;
	if (settings.dev_filter_n) {
		struct vp_rec *r = vp_rec_init();
		if (!r)
			return;
		bpf_probe_read_kernel_str(r->dev, VP_DEV_LEN, comm);
		if (!vp_dev_match(r))
			return;
	}
	ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&start, &pid, &ts, BPF_ANY))
		vp_tally(VP_LOSS_MAP_FULL);
}

/* Returns the record of a measured wakeup of `next`, or NULL. */
static __always_inline struct vp_rec *measure(__u32 prev_pid, __u32 next_pid)
{
	struct vp_rec *r;
	__u64 *tsp, delta;

	if (prev_pid)
		bpf_map_delete_elem(&start, &prev_pid);
	if (!next_pid)
		return NULL;
	tsp = bpf_map_lookup_elem(&start, &next_pid);
	if (!tsp)
		return NULL;
	delta = bpf_ktime_get_ns() - *tsp;
	bpf_map_delete_elem(&start, &next_pid);
	r = vp_rec_init();
	if (!r)
		return NULL;
	r->num[S_PID] = next_pid;
	r->num[S_LATENCY] = (__s64)delta < 0 ? 0 : delta;
	r->num[S_CPU] = bpf_get_smp_processor_id();
	r->num[S_PREV_PID] = prev_pid;
	return r;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(vp_wakeup_btf, struct task_struct___sched *p)
{
	stamp(BPF_CORE_READ(p, pid), BPF_CORE_READ(p, tgid), 1, p->comm);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(vp_wakeup_new_btf, struct task_struct___sched *p)
{
	stamp(BPF_CORE_READ(p, pid), BPF_CORE_READ(p, tgid), 1, p->comm);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(vp_wakelat_btf, _Bool preempt, struct task_struct___sched *prev,
	     struct task_struct___sched *next)
{
	struct vp_rec *r = measure(BPF_CORE_READ(prev, pid), BPF_CORE_READ(next, pid));
	if (!r)
		return 0;
	r->num[S_TGID] = BPF_CORE_READ(next, tgid);
	r->num[S_PRIO] = BPF_CORE_READ(next, prio);
	if (vp_need(D_COMM))
		bpf_probe_read_kernel_str(r->dev, VP_DEV_LEN, next->comm);
	vp_submit(r);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int vp_wakeup_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	stamp(ctx->pid, 0, 0, ctx->comm);
	return 0;
}

SEC("tracepoint/sched/sched_wakeup_new")
int vp_wakeup_new_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	stamp(ctx->pid, 0, 0, ctx->comm);
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int vp_wakelat_tp(struct trace_event_raw_sched_switch *ctx)
{
	struct vp_rec *r = measure(ctx->prev_pid, ctx->next_pid);
	if (!r)
		return 0;
	r->num[S_PRIO] = ctx->next_prio;
	if (vp_need(D_COMM))
		bpf_probe_read_kernel_str(r->dev, VP_DEV_LEN, ctx->next_comm);
	vp_submit(r);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
