//! fentry (BPF trampolines): cheapest function-entry hook; needs BTF and
//! CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS. Some kernels (lockdown, this CI's)
//! refuse to load them with EPERM and an empty verifier log.

use aya::programs::FEntry;
use aya::{Btf, Ebpf};

/// Loads `program` for `fentry/function` without attaching.
pub(super) fn load(
    ebpf: &mut Ebpf,
    program: &str,
    function: &str,
    btf: &Btf,
) -> Result<(), String> {
    let prog: &mut FEntry = ebpf
        .program_mut(program)
        .ok_or_else(|| format!("program {program} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    prog.load(function, btf)
        .map_err(|e| super::instance::describe(&e))
}
