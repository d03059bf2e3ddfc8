/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The contract every vprobe attach point follows.
 *
 * A program fills one `struct vp_rec` per kernel event (numeric fields in
 * `num[]`, addresses in `addr[]`, a device name in `dev`; which field lives in
 * which slot is the catalog's business: probes/src/catalog/), then calls
 * vp_submit(), which filters, aggregates in per-CPU maps and optionally emits a
 * ring-buffer event, all driven by the load-time `settings`.
 *
 * Keep in sync with probes/src/abi.rs (the #[repr(C)] mirror).
 */
#ifndef __VPROBE_BPF_H
#define __VPROBE_BPF_H

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define VP_NUM 24         /* numeric field slots */
#define VP_ADDR 2         /* 16-byte address slots (IPv6, or IPv4-mapped) */
#define VP_FILTER_MAX 8   /* ranges/values per filtered field */
#define VP_DEV_MAX 4      /* device-name patterns */
#define VP_DEV_LEN 16     /* IFNAMSIZ */

/* key_mask bits: 0..23 num[i], 24..25 addr[i], 26 dev */
#define VP_KEY_ADDR0 24
#define VP_NUM_BITS ((1u << VP_NUM) - 1) /* key_mask's numeric slots */
#define VP_KEY_DEV 26
#define VP_KEY_ADDR(i) (VP_KEY_ADDR0 + (i))

/* A slot index the verifier can bound (VP_NUM is not a power of two); slot
 * numbers are compile-time constants, so this folds away. */
#define VP_SLOT(i) ((unsigned int)(i) < VP_NUM ? (i) : 0)

/*
 * Slot names. Each program file names the slots it fills, one define per
 * field, the field's name in capitals after the prefix:
 *   #define S_NAME i           field NAME is num[i]
 *   #define A_NAME i           field NAME is addr[i]   (key bit VP_KEY_ADDR(i))
 *   #define D_NAME VP_KEY_DEV  field NAME is the dev string (its key bit)
 * probes/src/catalog/ defines the same fields in the same slots; a test there
 * reads these defines and checks both ways.
 */

#define VP_MODE_COUNT 1
#define VP_MODE_HIST 2
#define VP_MODE_EVENTS 4
#define VP_MODE_CAPTURE 8 /* emit records with the packet's first snaplen bytes */

#define VP_HIST_LOG2 0
#define VP_HIST_LINEAR 1

#define VP_LOSS_EVENTS 0    /* ring buffer reserve failed */
#define VP_LOSS_MAP_FULL 1  /* aggregation insert failed */
#define VP_LOSS_RATE 2      /* held back by the rate limit (events, captures) */
#define VP_LOSS_OFFERED 3   /* records offered to the ring, reserved or not: user space
			     * subtracts what it delivered and what failed to reserve
			     * to know what never reached a callback or a file */
#define VP_LOSS_SLOTS 4

/* How the generic tracepoint program reads one slot from the raw record (vp_raw.read) */
#define VP_READ_UNSIGNED 0 /* integer of vp_raw.size bytes, zero-extended */
#define VP_READ_SIGNED 1   /* integer of vp_raw.size bytes, sign-extended */
#define VP_READ_CHARS 2    /* char name[size]: a NUL-terminated string in place */
#define VP_READ_DATA_LOC 3 /* __data_loc char[]: u32 (len << 16 | offset from the record start) */
#define VP_READ_REL_LOC 4  /* __rel_loc char[]: u32 (len << 16 | offset from the end of the field) */
#define VP_READ_IPV4 5     /* u8 addr[4]: stored IPv4-mapped (::ffff:a.b.c.d) */
#define VP_READ_BYTES 6    /* u8 addr[16]: copied as is */

struct vp_rec {
	__u64 num[VP_NUM];
	__u8 addr[VP_ADDR][16];
	char dev[VP_DEV_LEN];
};

/* The per-CPU scratch: the record being filled, and the aggregation key
 * packed from it (vp_pack_key). */
#define VP_KEY_WORDS 32
struct vp_scratch {
	struct vp_rec rec;
	__u64 key[VP_KEY_WORDS];
};

/* A histogram bucket: its events and the sum of their values (mirrored by
 * probes/src/abi.rs HistValue). */
struct vp_hval {
	__u64 count;
	__u64 sum;
};

/*
 * A ring-buffer record: this header, then only the fields its `flags` name
 * (settings.event_fields: the attach point's own), packed in slot order:
 * num[i] as 8 bytes each, then addr[i] as 16, then dev as 16. A capture's
 * struct vp_packet and its bytes follow them. settings.event_bytes is the
 * header and the fields; user space rebuilds the whole struct vp_rec, zeroing
 * the slots the record does not carry.
 */
struct vp_event {
	__u64 ts_ns;    /* bpf_ktime_get_ns() */
	__u32 cpu;
	__u32 flags;    /* VP_EVENT_FIELDS: the fields that follow (key_mask bits);
			 * VP_EVENT_PACKET: a struct vp_packet and its bytes follow them */
};

#define VP_EVENT_FIELDS 0x07ffffffu /* key_mask bits 0..26 */
#define VP_EVENT_PACKET 0x80000000u

/* Captures: the packet of an event, from the kernel's skb. */
#define VP_SNAP_MAX 2048  /* largest snaplen: a full 1500-byte frame with room to spare */
#define VP_LINK_NONE 0     /* no bytes: no skb here, user space writes what the record says */
#define VP_LINK_ETHERNET 1 /* the bytes start at an Ethernet header */
#define VP_LINK_IP 2       /* the bytes start at the IPv4/IPv6 header */

struct vp_packet {
	__u32 wire_len; /* bytes of the packet from where the capture starts */
	__u32 cap_len;  /* bytes that follow this header */
	__u32 link;     /* VP_LINK_* */
	__u32 pad;
};

/* Where a slot's value lies in a classic tracepoint's raw record (its format file). */
struct vp_raw {
	__u16 offset;
	__u16 size; /* bytes; 0 = the slot is not filled */
	__u32 read; /* VP_READ_* */
};

struct vp_settings {
	__u32 key_mask;
	__u32 mode;
	__u32 hist_slot;
	__u32 hist_kind;
	__u64 hist_step;   /* linear bucket width (> 0) */
	__u64 wake_bytes;  /* wake the reader once this much data waits */
	__u32 filter_n[VP_NUM];     /* ranges per num slot; 0 = unfiltered */
	__u32 addr_filter_n[VP_ADDR];
	__u32 dev_filter_n;
	__u32 dev_filter_len[VP_DEV_MAX]; /* bytes compared: strlen+1 = exact, strlen = prefix */
	__u32 need_mask; /* fields to read at all (key_mask bits): keyed, filtered, histogrammed, emitted */
	__u64 filter_lo[VP_NUM][VP_FILTER_MAX];
	__u64 filter_hi[VP_NUM][VP_FILTER_MAX];
	__u8 addr_filter[VP_ADDR][VP_FILTER_MAX][16];
	char dev_filter[VP_DEV_MAX][VP_DEV_LEN];
	/* Appended for the generic programs (generic.bpf.c); zero for the others. */
	__u32 addr_filter_len[VP_ADDR]; /* bytes compared per address filter; 0 = all 16 */
	__u32 timing; /* function probes: 1 = entry stores a timestamp, return submits the latency */
	__u32 key_words; /* words of the packed aggregation key: the maps' key size / 8 */
	struct vp_raw raw_num[VP_NUM];   /* tracepoint: where num[i] is in the record */
	struct vp_raw raw_addr[VP_ADDR]; /* ... addr[i] (a string or an address) */
	struct vp_raw raw_dev;           /* ... dev (a string) */
	/* Appended for events and captures; zero = off. */
	__u32 snaplen;        /* VP_MODE_CAPTURE: packet bytes copied per record (<= VP_SNAP_MAX) */
	__u32 rate_max;       /* at most this many records per rate_period_ns; 0 = no limit */
	__u64 rate_period_ns;
	__u32 event_fields;   /* fields a record carries (key_mask bits), see struct vp_event */
	__u32 event_bytes;    /* struct vp_event and those fields */
};

/* Set by the loader before load; the verifier prunes what they turn off. */
const volatile struct vp_settings settings = {};

/*
 * Aggregations allocate entries as keys appear (BPF_F_NO_PREALLOC): preallocating
 * 10240 per-CPU entries costs ~7 ms of startup per map here and, on a 256-CPU
 * host, ~20 MB per map that a handful of keys never use. Lookups of existing
 * keys, the per-event path, cost the same either way.
 */
/*
 * Keys are packed (vp_pack_key) and their size is set per instance at load,
 * so these maps give sizes, not BTF types, which would pin the key size.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10240);
	__uint(key_size, 8);
	__uint(value_size, sizeof(__u64));
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 10240);
	__uint(key_size, 8);
	__uint(value_size, sizeof(struct vp_hval));
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* the loader sizes it when events are wanted */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VP_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} loss SEC(".maps");

/* When a program last woke the ring's reader (vp_ring_submit). */
#define VP_WAKE_GAP_NS 1000000ULL
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} wake SEC(".maps");

