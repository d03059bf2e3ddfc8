//! Raw tracepoints (`raw_tp/EVENT`): a tracepoint's arguments, untyped for the
//! verifier (reads go through bpf_probe_read); 4.17+, no BTF or tracefs needed
//! to attach.

use aya::programs::RawTracePoint as AyaRawTracePoint;
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::MechanismError;

/// A raw tracepoint program on one tracepoint.
pub(super) struct RawTracepoint {
    /// Tracepoint name without category (`net_dev_queue`).
    pub(super) event: &'static str,
}

impl Attach for RawTracepoint {
    /// The event is looked up in the kernel's BTF (`btf_trace_EVENT`), which
    /// names every tracepoint.
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        btf: &super::kernel_btf::KernelBtf,
    ) -> Result<(), MechanismError> {
        super::tp_btf::event_id(btf, self.event)?;
        program_mut::<AyaRawTracePoint>(ebpf, program)?
            .load()
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        program_mut::<AyaRawTracePoint>(ebpf, program)?
            .attach(self.event)
            .map_err(MechanismError::program)?;
        Ok(())
    }
}
