//! `dev.rx`, `dev.xmit` and `dev.queue` (bpf/dev.bpf.c).

use super::fields::{num, DEV, DEV_IFINDEX, DEV_NETNS};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/dev.o`.
pub static OBJECT: Object = object!("dev");

// keep in sync with bpf/dev.bpf.c (S_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("len", 2, FieldKind::Uint, "packet length in bytes"),
    num("protocol", 3, FieldKind::EtherType, "EtherType of the skb"),
];

const XMIT_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("len", 2, FieldKind::Uint, "packet length in bytes"),
    num(
        "rc",
        4,
        FieldKind::Int,
        "driver return code (0 = NETDEV_TX_OK)",
    ),
];

/// `dev.rx`.
pub const RX: ProbeDef = ProbeDef {
    name: "dev.rx",
    subsystem: "device",
    about: "a packet received from a device into the stack (netif_receive_skb)",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("netif_receive_skb", "vp_rx_btf"),
        Mechanism::raw_tracepoint("netif_receive_skb", "vp_rx_raw"),
        Mechanism::tracepoint("net", "netif_receive_skb", "vp_rx_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};

/// `dev.xmit`.
pub const XMIT: ProbeDef = ProbeDef {
    name: "dev.xmit",
    subsystem: "device",
    about: "a packet handed to a driver (net_dev_xmit), with the driver's return code",
    object: &OBJECT,
    fields: XMIT_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("net_dev_xmit", "vp_xmit_btf"),
        Mechanism::raw_tracepoint("net_dev_xmit", "vp_xmit_raw"),
        Mechanism::tracepoint("net", "net_dev_xmit", "vp_xmit_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};

/// `dev.queue`.
pub const QUEUE: ProbeDef = ProbeDef {
    name: "dev.queue",
    subsystem: "device",
    about: "a packet queued for transmission on a device (net_dev_queue)",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("net_dev_queue", "vp_queue_btf"),
        Mechanism::raw_tracepoint("net_dev_queue", "vp_queue_raw"),
        Mechanism::tracepoint("net", "net_dev_queue", "vp_queue_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};