/* The rate limit's window: records emitted in the current period. */
struct vp_rate {
	__u64 window;
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vp_rate);
} rate SEC(".maps");

/* Scratch record: too big for comfort on the 512-byte BPF stack next to keys. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vp_scratch);
} scratch SEC(".maps");

/* Whether the field in key bit `bit` is used: reads of unused fields are pruned. */
static __always_inline int vp_need(int bit)
{
	return settings.need_mask & (1u << bit);
}

/* Adds one to `loss` slot `what` on this CPU; returns the CPU's count so far. */
static __always_inline __u64 vp_tally(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&loss, &what);
	if (!v)
		return 0;
	*v += 1;
	return *v;
}

/* log2 slot like bpftrace's hist(): 0 -> 0, 1 -> 1, [2,4) -> 2, [4,8) -> 3 ... */
static __always_inline __u64 vp_log2_slot(__u64 v)
{
	__u64 r = 0, s;
	if (!v)
		return 0;
	s = (v > 0xFFFFFFFFULL) << 5; v >>= s; r |= s;
	s = (v > 0xFFFF) << 4; v >>= s; r |= s;
	s = (v > 0xFF) << 3; v >>= s; r |= s;
	s = (v > 0xF) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (v >> 1);
	return r + 1;
}

/* Returns the record zeroed, or NULL (never in practice: a 1-entry per-CPU array). */
static __always_inline struct vp_rec *vp_rec_init(void)
{
	__u32 zero = 0;
	struct vp_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return NULL;
	__builtin_memset(&s->rec, 0, sizeof(s->rec));
	return &s->rec;
}

