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

use super::fields::{
    ack, dport_pkt, num, seq, sport_pkt, tcp_flags, tcp_len, DADDR_PKT, DEV, DEV_IFINDEX,
    DEV_NETNS, DROP_LOCATION, DROP_REASON, SADDR_PKT,
};
use super::{Capture, FieldDef, FieldKind, Mechanism, MechanismKind, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/tap.o`.
pub static OBJECT: Object = object!("tap");

// Both probes share one slot layout; the ring is the tap queue's ptr_ring.
// keep in sync with bpf/tap.bpf.c (S_*, A_*, D_*; the catalog tests check)
const RING_FIELDS: &[FieldDef] = &[
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

/// `macvtap.drop`: drops in tap_handle_frame.
pub const MACVTAP_DROP: ProbeDef = ProbeDef {
    name: "macvtap.drop",
    subsystem: "macvtap",
    about: "a packet dropped on its way into a macvtap/ipvtap queue (tap_handle_frame), with the queue's ring at that moment; counts as the device's rx_dropped",
    object: &OBJECT,
    fields: RING_FIELDS,
    mechanisms: &[
        // the rx-dropped counting path itself: no site table, nothing else to filter
        Mechanism::fentry("macvtap_count_rx_dropped", "vp_mvtap_fentry"),
        Mechanism::kprobe("macvtap_count_rx_dropped", "vp_mvtap_kprobe"),
        Mechanism::tp_btf("kfree_skb", "vp_mvtap_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_mvtap_tp"),
    ],
    default_filters: &[],
    sites: &["tap_handle_frame"],
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
    fields: RING_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("kfree_skb", "vp_tun_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_tun_tp"),
    ],
    default_filters: &[],
    sites: &["tun_net_xmit"],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};
