//! fentry/fexit (BPF trampolines): the cheapest function hooks; need BTF and
//! CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS. Some kernels refuse to load them
//! with EPERM and an empty verifier log (lockdown, an LSM, a hypervisor's
//! kernel policy): that is recognised and said plainly.

use aya::programs::{FEntry, FExit, ProgramError};
use aya::{Btf, Ebpf};

use super::instance::{describe, program_mut};
use crate::kernel;

/// The reason fentry is refused, from a load error.
fn refusal(e: &ProgramError) -> String {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    {
        if io_error.raw_os_error() == Some(libc::EPERM)
            && verifier_log.to_string().trim().is_empty()
        {
            let why = match kernel::lockdown() {
                Some(mode) => format!("kernel lockdown is on ({mode})"),
                None => "most likely kernel lockdown or a security module (LSM) policy".into(),
            };
            return format!(
                "this kernel refuses fentry/fexit programs (BPF_PROG_LOAD: EPERM with an empty verifier log): BPF trampolines are not permitted here; {why}"
            );
        }
    }
    describe(e)
}

fn has_function(btf: &Btf, function: &str) -> Result<(), String> {
    btf.id_by_type_name_kind(function, aya_obj::btf::BtfKind::Func)
        .map(|_| ())
        .map_err(|_| format!("the kernel's BTF has no function `{function}`"))
}

/// Loads `program` (fentry, or fexit when `exit`) for `function` without attaching.
pub(super) fn load(
    ebpf: &mut Ebpf,
    program: &str,
    function: &str,
    btf: &Btf,
    exit: bool,
) -> Result<(), String> {
    has_function(btf, function)?;
    let r = if exit {
        program_mut::<FExit>(ebpf, program)?.load(function, btf)
    } else {
        program_mut::<FEntry>(ebpf, program)?.load(function, btf)
    };
    r.map_err(|e| refusal(&e))
}

/// Attaches the loaded `program` (loaded for `function`).
pub(super) fn attach(
    ebpf: &mut Ebpf,
    program: &str,
    function: &str,
    exit: bool,
) -> Result<(), String> {
    let r = if exit {
        program_mut::<FExit>(ebpf, program)?.attach().map(|_| ())
    } else {
        program_mut::<FEntry>(ebpf, program)?.attach().map(|_| ())
    };
    r.map_err(|e| format!("kernel function `{function}`: {}", describe(&e)))
}