/*
 * Whether any slot of `n` (a settings array) is non-zero. Settings are
 * constants to the verifier, so a filter nobody set is one dead block: the
 * verifier removes dead code a contiguous run at a time, each removal moving
 * the rest of the program, so one block instead of one per slot is much of a
 * probe's load time.
 */
#define VP_ANY(n, count)                                \
	({                                              \
		__u32 __any = 0;                        \
		_Pragma("unroll") for (int __i = 0; __i < (count); __i++) \
			__any |= (n)[__i];              \
		__any;                                  \
	})

/*
 * The filters. Slots are unrolled (whether a slot is filtered is a constant
 * to the verifier, so an unfiltered one costs nothing), the values of a slot
 * are a real loop: unrolling those too made most of every program's code,
 * and the verifier's passes over the whole program (before it drops dead
 * code) were most of a probe's load time.
 */
static __always_inline int vp_num_match(const struct vp_rec *r)
{
	if (!VP_ANY(settings.filter_n, VP_NUM))
		return 1;
#pragma unroll
	for (int i = 0; i < VP_NUM; i++) {
		__u32 n = settings.filter_n[i];
		__u64 v = r->num[i];
		int ok = 0;
		if (!n)
			continue;
#pragma nounroll
		for (__u32 j = 0; j < VP_FILTER_MAX; j++) {
			if (j >= n)
				break;
			if (v >= settings.filter_lo[i][j] && v <= settings.filter_hi[i][j]) {
				ok = 1;
				break;
			}
		}
		if (!ok)
			return 0;
	}
	return 1;
}

/* The first `len` (at most 16) bytes of a and b are equal. */
static __always_inline int vp_bytes_eq(const __u8 *a, const volatile __u8 *b, __u32 len)
{
#pragma unroll
	for (int k = 0; k < 16; k++) {
		if (k < len && a[k] != b[k])
			return 0;
	}
	return 1;
}

