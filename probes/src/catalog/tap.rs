//! `macvtap.drop` and `tun.drop` (bpf/tap.bpf.c): kfree_skb restricted in the
//! kernel to the driver's drop site, with the queue's ring at that moment.
//!
//! The site functions are resolved in /proc/kallsyms (root or CAP_SYSLOG).
//! Kernels: tp_btf 5.5+ with BTF, the classic tracepoint any; named reasons
//! (FULL_RING, DEV_READY) where the drivers pass them (6.x), else
//! NOT_SPECIFIED. The ring fields need ptr_ring queues (4.16+) and the
//! drivers' types in vmlinux BTF (tap/tun built in; as modules the loader
//! cannot relocate against them and the ring fields read 0). Preferred where
//! the kernel allows them: fentry (5.5+ with BTF and trampolines) or a kprobe
//! on macvtap_count_rx_dropped, the function that bumps rx_dropped; the
//! kfree_skb ones need the site table.
//!
//! `counted` (macvtap.drop) says whether the device's rx_dropped counts a
//! drop: tap_handle_frame frees the segments it makes of a GSO packet when
//! the ring refuses them without counting them, and the program tells those
//! frees apart by the call instructions around the drop's location (x86-64,
//! with the address of kfree_skb_list_reason from /proc/kallsyms).

use super::fields::{
    ack, dport_pkt, num, seq, sport_pkt, tcp_flags, tcp_len, DADDR_PKT, DEV, DEV_IFINDEX,
    DEV_NETNS, DROP_LOCATION, DROP_REASON, SADDR_PKT,
};
use super::{Capture, FieldDef, FieldKind, Mechanism, MechanismKind, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/tap.o`.
pub static OBJECT: Object = object!("tap");

/// `counted`: a segment tap_handle_frame made of a GSO packet and dropped
/// itself, never in rx_dropped. Keep in sync with bpf/tap.bpf.c (`COUNTED_*`).
pub const COUNTED_NO: u64 = 0;
/// `counted`: the packet the device received, counted in rx_dropped.
pub const COUNTED_YES: u64 = 1;
/// `counted`: not decided (not x86-64, kfree_skb_list_reason not in
/// /proc/kallsyms, or the kernel text unreadable).
pub const COUNTED_UNKNOWN: u64 = 2;

// Both probes share one slot layout; the ring is the tap queue's ptr_ring.
// keep in sync with bpf/tap.bpf.c (S_*, A_*, D_*; the catalog tests check)
const RING_FIELDS: [FieldDef; 23] = [
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    DROP_REASON,
    DROP_LOCATION,
    num(
        "queue",
        4,
        FieldKind::Uint,
        "index of the device queue (open of its char device) the packet was for",
    ),
    num(
        "queues",
        5,
        FieldKind::Uint,
        "number of queues of the device at the drop",
    ),
    num(
        "ring_size",
        6,
        FieldKind::Uint,
        "slots in the queue's ring (the device's txqueuelen when the queue was opened); 0 when unreadable",
    ),
    num(
        "ring_producer",
        7,
        FieldKind::Uint,
        "ring slot the next packet goes into",
    ),
    num(
        "ring_consumer_head",
        8,
        FieldKind::Uint,
        "ring slot the reader takes next",
    ),
    num(
        "ring_consumer_tail",
        9,
        FieldKind::Uint,
        "first slot the reader has taken but not yet handed back",
    ),
    num(
        "ring_occupancy",
        10,
        FieldKind::Uint,
        "packets waiting in the ring, not yet taken by the reader",
    ),
    num(
        "ring_unreleased",
        11,
        FieldKind::Uint,
        "slots taken by the reader but not yet handed back (batched); occupancy + unreleased = size when the ring is full",
    ),
    num("len", 13, FieldKind::Uint, "skb length in bytes"),
    num("protocol", 14, FieldKind::EtherType, "EtherType of the skb"),
    SADDR_PKT,
    DADDR_PKT,
    sport_pkt(12),
    dport_pkt(15),
    seq(16),
    ack(17),
    tcp_flags(18),
    tcp_len(19),
];

/// macvtap.drop's own field, after the ring fields.
const COUNTED: FieldDef = num(
    "counted",
    20,
    FieldKind::Uint,
    "whether the device's rx_dropped counts the drop: 1 the packet the device received (always, with the fentry and kprobe mechanisms), 0 a segment tap_handle_frame made of a GSO packet and dropped itself (never counted), 2 unknown (not x86-64, kfree_skb_list_reason not in /proc/kallsyms)",
);

const MACVTAP_FIELDS: [FieldDef; 24] = with_field(RING_FIELDS, COUNTED);

/// `fields` and then `extra`.
const fn with_field<const N: usize, const M: usize>(
    fields: [FieldDef; N],
    extra: FieldDef,
) -> [FieldDef; M] {
    assert!(M == N + 1, "M must be N + 1");
    let mut out = [extra; M];
    let mut i = 0;
    while i < N {
        out[i] = fields[i];
        i += 1;
    }
    out
}

/// `macvtap.drop`: drops in tap_handle_frame.
pub const MACVTAP_DROP: ProbeDef = ProbeDef {
    name: "macvtap.drop",
    subsystem: "macvtap",
    about: "a packet dropped on its way into a macvtap/ipvtap queue (tap_handle_frame), with the queue's ring at that moment; counts as the device's rx_dropped, but for the GSO segments the handler drops itself (`counted`)",
    object: &OBJECT,
    fields: &MACVTAP_FIELDS,
    mechanisms: &[
        // the rx-dropped counting path itself: no site table, nothing else to filter
        Mechanism::fentry("macvtap_count_rx_dropped", "vp_mvtap_fentry"),
        Mechanism::kprobe("macvtap_count_rx_dropped", "vp_mvtap_kprobe"),
        Mechanism::tp_btf("kfree_skb", "vp_mvtap_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_mvtap_tp"),
    ],
    default_filters: &[],
    sites: &["tap_handle_frame"],
    // `counted`: site_calls[CALL_LIST_FREE] in bpf/tap.bpf.c
    site_calls: &["kfree_skb_list_reason"],
    capture: Capture::Packet {
        without: &[MechanismKind::Fentry, MechanismKind::Kprobe],
    },
    unseen: "",
};

/// `tun.drop`: drops in tun_net_xmit.
pub const TUN_DROP: ProbeDef = ProbeDef {
    name: "tun.drop",
    subsystem: "tun",
    about: "a packet a tun/tap device could not queue for its reader (tun_net_xmit), with the queue's ring at that moment; counts as the device's tx_dropped",
    object: &OBJECT,
    fields: &RING_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("kfree_skb", "vp_tun_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_tun_tp"),
    ],
    default_filters: &[],
    sites: &["tun_net_xmit"],
    site_calls: &[],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};
