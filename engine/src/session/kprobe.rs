//! kprobes (`kprobe/FUNC`, and a kretprobe for latency): any kernel function,
//! through the perf kprobe PMU; needs CONFIG_KPROBE_EVENTS. Some kernels are
//! built without kprobes: the PMU is then missing and attaching fails with
//! ENOENT, so that is checked first and said plainly.

use aya::programs::KProbe;
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::MechanismError;
use crate::kernel;

/// A kprobe (or kretprobe: the program's section says which) on a kernel function.
pub(super) struct Kprobe {
    /// Kernel function.
    pub(super) function: &'static str,
}

impl Attach for Kprobe {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        _side: Side,
        _btf: &super::kernel_btf::KernelBtf,
    ) -> Result<(), MechanismError> {
        if !kernel::has_kprobes() {
            return Err(MechanismError::NoKprobes);
        }
        program_mut::<KProbe>(ebpf, program)?
            .load()
            .map_err(MechanismError::program)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, _side: Side) -> Result<(), MechanismError> {
        program_mut::<KProbe>(ebpf, program)?
            .attach(self.function, 0)
            .map_err(|e| MechanismError::Function {
                function: self.function.to_string(),
                source: Box::new(MechanismError::program(e)),
            })?;
        Ok(())
    }
}