/* a and b, 16 bytes each, are equal: two word compares. */
static __always_inline int vp_eq16(const __u8 *a, const volatile __u8 *b)
{
	__u64 a0, a1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	return a0 == *(const volatile __u64 *)b && a1 == *(const volatile __u64 *)(b + 8);
}

static __always_inline int vp_addr_match(const struct vp_rec *r)
{
	if (!VP_ANY(settings.addr_filter_n, VP_ADDR))
		return 1;
#pragma unroll
	for (int i = 0; i < VP_ADDR; i++) {
		__u32 n = settings.addr_filter_n[i];
#ifdef VP_ADDR_STRINGS
		/* generic.bpf.c: an address slot may hold a string, matched by prefix */
		__u32 len = settings.addr_filter_len[i] ? settings.addr_filter_len[i] : 16;
#endif
		int ok = 0;
		if (!n)
			continue;
#pragma nounroll
		for (__u32 j = 0; j < VP_FILTER_MAX; j++) {
			if (j >= n)
				break;
#ifdef VP_ADDR_STRINGS
			if (vp_bytes_eq(r->addr[i], settings.addr_filter[i][j], len)) {
#else
			if (vp_eq16(r->addr[i], settings.addr_filter[i][j])) {
#endif
				ok = 1;
				break;
			}
		}
		if (!ok)
			return 0;
	}
	return 1;
}

static __always_inline int vp_dev_match(const struct vp_rec *r)
{
	__u32 n = settings.dev_filter_n;
	if (!n)
		return 1;
#pragma nounroll
	for (__u32 j = 0; j < VP_DEV_MAX; j++) {
		if (j >= n)
			break;
		if (vp_bytes_eq((const __u8 *)r->dev, (const volatile __u8 *)settings.dev_filter[j],
				settings.dev_filter_len[j]))
			return 1;
	}
	return 0;
}

/* Adds `inc` to map[key], creating the entry; counts a failed insert as loss. */
static __always_inline void vp_add(void *map, const void *key, __u64 inc)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	if (v) {
		*v += inc;
		return;
	}
	if (bpf_map_update_elem(map, key, &inc, BPF_NOEXIST)) {
		/* lost a race with a nested program on this CPU: retry once */
		v = bpf_map_lookup_elem(map, key);
		if (v)
			*v += inc;
		else
			vp_tally(VP_LOSS_MAP_FULL);
	}
}

/* One event of value `v` into histogram bucket `key`: its count and the sum of
 * its values (a Prometheus histogram's `_sum`) in one update of one entry. */
static __always_inline void vp_hadd(const void *key, __u64 v)
{
	struct vp_hval *h = bpf_map_lookup_elem(&hists, key);
	struct vp_hval init = { .count = 1, .sum = v };
	if (h) {
		h->count += 1;
		h->sum += v;
		return;
	}
	if (bpf_map_update_elem(&hists, key, &init, BPF_NOEXIST)) {
		h = bpf_map_lookup_elem(&hists, key);
		if (h) {
			h->count += 1;
			h->sum += v;
		} else {
			vp_tally(VP_LOSS_MAP_FULL);
		}
	}
}

/*
 * Submits a ring record, waking the reader only once `wake_bytes` wait, and
 * then at most once per VP_WAKE_GAP_NS: user space also drains on a timer, so
 * no wakeup per record. A wakeup is an interrupt the CPU sends itself (a VM
 * exit under a hypervisor, several microseconds); waking a reader that is
 * behind on every record while it catches up cost dev.xmit ~1.5 us per event
 * under 16 TCP_RR streams. `offered` is this CPU's count of records offered:
 * the ring's fill is looked at every VP_WAKE_EVERY of them (the look reads
 * the reader's position, a cache line another CPU writes).
 */
