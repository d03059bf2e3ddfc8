//! Raw tracepoints (`raw_tp/EVENT`): a tracepoint's arguments, untyped for the
//! verifier (reads go through bpf_probe_read); 4.17+, no BTF or tracefs needed
//! to attach.

use aya::programs::RawTracePoint;
use aya::{Btf, Ebpf};

use super::instance::{describe, program_mut};

/// Loads `program` (the verifier runs) without attaching. The event is looked
/// up in the kernel's BTF (`btf_trace_EVENT`), which names every tracepoint.
pub(super) fn load(ebpf: &mut Ebpf, program: &str, event: &str, btf: &Btf) -> Result<(), String> {
    super::tp_btf::has_event(btf, event)?;
    program_mut::<RawTracePoint>(ebpf, program)?
        .load()
        .map_err(|e| describe(&e))
}

/// Attaches the loaded `program` to `event`.
pub(super) fn attach(ebpf: &mut Ebpf, program: &str, event: &str) -> Result<(), String> {
    program_mut::<RawTracePoint>(ebpf, program)?
        .attach(event)
        .map_err(|e| describe(&e))?;
    Ok(())
}
