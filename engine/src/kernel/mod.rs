//! What this host's kernel offers and what this process may do: the kernel
//! release, BTF, tracefs, the kprobe and uprobe PMUs, lockdown, privileges.
//! Facts found without loading anything; the session adds what only a load
//! can tell (tp_btf, fentry) to [`Features`], the `vprobe doctor` report.

mod btf_file;
mod features;
mod privileges;
mod tracefs;

use std::path::Path;

pub use btf_file::BtfBytes;
pub use features::{Feature, Features, FEATURE_NAMES};
pub use privileges::{privileges, Privileges};
pub use tracefs::{ensure_tracefs, tracefs, tracefs_state, Tracefs, TracefsError};

/// Kernel release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// This host's name (`uname -n`).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Whether the kernel publishes its BTF (CONFIG_DEBUG_INFO_BTF=y).
pub fn has_btf() -> bool {
    Path::new(VMLINUX_BTF).exists()
}

/// Whether the BTF at `path` parses (what loading any probe needs first):
/// its presence alone says nothing when it is truncated or from another kernel.
pub fn btf_parses(path: &Path) -> Result<(), aya::BtfError> {
    aya::Btf::parse_file(path, aya::Endianness::default()).map(|_| ())
}

/// Whether perf kprobes exist (CONFIG_KPROBE_EVENTS: the kprobe PMU).
pub fn has_kprobes() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

/// What kprobe mechanisms say on a kernel without them.
pub const KPROBES_ABSENT: &str =
    "kprobes are not built in (no /sys/bus/event_source/devices/kprobe)";

/// Whether perf uprobes exist (CONFIG_UPROBE_EVENTS: the uprobe PMU).
pub fn has_uprobes() -> bool {
    Path::new("/sys/bus/event_source/devices/uprobe/type").exists()
}

/// What uprobe mechanisms say on a kernel without them.
pub const UPROBES_ABSENT: &str =
    "uprobes are not built in (no /sys/bus/event_source/devices/uprobe)";

/// The kernel's lockdown mode (`integrity`, `confidentiality`), when securityfs
/// shows one other than `none`.
pub fn lockdown() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    lockdown_mode(&text)
}

/// The selected mode in securityfs's lockdown file (`none [integrity] confidentiality`).
fn lockdown_mode(text: &str) -> Option<String> {
    let mode = text.split('[').nth(1)?.split(']').next()?.to_string();
    (mode != "none").then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btf_that_does_not_parse_is_told() {
        let p = std::env::temp_dir().join(format!("vprobe-btf-{}", std::process::id()));
        std::fs::write(&p, b"not btf at all").unwrap();
        assert!(btf_parses(&p).is_err());
        std::fs::remove_file(&p).unwrap();
        if has_btf() {
            btf_parses(Path::new(VMLINUX_BTF)).unwrap();
        }
    }

    #[test]
    fn reads_the_selected_lockdown_mode() {
        assert_eq!(lockdown_mode("[none] integrity confidentiality\n"), None);
        assert_eq!(
            lockdown_mode("none [integrity] confidentiality\n").as_deref(),
            Some("integrity")
        );
        assert_eq!(lockdown_mode(""), None);
    }
}
