//! `napi.poll` (bpf/napi.bpf.c).

use super::fields::{flag, num, DEV, DEV_IFINDEX, DEV_NETNS};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/napi.o`.
pub static OBJECT: Object = object!("napi");

// keep in sync with bpf/napi.bpf.c (S_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("work", 2, FieldKind::Uint, "packets processed in this poll"),
    num("budget", 3, FieldKind::Uint, "packets the poll was allowed"),
    flag(
        "exhausted",
        4,
        "the poll used its whole budget (the device has more: polled again)",
    ),
    num(
        "napi_id",
        5,
        FieldKind::Uint,
        "NAPI instance id (busy polling)",
    ),
    num("cpu", 6, FieldKind::Uint, "CPU that ran the poll"),
];

/// `napi.poll`. napi_poll with work/budget: 4.6+.
pub const POLL: ProbeDef = ProbeDef {
    name: "napi.poll",
    subsystem: "softirq",
    about: "one NAPI poll of a device in softirq: work done out of its budget",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("napi_poll", "vp_napi_btf"),
        Mechanism::tracepoint("napi", "napi_poll", "vp_napi_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};
