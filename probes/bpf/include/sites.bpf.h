/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Drop sites: the kernel text ranges a site-restricted attach point accepts
 * (`macvtap.drop` = the drops in tap_handle_frame, `tun.drop` = those in
 * tun_net_xmit). User space resolves the catalog's site functions in
 * /proc/kallsyms — each function and its compiler-split parts such as
 * `tun_net_xmit.cold` — and fills `sites` before the program attaches, so the
 * restriction runs in the kernel, ahead of any other work.
 *
 * Site calls: functions the site functions call whose calls a program
 * recognises in the kernel text around a drop's location (`macvtap.drop`
 * tells the GSO segments tap_handle_frame frees with kfree_skb_list_reason
 * apart). User space resolves the catalog's `site_calls` in /proc/kallsyms
 * into `site_calls`, in that order, on x86-64 only (the call instruction
 * decoded here is x86's); an entry left 0 means "not known", and the program
 * says so instead of guessing.
 *
 * Keep in sync with probes/src/abi.rs (Site, SITES_MAX, SITE_CALLS_MAX).
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

#define VP_SITE_CALLS_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VP_SITE_CALLS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} site_calls SEC(".maps");

/* The address of site call `i`; 0 when not known. */
static __always_inline __u64 vp_site_call(__u32 i)
{
	__u64 *a = bpf_map_lookup_elem(&site_calls, &i);

	return a ? *a : 0;
}

#define VP_CALL_LEN 5 /* x86 `call rel32`: 0xe8 and a 32-bit displacement */

/*
 * Whether the VP_CALL_LEN bytes at `text`, copied from kernel address `at`,
 * are a direct call to `fn`. The target may lie up to 16 bytes before the
 * symbol: with CONFIG_MITIGATION_CALL_DEPTH_TRACKING the kernel patches
 * direct calls to a call thunk in the function's 16-byte padding
 * (arch/x86/kernel/callthunks.c). As much slack after it costs nothing:
 * [fn - 16, fn + 16] is that padding and the function's own first bytes, where
 * no call to another function can land (the functions decoded are longer). The displacement is unaligned: copied,
 * not cast.
 */
static __always_inline int vp_is_call_to(const __u8 *text, __u64 at, __u64 fn)
{
	__s32 rel;
	__u64 target;

	if (text[0] != 0xe8)
		return 0;
	__builtin_memcpy(&rel, text + 1, sizeof(rel));
	target = at + VP_CALL_LEN + (__s64)rel;
	return target + 16 >= fn && target <= fn + 16;
}

#endif /* __VPROBE_SITES_BPF_H */
