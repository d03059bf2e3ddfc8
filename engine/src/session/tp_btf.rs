//! BTF-typed tracepoints (`tp_btf/EVENT`): typed arguments, no tracefs; 5.5+ with BTF.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

use super::instance::{describe, program_mut};

/// Whether the kernel has tracepoint `event` (its `btf_trace_EVENT` typedef).
pub(super) fn has_event(btf: &Btf, event: &str) -> Result<(), String> {
    btf.id_by_type_name_kind(
        &format!("btf_trace_{event}"),
        aya_obj::btf::BtfKind::Typedef,
    )
    .map(|_| ())
    .map_err(|_| format!("the kernel's BTF has no tracepoint `{event}`"))
}

/// Loads `program` for `tp_btf/event` (the verifier runs) without attaching.
pub(super) fn load(ebpf: &mut Ebpf, name: &str, event: &str, btf: &Btf) -> Result<(), String> {
    has_event(btf, event)?;
    program_mut::<BtfTracePoint>(ebpf, name)?
        .load(event, btf)
        .map_err(|e| describe(&e))
}

/// Attaches the loaded `program` once.
pub(super) fn attach(ebpf: &mut Ebpf, name: &str) -> Result<(), String> {
    program_mut::<BtfTracePoint>(ebpf, name)?
        .attach()
        .map_err(|e| describe(&e))?;
    Ok(())
}
