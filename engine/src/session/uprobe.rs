//! uprobes (`uprobe/PATH:SYMBOL`, and a uretprobe for latency): a function in
//! a user-space binary or library, in every process that maps it; needs
//! CONFIG_UPROBE_EVENTS.

use aya::programs::uprobe::UProbeScope;
use aya::programs::{ProgramError, UProbe, UProbeError};
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::MechanismError;
use crate::kernel;

/// A uprobe (or uretprobe: the program's section says which) on a symbol of
/// a binary or library.
pub(super) struct Uprobe {
    /// A path, or a library name such as `libc` found through ld.so.cache.
    pub(super) target: &'static str,
    /// The symbol.
    pub(super) symbol: &'static str,
}

impl Attach for Uprobe {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        _btf: &super::kernel_btf::KernelBtf,
    ) -> Result<(), MechanismError> {
        if !kernel::has_uprobes() {
            return Err(MechanismError::NoUprobes);
        }
        program_mut::<UProbe>(ebpf, program)?
            .load()
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        let (target, symbol) = (self.target.to_string(), self.symbol.to_string());
        program_mut::<UProbe>(ebpf, program)?
            .attach(self.symbol, self.target, UProbeScope::AllProcesses)
            .map_err(|e| match &e {
                // aya also looks in the debug file before giving up: the symbol is not there
                ProgramError::UProbeError(UProbeError::SymbolError { .. }) => {
                    MechanismError::NoSymbol {
                        symbol,
                        target,
                        source: e.into(),
                    }
                }
                ProgramError::UProbeError(UProbeError::InvalidTarget { .. }) => {
                    MechanismError::NoTarget {
                        target,
                        source: e.into(),
                    }
                }
                _ => MechanismError::Symbol {
                    symbol,
                    target,
                    source: Box::new(MechanismError::program(e)),
                },
            })?;
        Ok(())
    }
}
