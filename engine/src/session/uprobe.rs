//! uprobes (`uprobe/PATH:SYMBOL`, and a uretprobe for latency): a function in
//! a user-space binary or library, in every process that maps it; needs
//! CONFIG_UPROBE_EVENTS.

use aya::programs::uprobe::UProbeScope;
use aya::programs::{ProgramError, UProbe, UProbeError};
use aya::Ebpf;

use super::instance::{describe, program_mut};
use crate::kernel;

/// Loads `program` (the verifier runs) once uprobes are known to exist.
pub(super) fn load(ebpf: &mut Ebpf, program: &str) -> Result<(), String> {
    if !kernel::has_uprobes() {
        return Err(kernel::UPROBES_ABSENT.to_string());
    }
    program_mut::<UProbe>(ebpf, program)?
        .load()
        .map_err(|e| describe(&e))
}

/// Attaches the loaded `program` to `symbol` in `target` (a path, or a
/// library name such as `libc` found through ld.so.cache).
pub(super) fn attach(
    ebpf: &mut Ebpf,
    program: &str,
    target: &str,
    symbol: &str,
) -> Result<(), String> {
    program_mut::<UProbe>(ebpf, program)?
        .attach(symbol, target, UProbeScope::AllProcesses)
        .map_err(|e| match &e {
            // aya also looks in the debug file before giving up: the symbol is not there
            ProgramError::UProbeError(UProbeError::SymbolError { symbol, .. }) => {
                format!("no symbol `{symbol}` in {target} (nor in its debug file)")
            }
            ProgramError::UProbeError(UProbeError::InvalidTarget { .. }) => {
                format!("no library or file `{target}` (a library name is looked up in /etc/ld.so.cache)")
            }
            _ => format!("`{symbol}` in {target}: {}", describe(&e)),
        })?;
    Ok(())
}
