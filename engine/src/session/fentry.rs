//! fentry/fexit (BPF trampolines): the cheapest function hooks; need BTF and
//! CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS. Some kernels refuse to load them
//! with EPERM and an empty verifier log (lockdown, an LSM, a hypervisor's
//! kernel policy): that is recognised and said plainly.

use aya::programs::{FEntry, FExit, ProgramError};
use aya::Ebpf;

use super::attach::{program_mut, Attach, Side};
use super::kernel_btf::{IdKind, KernelBtf};
use super::MechanismError;
use crate::kernel;

/// An fentry program, or fexit for the return side, on a kernel function.
pub(super) struct Fentry {
    /// Kernel function.
    pub(super) function: &'static str,
}

/// A load error, told apart when it is the kernel refusing trampolines.
fn refusal(e: ProgramError) -> MechanismError {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    {
        if io_error.raw_os_error() == Some(libc::EPERM)
            && verifier_log.to_string().trim().is_empty()
        {
            return MechanismError::Trampolines {
                lockdown: kernel::lockdown(),
                source: e.into(),
            };
        }
    }
    MechanismError::program(e)
}

/// The BTF id of kernel function `function`; an error when it has none.
fn function_id(btf: &KernelBtf, function: &str) -> Result<u32, MechanismError> {
    btf.type_id(function, IdKind::Func)
        .map_err(|e| MechanismError::Btf(e.into()))?
        .ok_or_else(|| MechanismError::NoBtfFunction(function.to_string()))
}

impl Attach for Fentry {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        side: Side,
        btf: &KernelBtf,
    ) -> Result<(), MechanismError> {
        let id = function_id(btf, self.function)?;
        let r = match side {
            Side::Entry => program_mut::<FEntry>(ebpf, program)?.load_with_btf_id(id),
            Side::Exit => program_mut::<FExit>(ebpf, program)?.load_with_btf_id(id),
        };
        r.map_err(refusal)
    }

    fn attach(&self, ebpf: &mut Ebpf, program: &str, side: Side) -> Result<(), MechanismError> {
        let r = match side {
            Side::Entry => program_mut::<FEntry>(ebpf, program)?.attach().map(|_| ()),
            Side::Exit => program_mut::<FExit>(ebpf, program)?.attach().map(|_| ()),
        };
        r.map_err(|e| MechanismError::Function {
            function: self.function.to_string(),
            source: Box::new(MechanismError::program(e)),
        })
    }
}
