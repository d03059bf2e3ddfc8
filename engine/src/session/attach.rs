//! What every attach mechanism does, like aya's program types: load a
//! program of the object for its hook (the verifier runs), then attach it.
//! One implementation per file (tp_btf.rs, raw_tracepoint.rs, tracepoint.rs,
//! kprobe.rs, fentry.rs, uprobe.rs); the session picks it once per mechanism.

use aya::programs::ProgramError;
use aya::Ebpf;

use super::kernel_btf::KernelBtf;
use super::MechanismError;

/// Which program of a function mechanism: the entry one, or the return side
/// that measures latency (kretprobe, fexit, uretprobe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// At the hook (every mechanism).
    Entry,
    /// At the function's return.
    Exit,
}

/// One attach mechanism, bound to its hook (an event, a function, a symbol).
pub(super) trait Attach {
    /// Loads `program` without attaching: the verifier runs, so success says
    /// the kernel supports the mechanism for this hook.
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        side: Side,
        btf: &KernelBtf,
    ) -> Result<(), MechanismError>;

    /// Attaches the loaded `program`; the link lives as long as `ebpf`.
    fn attach(&self, ebpf: &mut Ebpf, program: &str, side: Side) -> Result<(), MechanismError>;
}

/// The program `name` of `ebpf` as its aya type (`KProbe`, `TracePoint`, ...).
pub(super) fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<&'a mut T, MechanismError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| MechanismError::NoProgram(name.to_string()))?
        .try_into()
        .map_err(|e: ProgramError| MechanismError::ProgramType {
            program: name.to_string(),
            source: e.into(),
        })
}
