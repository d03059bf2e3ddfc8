//! Classic tracepoints (`tracepoint/CAT/NAME`): found through tracefs, attached
//! with perf_event_open; any kernel since 4.7. Also the generic
//! `tracepoint:CAT:NAME`, whose one program attaches to any of them.

use aya::programs::TracePoint;
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::MechanismError;
use crate::kernel;

/// A classic tracepoint program on `category:event`.
pub(super) struct Tracepoint {
    /// Category (`skb`).
    pub(super) category: &'static str,
    /// Event (`kfree_skb`).
    pub(super) event: &'static str,
}

impl Attach for Tracepoint {
    /// Checks `category:event` exists (mounting tracefs if needed) first.
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        _btf: &super::kernel_btf::KernelBtf,
    ) -> Result<(), MechanismError> {
        let tracefs = kernel::ensure_tracefs()?;
        if !tracefs
            .join("events")
            .join(self.category)
            .join(self.event)
            .is_dir()
        {
            return Err(MechanismError::NoTracepoint {
                category: self.category.to_string(),
                event: self.event.to_string(),
                tracefs: tracefs.to_path_buf(),
            });
        }
        program_mut::<TracePoint>(ebpf, program)?
            .load()
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        program_mut::<TracePoint>(ebpf, program)?
            .attach(self.category, self.event)
            .map_err(MechanismError::program)?;
        Ok(())
    }
}