#define VP_WAKE_EVERY 64
static __always_inline void vp_ring_submit(void *e, __u64 now, __u64 offered)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u32 zero = 0;
	__u64 *last;

	if (offered % VP_WAKE_EVERY == 0 &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= settings.wake_bytes) {
		last = bpf_map_lookup_elem(&wake, &zero);
		/* CPUs racing here may both wake it: harmless */
		if (last && (__s64)(now - *last) >= VP_WAKE_GAP_NS) {
			*last = now;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(e, flags);
}

/* The record as 8-byte words: num[i] is word i, addr[i] words VP_NUM + 2i and
 * the next, dev the two after the addresses (key bits VP_KEY_ADDR0.. in order). */
_Static_assert(__builtin_offsetof(struct vp_rec, addr) == VP_NUM * 8, "addr follows num");
_Static_assert(__builtin_offsetof(struct vp_rec, dev) == (VP_NUM + 2 * VP_ADDR) * 8,
	       "dev follows addr");
_Static_assert(VP_KEY_DEV == VP_KEY_ADDR0 + VP_ADDR, "dev's key bit follows addr's");
_Static_assert(sizeof(struct vp_event) == 16, "the record header");

/* The largest record of fields (every slot): settings.event_bytes is at most this. */
#define VP_EVENT_MAX (sizeof(struct vp_event) + sizeof(struct vp_rec))

/*
 * Fills a reserved record's header and packs the fields settings.event_fields
 * names after it. The mask is a constant to the verifier (settings are
 * read-only once loaded), which keeps only the copies of present fields.
 */
static __always_inline void vp_event_fill(struct vp_event *e, const struct vp_rec *r, __u64 now,
					  __u32 flags)
{
	const __u64 *s = (const __u64 *)r;
	__u64 *d = (__u64 *)(e + 1);
	__u32 m = settings.event_fields;
	__u32 k = 0;

	e->ts_ns = now;
	e->cpu = bpf_get_smp_processor_id();
	e->flags = (m & VP_EVENT_FIELDS) | flags;
#pragma unroll
	for (int i = 0; i < VP_NUM; i++) {
		if (!((m & VP_NUM_BITS) >> i))
			break;
		if (m & (1u << i))
			d[k++] = s[i];
	}
#pragma unroll
	for (int i = 0; i < VP_ADDR + 1; i++) { /* addr[0], addr[1], dev: 16 bytes each */
		if (m & (1u << (VP_KEY_ADDR0 + i))) {
			d[k++] = s[VP_NUM + 2 * i];
			d[k++] = s[VP_NUM + 2 * i + 1];
		}
	}
}

static __always_inline void vp_emit(const struct vp_rec *r, __u64 now)
{
	/* a constant to the verifier: settings are read-only once loaded */
	__u32 size = settings.event_bytes;
	struct vp_event *e;
	__u64 offered;

	if (size < sizeof(*e) || size > VP_EVENT_MAX)
		return;
	offered = vp_tally(VP_LOSS_OFFERED);
	e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		vp_tally(VP_LOSS_EVENTS);
		return;
	}
	vp_event_fill(e, r, now, 0);
	vp_ring_submit(e, now, offered);
}

/*
 * Where a packet starts in its skb, how many bytes of it are in the skb's
 * linear area from there, and how long it is from there: from its MAC header
 * when it has an Ethernet one (at least 14 bytes before the network header),
 * else from its network header (an L3 tun device, a packet not yet given a
 * link header on its way out).
 */
static __always_inline __u32 vp_packet_start(struct sk_buff *skb, __u32 *start, __u32 *avail,
					     __u32 *wire)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	unsigned char *data = BPF_CORE_READ(skb, data);
	__u16 mh = BPF_CORE_READ(skb, mac_header);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail); /* an offset from head on 64-bit kernels */
	__u32 len = BPF_CORE_READ(skb, len);   /* bytes from data on */
	__u32 link, from, d;

	if (!head || !data || data < head)
		return VP_LINK_NONE;
	/* (u16)~0: not set (skb_mac_header_was_set(), skb_network_header()) */
	if (mh != 0xffff && nh != 0xffff && nh >= mh + 14) {
		from = mh;
		link = VP_LINK_ETHERNET;
	} else if (nh != 0xffff) {
		from = nh;
		link = VP_LINK_IP;
	} else {
		return VP_LINK_NONE;
	}
	d = data - head;
	if (d >= from)
		*wire = len + (d - from);
	else
		*wire = len > from - d ? len - (from - d) : 0;
	*start = from;
	*avail = tail > from ? tail - from : 0;
	return link;
}

