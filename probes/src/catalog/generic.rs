//! The generic attach points (bpf/generic.bpf.c): `tracepoint:CAT:NAME`,
//! `kprobe:FUNC`, `fentry:FUNC` and `uprobe:PATH:SYMBOL`. Their definitions
//! are built per name by the engine; here are the families, their object and
//! the function probes' fields.

use super::fields::num;
use super::{FieldDef, FieldKind, GenericDef, MechanismKind, Object, Slot};
use crate::object::object;

/// `prebuilt/generic.o`.
pub static OBJECT: Object = object!("generic");

/// The slot of `latency` in [`FUNC_FIELDS`]: when a request needs it, the
/// return-side program is attached too and submits the record.
pub const FUNC_LATENCY_SLOT: u8 = 2;

/// Slots of the generic function probes (`kprobe:`, `fentry:`, `uprobe:`).
/// Keep in sync with bpf/generic.bpf.c (S_*, D_*; the catalog tests check).
pub const FUNC_FIELDS: &[FieldDef] = &[
    num("pid", 0, FieldKind::Uint, "process id (tgid) of the caller"),
    num("tid", 1, FieldKind::Uint, "thread id of the caller"),
    num(
        "latency",
        FUNC_LATENCY_SLOT,
        FieldKind::Duration,
        "nanoseconds from the function's entry to its return",
    ),
    FieldDef {
        name: "comm",
        slot: Slot::Dev,
        kind: FieldKind::Str,
        filter: true,
        key: true,
        about: "the calling thread's name (comm)",
    },
];

/// The generic attach points.
pub static GENERIC: &[GenericDef] = &[
    GenericDef {
        kind: "tracepoint",
        usage: "tracepoint:CATEGORY:NAME",
        example: "tracepoint:net:net_dev_queue",
        about: "any classic tracepoint; its fields come from its format file (tracefs events/CATEGORY/NAME/format)",
        object: &OBJECT,
        fields: &[],
        mechanisms: &[MechanismKind::Tracepoint],
    },
    GenericDef {
        kind: "kprobe",
        usage: "kprobe:FUNCTION",
        example: "kprobe:tcp_retransmit_skb",
        about: "calls of a kernel function (kprobe; kretprobe too for latency)",
        object: &OBJECT,
        fields: FUNC_FIELDS,
        mechanisms: &[MechanismKind::Kprobe],
    },
    GenericDef {
        kind: "fentry",
        usage: "fentry:FUNCTION",
        example: "fentry:tcp_retransmit_skb",
        about: "calls of a kernel function (fentry; fexit too for latency)",
        object: &OBJECT,
        fields: FUNC_FIELDS,
        mechanisms: &[MechanismKind::Fentry],
    },
    GenericDef {
        kind: "uprobe",
        usage: "uprobe:PATH:SYMBOL",
        example: "uprobe:libc:getpid",
        about: "calls of a function in a user-space binary or library (uprobe; uretprobe too for latency); PATH may be a library name like libc",
        object: &OBJECT,
        fields: FUNC_FIELDS,
        mechanisms: &[MechanismKind::Uprobe],
    },
];
