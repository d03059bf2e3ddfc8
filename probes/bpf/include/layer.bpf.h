/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The stack layer (tap, tun, bridge, qdisc, ip, tcp, ...) of a kernel text
 * address, looked up in the kernel so that filters and keys on `layer` cost no
 * user-space work per event.
 *
 * `layers` holds runs of kernel text, sorted by start address: run i covers
 * [start(i), start(i+1)) and belongs to layer `layer(i)` (0 = no layer). User
 * space computes the runs once from /proc/kallsyms at attach time (symbol name
 * and module → layer, see probes/src/layers.rs) and fills the map before the
 * program attaches; unused entries have start = ~0, so the table stays sorted
 * and a fixed-depth binary search finds the last run starting at or below an
 * address in log2(VP_LAYER_RUNS) = 13 array lookups.
 *
 * Generic code frees drops on behalf of a layer: on kernels that inline
 * __dev_xmit_skb(), a full qdisc's drops are freed in __dev_queue_xmit(), core
 * code. So runs of generic code (core, other) carry VP_LAYER_GENERIC, and for
 * them a drop reason that names a layer (QDISC_DROP → qdisc, XDP → xdp,
 * TCP_* → tcp; `reason_layers`, filled from the reason names in the kernel's
 * BTF) decides.
 *
 * Keep in sync with probes/src/abi.rs (LayerRun, LAYER_RUNS, REASON_LAYERS,
 * LAYER_GENERIC).
 */
#ifndef __VPROBE_LAYER_BPF_H
#define __VPROBE_LAYER_BPF_H

#include "vprobe.bpf.h"

#define VP_LAYER_RUNS 8192 /* a power of two: the search halves it */
#define VP_REASON_LAYERS 256
#define VP_LAYER_GENERIC 0x100 /* flag on runs of core/other code */
#define VP_LAYER_ID 0xff

struct vp_layer_run {
	__u64 start;
	__u64 layer;
};

/* The loader shrinks it to one entry when `layer` is not needed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VP_LAYER_RUNS);
	__type(key, __u32);
	__type(value, struct vp_layer_run);
} layers SEC(".maps");

/* drop reason → layer, 0 for none; sized like `layers` */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VP_REASON_LAYERS);
	__type(key, __u32);
	__type(value, __u64);
} reason_layers SEC(".maps");

/* Layer of a drop at kernel text address `addr` with drop reason `reason`;
 * 0 when unknown. */
static __always_inline __u64 vp_layer_of(__u64 addr, __u64 reason)
{
	struct vp_layer_run *run;
	__u64 layer, *by_reason;
	__u32 idx = 0, r = reason;

	for (__u32 step = VP_LAYER_RUNS / 2; step; step >>= 1) {
		__u32 k = idx + step;
		run = bpf_map_lookup_elem(&layers, &k);
		if (run && run->start <= addr)
			idx = k;
	}
	run = bpf_map_lookup_elem(&layers, &idx);
	layer = run && run->start <= addr ? run->layer : 0;
	if ((layer & VP_LAYER_GENERIC) && reason < VP_REASON_LAYERS) {
		by_reason = bpf_map_lookup_elem(&reason_layers, &r);
		if (by_reason && *by_reason)
			return *by_reason;
	}
	return layer & VP_LAYER_ID;
}

#endif /* __VPROBE_LAYER_BPF_H */
