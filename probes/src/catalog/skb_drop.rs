//! `skb.drop` (bpf/skb_drop.bpf.c): every skb freed as a drop.

use super::fields::{
    ack, dport_pkt, num, seq, sport_pkt, tcp_flags, tcp_len, DADDR_PKT, DEV, DEV_IFINDEX,
    DROP_LOCATION, DROP_REASON, SADDR_PKT,
};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/skb_drop.o`.
pub static OBJECT: Object = object!("skb_drop");

// keep in sync with bpf/skb_drop.bpf.c (S_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    num(
        "netns",
        1,
        FieldKind::Netns,
        "network namespace inode of the device (or socket)",
    ),
    DROP_REASON,
    DROP_LOCATION,
    num("protocol", 4, FieldKind::EtherType, "EtherType of the skb"),
    num("len", 5, FieldKind::Uint, "skb length in bytes"),
    num(
        "layer",
        6,
        FieldKind::Layer,
        "stack layer of the location (tap, tun, macvlan, bridge, veth, qdisc, core, ip, tcp, udp, ...; from kallsyms)",
    ),
    SADDR_PKT,
    DADDR_PKT,
    sport_pkt(7),
    dport_pkt(8),
    seq(9),
    ack(10),
    tcp_flags(11),
    tcp_len(12),
];

/// `skb.drop`.
pub const DROP: ProbeDef = ProbeDef {
    name: "skb.drop",
    subsystem: "core",
    about: "an skb dropped anywhere in the stack, with its reason, location and, from its headers, flow and TCP segment",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("kfree_skb", "vp_drop_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_drop_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};
