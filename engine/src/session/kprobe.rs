//! kprobes (`kprobe/FUNC`, and a kretprobe for latency): any kernel function,
//! through the perf kprobe PMU; needs CONFIG_KPROBE_EVENTS. Some kernels are
//! built without kprobes: the PMU is then missing and attaching fails with
//! ENOENT, so that is checked first and said plainly.

use aya::programs::KProbe;
use aya::Ebpf;

use super::instance::{describe, program_mut};
use crate::kernel;

/// Loads `program` (the verifier runs) once kprobes are known to exist.
pub(super) fn load(ebpf: &mut Ebpf, program: &str) -> Result<(), String> {
    if !kernel::has_kprobes() {
        return Err(kernel::KPROBES_ABSENT.to_string());
    }
    program_mut::<KProbe>(ebpf, program)?
        .load()
        .map_err(|e| describe(&e))
}

/// Attaches the loaded `program` to `function` (entry, or return for a kretprobe program).
pub(super) fn attach(ebpf: &mut Ebpf, program: &str, function: &str) -> Result<(), String> {
    program_mut::<KProbe>(ebpf, program)?
        .attach(function, 0)
        .map_err(|e| format!("kernel function `{function}`: {}", describe(&e)))?;
    Ok(())
}
