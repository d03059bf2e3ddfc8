//! `sched.wakeup_latency` (bpf/sched.bpf.c).

use super::fields::{num, COMM};
use super::{Capture, DefaultFilter, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/sched.o`.
pub static OBJECT: Object = object!("sched");

// keep in sync with bpf/sched.bpf.c (S_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
    FieldDef {
        about: "thread name; only matching threads are timed (default `vhost-*`; `*` for all)",
        ..COMM
    },
    num("pid", 0, FieldKind::Uint, "thread id"),
    num(
        "tgid",
        1,
        FieldKind::Uint,
        "process id (0 on the classic tracepoint)",
    ),
    num(
        "latency",
        2,
        FieldKind::Duration,
        "from wakeup to running on a CPU, ns",
    ),
    num("cpu", 3, FieldKind::Uint, "CPU it ran on"),
    num(
        "prio",
        4,
        FieldKind::Uint,
        "kernel priority (100..139 = nice -20..19)",
    ),
    num(
        "prev_pid",
        5,
        FieldKind::Uint,
        "thread that had the CPU before it (0 = idle)",
    ),
];

/// `sched.wakeup_latency`. sched_wakeup/_new + sched_switch: any kernel
/// (tp_btf 5.5+); three programs per mechanism, runqlat-style: the wakeup
/// companions stamp a thread, the switch program measures. The classic
/// records have no tgid.
pub const WAKEUP_LATENCY: ProbeDef = ProbeDef {
    name: "sched.wakeup_latency",
    subsystem: "vhost",
    about: "wakeup-to-run latency of threads by name (default `vhost-*`): a late vhost worker fills macvtap rings",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("sched_switch", "vp_wakelat_btf").with_companions(&[
            Mechanism::tp_btf("sched_wakeup", "vp_wakeup_btf"),
            Mechanism::tp_btf("sched_wakeup_new", "vp_wakeup_new_btf"),
        ]),
        Mechanism::tracepoint("sched", "sched_switch", "vp_wakelat_tp").with_companions(&[
            Mechanism::tracepoint("sched", "sched_wakeup", "vp_wakeup_tp"),
            Mechanism::tracepoint("sched", "sched_wakeup_new", "vp_wakeup_new_tp"),
        ]),
    ],
    // every thread's wakeups would be a firehose; vhost workers are the usual suspects
    default_filters: &[DefaultFilter {
        field: "comm",
        value: "vhost-*",
    }],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};
