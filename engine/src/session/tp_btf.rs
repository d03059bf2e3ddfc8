//! BTF-typed tracepoints (`tp_btf/EVENT`): typed arguments, no tracefs; 5.5+ with BTF.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

/// Loads `program` for `tp_btf/event` and attaches it once.
pub(super) fn attach(ebpf: &mut Ebpf, program: &str, event: &str, btf: &Btf) -> Result<(), String> {
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    prog.load(event, btf).map_err(|e| super::instance::describe(&e))?;
    prog.attach().map_err(|e| super::instance::describe(&e))?;
    Ok(())
}
