//! fentry/fexit (BPF trampolines): the cheapest function hooks; need BTF and
//! CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS. Some kernels refuse to load them
//! with EPERM and an empty verifier log (lockdown, an LSM, a hypervisor's
//! kernel policy): that is recognised and said plainly.

use aya::programs::{FEntry, FExit, ProgramError};
use aya::{Btf, Ebpf};

use super::attach::{program_mut, Attach, Side};
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

fn has_function(btf: &Btf, function: &str) -> Result<(), MechanismError> {
    btf.id_by_type_name_kind(function, aya_obj::btf::BtfKind::Func)
        .map(|_| ())
        .map_err(|_| MechanismError::NoBtfFunction(function.to_string()))
}

impl Attach for Fentry {
    fn load(
        &self,
        ebpf: &mut Ebpf,
        program: &str,
        side: Side,
        btf: &Btf,
    ) -> Result<(), MechanismError> {
        has_function(btf, self.function)?;
        let r = match side {
            Side::Entry => program_mut::<FEntry>(ebpf, program)?.load(self.function, btf),
            Side::Exit => program_mut::<FExit>(ebpf, program)?.load(self.function, btf),
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
