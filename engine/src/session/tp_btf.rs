//! BTF-typed tracepoints (`tp_btf/EVENT`): typed arguments, no tracefs; 5.5+ with BTF.

use aya::programs::BtfTracePoint;
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::kernel_btf::{IdKind, KernelBtf};
use super::MechanismError;

/// A tp_btf program on one tracepoint.
pub(super) struct TpBtf {
    /// Tracepoint name without category (`kfree_skb`).
    pub(super) event: &'static str,
}

/// The BTF id of tracepoint `event` (its `btf_trace_EVENT` typedef); an error
/// when the kernel has no such tracepoint.
pub(super) fn event_id(btf: &KernelBtf, event: &str) -> Result<u32, MechanismError> {
    btf.type_id(&format!("btf_trace_{event}"), IdKind::Typedef)
        .map_err(|e| MechanismError::Btf(e.into()))?
        .ok_or_else(|| MechanismError::NoBtfTracepoint(event.to_string()))
}

impl Attach for TpBtf {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        btf: &KernelBtf,
    ) -> Result<(), MechanismError> {
        let id = event_id(btf, self.event)?;
        program_mut::<BtfTracePoint>(ebpf, program)?
            .load_with_btf_id(id)
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        program_mut::<BtfTracePoint>(ebpf, program)?
            .attach()
            .map_err(MechanismError::program)?;
        Ok(())
    }
}
