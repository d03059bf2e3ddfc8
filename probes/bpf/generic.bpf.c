// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The generic attach points: `tracepoint:CAT:NAME` (any classic tracepoint,
 * read field by field as its format file lays the record out) and
 * `kprobe:FUNC` / `fentry:FUNC` / `uprobe:PATH:SYMBOL` (count and latency).
 *
 * Tracepoint slots: chosen per request by the loader (settings.raw_*), see
 * engine/src/generic/.
 * Function slots (keep in sync with probes/src/catalog/generic.rs, FUNC_FIELDS):
 *   num[0] pid  num[1] tid  num[2] latency (ns)  dev comm
 */
/* address slots may hold strings here: prefix filters on them (vp_addr_match) */
#define VP_ADDR_STRINGS
#include "vprobe.bpf.h"

#define S_PID 0
#define S_TID 1
#define S_LATENCY 2
#define D_COMM VP_KEY_DEV

/* ---- tracepoint:CAT:NAME ------------------------------------------------ */

/*
 * The record is kernel memory laid out as the format file says; the offsets
 * are load-time constants, so each read below is a fixed-size probe read.
 */
static __always_inline __u64 raw_num(void *ctx, const volatile struct vp_raw *f)
{
	const void *p = (const void *)((__u64)ctx + f->offset);
	int sign = f->read == VP_READ_SIGNED;

	switch (f->size) {
	case 1: {
		__u8 v = 0;
		bpf_probe_read_kernel(&v, 1, p);
		return sign ? (__u64)(__s64)(__s8)v : v;
	}
	case 2: {
		__u16 v = 0;
		bpf_probe_read_kernel(&v, 2, p);
		return sign ? (__u64)(__s64)(__s16)v : v;
	}
	case 4: {
		__u32 v = 0;
		bpf_probe_read_kernel(&v, 4, p);
		return sign ? (__u64)(__s64)(__s32)v : v;
	}
	case 8: {
		__u64 v = 0;
		bpf_probe_read_kernel(&v, 8, p);
		return v;
	}
	}
	return 0;
}

/* Fills a 16-byte slot: a string (truncated to 15 bytes + NUL) or an address. */
static __always_inline void raw_str(void *ctx, const volatile struct vp_raw *f, __u8 *dst)
{
	__u64 base = (__u64)ctx;
	__u32 off = f->offset, size = f->size, loc = 0;

	switch (f->read) {
	case VP_READ_CHARS:
		if (size > 16)
			size = 16;
		if (size)
			bpf_probe_read_kernel_str(dst, size, (const void *)(base + off));
		return;
	case VP_READ_DATA_LOC:
	case VP_READ_REL_LOC:
		bpf_probe_read_kernel(&loc, 4, (const void *)(base + off));
		if (!(loc >> 16))
			return; /* empty */
		if (f->read == VP_READ_REL_LOC)
			base += off + 4;
		bpf_probe_read_kernel_str(dst, 16, (const void *)(base + (loc & 0xffff)));
		return;
	case VP_READ_IPV4:
		dst[10] = 0xff;
		dst[11] = 0xff;
		bpf_probe_read_kernel(dst + 12, 4, (const void *)(base + off));
		return;
	case VP_READ_BYTES:
		bpf_probe_read_kernel(dst, 16, (const void *)(base + off));
		return;
	}
}

SEC("tracepoint")
int vp_tracepoint(void *ctx)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return 0;
#pragma unroll
	for (int i = 0; i < VP_NUM; i++) {
		if (vp_need(i) && settings.raw_num[i].size)
			r->num[i] = raw_num(ctx, &settings.raw_num[i]);
	}
#pragma unroll
	for (int i = 0; i < VP_ADDR; i++) {
		if (vp_need(VP_KEY_ADDR0 + i) && settings.raw_addr[i].size)
			raw_str(ctx, &settings.raw_addr[i], r->addr[i]);
	}
	if (vp_need(VP_KEY_DEV) && settings.raw_dev.size)
		raw_str(ctx, &settings.raw_dev, (__u8 *)r->dev);
	vp_submit(r);
	return 0;
}

/* ---- kprobe:FUNC, fentry:FUNC, uprobe:PATH:SYMBOL ------------------------ */

/* Entry timestamps by thread, for latency (settings.timing). An LRU map: a
 * thread that never returns (exit, longjmp) cannot fill it for good. The
 * loader sizes it when timing; otherwise it stays tiny. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} starts SEC(".maps");

static __always_inline void fn_submit(__u64 id, __u64 latency)
{
	struct vp_rec *r = vp_rec_init();
	if (!r)
		return;
	r->num[S_PID] = id >> 32;
	r->num[S_TID] = (__u32)id;
	r->num[S_LATENCY] = latency;
	if (vp_need(D_COMM))
		bpf_get_current_comm(r->dev, sizeof(r->dev));
	vp_submit(r);
}

static __always_inline int fn_entry(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	if (settings.timing) {
		__u64 ts = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&starts, &id, &ts, BPF_ANY))
			vp_tally(VP_LOSS_MAP_FULL);
		return 0;
	}
	fn_submit(id, 0);
	return 0;
}

/* A return without a stored entry (a call already running when the probe was
 * attached) is skipped: its latency is unknown. Recursion keeps the innermost. */
static __always_inline int fn_exit(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns(), t0;
	__u64 *ts = bpf_map_lookup_elem(&starts, &id);

	if (!ts)
		return 0;
	t0 = *ts;
	bpf_map_delete_elem(&starts, &id);
	fn_submit(id, now - t0);
	return 0;
}

SEC("kprobe")
int vp_kprobe(void *ctx)
{
	return fn_entry();
}

SEC("kretprobe")
int vp_kretprobe(void *ctx)
{
	return fn_exit();
}

SEC("fentry")
int BPF_PROG(vp_fentry)
{
	return fn_entry();
}

SEC("fexit")
int BPF_PROG(vp_fexit)
{
	return fn_exit();
}

SEC("uprobe")
int vp_uprobe(void *ctx)
{
	return fn_entry();
}

SEC("uretprobe")
int vp_uretprobe(void *ctx)
{
	return fn_exit();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
