/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Drop sites: the kernel text ranges a site-restricted attach point accepts
 * (`macvtap.drop` = the drops in tap_handle_frame, `tun.drop` = those in
 * tun_net_xmit). User space resolves the catalog's site functions in
 * /proc/kallsyms — each function and its compiler-split parts such as
 * `tun_net_xmit.cold` — and fills `sites` before the program attaches, so the
 * restriction runs in the kernel, ahead of any other work.
 *
 * Keep in sync with probes/src/abi.rs (Site, SITES_MAX).
 */
#ifndef __VPROBE_SITES_BPF_H
#define __VPROBE_SITES_BPF_H

#include "vprobe.bpf.h"

#define VP_SITES_MAX 16

/* [lo, hi); hi = 0 ends the list */
struct vp_site {
	__u64 lo;
	__u64 hi;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VP_SITES_MAX);
	__type(key, __u32);
	__type(value, struct vp_site);
} sites SEC(".maps");

/* Whether `addr` lies in one of the sites; never when the list is empty. */
static __always_inline int vp_at_site(__u64 addr)
{
	for (__u32 i = 0; i < VP_SITES_MAX; i++) {
		struct vp_site *s = bpf_map_lookup_elem(&sites, &i);
		if (!s || !s->hi)
			return 0;
		if (addr >= s->lo && addr < s->hi)
			return 1;
	}
	return 0;
}

#endif /* __VPROBE_SITES_BPF_H */
