//! `skb.drop` (bpf/skb_drop.bpf.c): every skb freed as a drop.

use super::fields::{
    ack, addr, num, seq, tcp_flags, tcp_len, DEV, DEV_IFINDEX, DROP_LOCATION, DROP_REASON,
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
    addr("saddr", 0, "source address from the packet's IP header"),
    addr("daddr", 1, "destination address from the packet's IP header"),
    num("sport", 7, FieldKind::Port, "TCP/UDP source port from the packet"),
    num("dport", 8, FieldKind::Port, "TCP/UDP destination port from the packet"),
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
    capture: Capture::Packet { without: &[] },
};