/* A capture record: the event, then the packet's first `snaplen` bytes
 * (as many as the skb's linear area holds), copied from the kernel. */
static __always_inline void vp_capture(const struct vp_rec *r, struct sk_buff *skb, __u64 now)
{
	/* constants to the verifier: settings are read-only once loaded */
	__u32 snap = settings.snaplen > VP_SNAP_MAX ? VP_SNAP_MAX : settings.snaplen;
	__u32 size = settings.event_bytes;
	__u32 start = 0, avail = 0, wire = 0, link = VP_LINK_NONE, n = 0;
	struct vp_event *e;
	struct vp_packet *p;
	unsigned char *head;
	__u64 offered;

	if (size < sizeof(*e) || size > VP_EVENT_MAX)
		return;
	offered = vp_tally(VP_LOSS_OFFERED);
	e = bpf_ringbuf_reserve(&events, size + sizeof(*p) + snap, 0);
	if (!e) {
		vp_tally(VP_LOSS_EVENTS);
		return;
	}
	vp_event_fill(e, r, now, VP_EVENT_PACKET);
	p = (struct vp_packet *)((__u8 *)e + size);
	if (skb)
		link = vp_packet_start(skb, &start, &avail, &wire);
	if (link != VP_LINK_NONE) {
		n = avail < snap ? avail : snap;
		head = BPF_CORE_READ(skb, head);
		if (n > 0 && n <= snap && bpf_probe_read_kernel((void *)(p + 1), n, head + start))
			n = 0;
	}
	p->wire_len = wire;
	p->cap_len = n;
	p->link = link;
	p->pad = 0;
	vp_ring_submit(e, now, offered);
}

/*
 * Whether the rate limit lets one more record out: at most rate_max per
 * rate_period_ns, over all CPUs. The check and the count are two steps, so
 * CPUs racing at the start of a period may let out a few more; a record held
 * back counts as VP_LOSS_RATE.
 */
static __always_inline int vp_rate_ok(__u64 now)
{
	__u32 zero = 0;
	struct vp_rate *s;
	__u64 w;

	if (!settings.rate_max || !settings.rate_period_ns)
		return 1;
	s = bpf_map_lookup_elem(&rate, &zero);
	if (!s)
		return 1;
	w = now / settings.rate_period_ns;
	if (s->window != w) {
		s->window = w;
		s->count = 0;
	}
	if (s->count >= settings.rate_max) {
		vp_tally(VP_LOSS_RATE);
		return 0;
	}
	__sync_fetch_and_add(&s->count, 1);
	return 1;
}

/*
 * The aggregation key: the fields `key_mask` selects, packed in slot order
 * (numbers one word each, then addresses and the device name two words each),
 * then a histogram's bucket, then zeros up to `key_words`. Every test on
 * `settings` is a constant to the verifier, so this is a few moves. Mirrors
 * probes/src/abi.rs pack_key().
 */
static __always_inline void vp_pack_key(const struct vp_rec *r, __u64 *k, int hist, __u64 slot)
{
	__u32 mask = settings.key_mask;
	__u32 n = 0;

	/* Zeros first, the fields over them. The size class is a constant to
	 * the verifier, so all blocks but one go as whole blocks (each dead run
	 * of code it removes costs a move of the rest of the program). */
	switch (settings.key_words) {
	case 1:
		k[0] = 0;
		break;
	case 2:
		__builtin_memset(k, 0, 2 * 8);
		break;
	case 4:
		__builtin_memset(k, 0, 4 * 8);
		break;
	case 8:
		__builtin_memset(k, 0, 8 * 8);
		break;
	case 16:
		__builtin_memset(k, 0, 16 * 8);
		break;
	default:
		__builtin_memset(k, 0, VP_KEY_WORDS * 8);
	}
#pragma unroll
	for (int i = 0; i < VP_NUM; i++) {
		/* past the last numeric field counted by: one dead block */
		if (!((mask & VP_NUM_BITS) >> i))
			break;
		if (mask & (1u << i)) {
			k[n & (VP_KEY_WORDS - 1)] = r->num[i];
			n++;
		}
	}
#pragma unroll
	for (int i = 0; i < VP_ADDR; i++) {
		if (mask & (1u << (VP_KEY_ADDR0 + i))) {
			__builtin_memcpy(&k[n & (VP_KEY_WORDS - 1)], r->addr[i], 16);
			n += 2;
		}
	}
	if (mask & (1u << VP_KEY_DEV)) {
		__builtin_memcpy(&k[n & (VP_KEY_WORDS - 1)], r->dev, 16);
		n += 2;
	}
	if (hist)
		k[n & (VP_KEY_WORDS - 1)] = slot;
}

