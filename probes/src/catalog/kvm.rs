//! `kvm.exit` (bpf/kvm.bpf.c).

use super::fields::{num, COMM};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// `prebuilt/kvm.o`.
pub static OBJECT: Object = object!("kvm");

// keep in sync with bpf/kvm.bpf.c (S_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
    FieldDef {
        about: "name of the VMM's vCPU thread (`CPU 0/KVM`)",
        ..COMM
    },
    num(
        "reason",
        0,
        FieldKind::KvmExitReason,
        "exit reason, named from this kernel's kvm:kvm_exit format",
    ),
    num(
        "exit_reason",
        1,
        FieldKind::Uint,
        "exit reason as the hardware reports it (VMX basic reason and flags, SVM exit code)",
    ),
    num("isa", 2, FieldKind::Uint, "1 = VMX (Intel), 2 = SVM (AMD)"),
    num("vcpu", 3, FieldKind::Uint, "vCPU index in its VM"),
    num("pid", 4, FieldKind::Uint, "vCPU thread id"),
    num("tgid", 5, FieldKind::Uint, "VMM process id"),
    num("rip", 6, FieldKind::Uint, "guest instruction pointer"),
];

/// `kvm.exit`. kvm_exit: x86 with KVM built in or kvm_intel/kvm_amd loaded.
/// Classic only: the BTF-typed arguments (vcpu, isa) do not carry the exit reason.
pub const EXIT: ProbeDef = ProbeDef {
    name: "kvm.exit",
    subsystem: "kvm",
    about: "a guest vCPU exit to the host (x86 KVM), with its reason",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[Mechanism::tracepoint("kvm", "kvm_exit", "vp_kvm_exit_tp")],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};
