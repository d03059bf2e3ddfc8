//! BTF-typed tracepoints (`tp_btf/EVENT`): typed arguments, no tracefs; 5.5+ with BTF.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

fn program<'a>(ebpf: &'a mut Ebpf, program: &str) -> Result<&'a mut BtfTracePoint, String> {
    ebpf.program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{e}"))
}

/// Loads `program` for `tp_btf/event` (the verifier runs) without attaching.
pub(super) fn load(ebpf: &mut Ebpf, name: &str, event: &str, btf: &Btf) -> Result<(), String> {
    let has_event = btf.id_by_type_name_kind(
        &format!("btf_trace_{event}"),
        aya_obj::btf::BtfKind::Typedef,
    );
    if has_event.is_err() {
        return Err(format!("the kernel's BTF has no tracepoint `{event}`"));
    }
    program(ebpf, name)?
        .load(event, btf)
        .map_err(|e| super::instance::describe(&e))
}

/// Loads `program` for `tp_btf/event` and attaches it once.
pub(super) fn attach(ebpf: &mut Ebpf, name: &str, event: &str, btf: &Btf) -> Result<(), String> {
    load(ebpf, name, event, btf)?;
    program(ebpf, name)?
        .attach()
        .map_err(|e| super::instance::describe(&e))?;
    Ok(())
}