/*
 * Filters, then aggregates/emits according to `settings`. `r` is the scratch
 * record; `skb` the packet a capture copies (NULL where there is none: the
 * capture then carries the record alone).
 */
static __always_inline void vp_submit_skb(struct vp_rec *r, struct sk_buff *skb)
{
	/* rec is the first member of the scratch */
	__u64 *key = ((struct vp_scratch *)r)->key;
	__u64 hv = 0;

	if (!vp_num_match(r) || !vp_addr_match(r) || !vp_dev_match(r))
		return;
	if (settings.mode & (VP_MODE_EVENTS | VP_MODE_CAPTURE)) {
		__u64 now = bpf_ktime_get_ns();

		if (vp_rate_ok(now)) {
			if (settings.mode & VP_MODE_CAPTURE)
				vp_capture(r, skb, now);
			else
				vp_emit(r, now);
		}
	}
	if (!(settings.mode & (VP_MODE_COUNT | VP_MODE_HIST)))
		return;

	if (settings.mode & VP_MODE_HIST) {
		__u32 hs = settings.hist_slot;
		if (hs < VP_NUM)
			hv = r->num[VP_SLOT(hs)];
	}
	if (settings.mode & VP_MODE_COUNT) {
		vp_pack_key(r, key, 0, 0);
		vp_add(&counts, key, 1);
	}
	if (settings.mode & VP_MODE_HIST) {
		__u64 slot;

		if (settings.hist_kind == VP_HIST_LINEAR)
			slot = settings.hist_step ? hv / settings.hist_step : hv;
		else
			slot = vp_log2_slot(hv);
		vp_pack_key(r, key, 1, slot);
		vp_hadd(key, hv);
	}
}

/* vp_submit_skb() for programs without a packet. */
static __always_inline void vp_submit(struct vp_rec *r)
{
	vp_submit_skb(r, NULL);
}

/* An IPv4 address as the record keeps it: ::ffff:a.b.c.d */
static __always_inline void vp_v4_mapped(__u8 *dst, __u32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

/* Network namespace inode of a device, 0 when unknown. */
static __always_inline int vp_need_dev(int ifindex_slot, int netns_slot)
{
	return vp_need(VP_KEY_DEV) || vp_need(ifindex_slot) || vp_need(netns_slot);
}

static __always_inline __u64 vp_dev_netns(struct net_device *dev)
{
	if (!dev)
		return 0;
	return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

/*
 * Copies the device's name and fills ifindex/netns slots, as far as they are
 * needed. `btf` (a constant): `dev` came typed from a tp_btf/fentry program's
 * arguments, so its fields are plain loads the verifier makes fault-safe,
 * not helper calls (the netns is two pointer hops: ~40 ns less per event).
 */
static __always_inline void vp_fill_dev_as(struct vp_rec *r, struct net_device *dev,
					   int ifindex_slot, int netns_slot, int btf)
{
	if (!dev)
		return;
	if (vp_need(VP_KEY_DEV))
		bpf_probe_read_kernel_str(r->dev, VP_DEV_LEN, dev->name);
	if (vp_need(ifindex_slot))
		r->num[ifindex_slot] = btf ? dev->ifindex : BPF_CORE_READ(dev, ifindex);
	if (vp_need(netns_slot)) {
		if (btf) {
			struct net *net = dev->nd_net.net;
			r->num[netns_slot] = net ? net->ns.inum : 0;
		} else {
			r->num[netns_slot] = vp_dev_netns(dev);
		}
	}
}

static __always_inline void vp_fill_dev(struct vp_rec *r, struct net_device *dev,
					int ifindex_slot, int netns_slot)
{
	vp_fill_dev_as(r, dev, ifindex_slot, netns_slot, 0);
}

#endif /* __VPROBE_BPF_H */
