//! `qdisc.enqueue` and `qdisc.dequeue` (bpf/qdisc.bpf.c).

use super::fields::{num, DEV, DEV_IFINDEX, DEV_NETNS};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/qdisc.o`.
pub static OBJECT: Object = object!("qdisc");

// Slots both qdisc programs fill alike.
const HANDLE: FieldDef = num(
    "handle",
    2,
    FieldKind::TcHandle,
    "the qdisc's handle (`1:`)",
);
const PARENT: FieldDef = num(
    "parent",
    3,
    FieldKind::TcHandle,
    "its parent (`root`, `1:1`)",
);
const QLEN: FieldDef = num(
    "qlen",
    4,
    FieldKind::Uint,
    "packets queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
);
const BACKLOG: FieldDef = num(
    "backlog",
    5,
    FieldKind::Uint,
    "bytes queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
);

// keep in sync with bpf/qdisc.bpf.c (S_*, D_*; the catalog tests check)
const ENQUEUE_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    HANDLE,
    PARENT,
    QLEN,
    BACKLOG,
    num("len", 6, FieldKind::Uint, "packet length in bytes"),
    num("queue", 8, FieldKind::Uint, "TX queue index on the device"),
];

const DEQUEUE_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    HANDLE,
    PARENT,
    QLEN,
    BACKLOG,
    num(
        "len",
        6,
        FieldKind::Uint,
        "length of the first packet in bytes",
    ),
    num(
        "packets",
        7,
        FieldKind::Uint,
        "packets dequeued at once (bulk dequeue)",
    ),
    num("queue", 8, FieldKind::Uint, "TX queue index on the device"),
];

/// `qdisc.enqueue`. qdisc_enqueue: 5.14+ (both mechanisms).
pub const ENQUEUE: ProbeDef = ProbeDef {
    name: "qdisc.enqueue",
    subsystem: "qdisc",
    about:
        "a packet accepted by a qdisc (not fired for packets that bypass an empty pfifo/pfifo_fast)",
    object: &OBJECT,
    fields: ENQUEUE_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("qdisc_enqueue", "vp_qdisc_enq_btf"),
        Mechanism::tracepoint("qdisc", "qdisc_enqueue", "vp_qdisc_enq_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};

/// `qdisc.dequeue`. qdisc_dequeue: 4.16+.
pub const DEQUEUE: ProbeDef = ProbeDef {
    name: "qdisc.dequeue",
    subsystem: "qdisc",
    about: "packets taken from a qdisc for transmission (one event per dequeue, `packets` of them)",
    object: &OBJECT,
    fields: DEQUEUE_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("qdisc_dequeue", "vp_qdisc_deq_btf"),
        Mechanism::tracepoint("qdisc", "qdisc_dequeue", "vp_qdisc_deq_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};
