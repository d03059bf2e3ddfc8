//! BTF-typed tracepoints (`tp_btf/EVENT`): typed arguments, no tracefs; 5.5+ with BTF.

use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

use super::attach::{program_mut, Attach, Side};
use super::MechanismError;

/// A tp_btf program on one tracepoint.
pub(super) struct TpBtf {
    /// Tracepoint name without category (`kfree_skb`).
    pub(super) event: &'static str,
}

/// Whether the kernel has tracepoint `event` (its `btf_trace_EVENT` typedef).
pub(super) fn has_event(btf: &Btf, event: &str) -> Result<(), MechanismError> {
    btf.id_by_type_name_kind(
        &format!("btf_trace_{event}"),
        aya_obj::btf::BtfKind::Typedef,
    )
    .map(|_| ())
    .map_err(|_| MechanismError::NoBtfTracepoint(event.to_string()))
}

impl Attach for TpBtf {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        btf: &Btf,
    ) -> Result<(), MechanismError> {
        has_event(btf, self.event)?;
        program_mut::<BtfTracePoint>(ebpf, program)?
            .load(self.event, btf)
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        program_mut::<BtfTracePoint>(ebpf, program)?
            .attach()
            .map_err(MechanismError::program)?;
        Ok(())
    }
}
