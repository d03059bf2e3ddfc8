//! `skb.drop` (bpf/skb_drop.bpf.c): every skb freed as a drop.

use super::fields::{num, DEV, DEV_IFINDEX, DROP_LOCATION, DROP_REASON};
use super::{FieldDef, FieldKind, Mechanism, Object, ProbeDef};
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
];

/// `skb.drop`.
pub const DROP: ProbeDef = ProbeDef {
    name: "skb.drop",
    subsystem: "core",
    about: "an skb dropped anywhere in the stack, with its reason and location",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("kfree_skb", "vp_drop_btf"),
        Mechanism::tracepoint("skb", "kfree_skb", "vp_drop_tp"),
    ],
    default_filters: &[],
    sites: &[],
};
