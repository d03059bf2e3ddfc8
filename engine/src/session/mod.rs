//! Loading, attaching and detaching program instances (one module per
//! mechanism, like aya's `programs/`).
//!
//! A [`Session`] owns every instance it loads; each instance's links are fd-based,
//! so dropping the session — or the process dying, even by SIGKILL — detaches
//! everything.

mod fentry;
mod instance;
mod kprobe;
mod raw_tracepoint;
#[allow(clippy::module_inception)]
mod session;
mod tables;
mod tp_btf;
mod tracepoint;
mod uprobe;

pub use instance::{Instance, InstanceId};
pub use session::{Session, SessionOptions, Support};

use crate::plan::Origin;

/// Why loading or attaching failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not enough privilege to load BPF programs.
    #[error("{0}")]
    Privileges(String),
    /// The kernel's BTF could not be read.
    #[error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {0}; vprobe needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    Btf(String),
    /// A filter could not be turned into settings.
    #[error("{origin}: {message}")]
    Settings {
        /// Where the probe was requested.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// No mechanism of this attach point works on this kernel.
    #[error("{origin}: `{probe}` is not available on this kernel: {}{}", reasons.join("; "), hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Unavailable {
        /// Where the probe was requested.
        origin: Origin,
        /// Attach point.
        probe: String,
        /// Per mechanism, why it failed.
        reasons: Vec<String>,
        /// What to use instead, when an attach point that works covers the same events.
        hint: Option<String>,
    },
    /// The attach point works on this kernel, but attaching this request failed
    /// (a function or symbol that is not there, ...).
    #[error("{origin}: cannot attach `{probe}`: {}", reasons.join("; "))]
    Attach {
        /// Where the probe was requested.
        origin: Origin,
        /// Attach point.
        probe: String,
        /// Per mechanism, why attaching failed.
        reasons: Vec<String>,
    },
    /// A map could not be read.
    #[error("reading map `{map}` of `{probe}`: {message}")]
    Map {
        /// Attach point.
        probe: String,
        /// Map name.
        map: &'static str,
        /// What failed.
        message: String,
    },
}
