//! Loading, attaching and detaching program instances (one module per
//! mechanism, like aya's `programs/`).
//!
//! A [`Session`] owns every instance it loads; each instance's links are fd-based,
//! so dropping the session — or the process dying, even by SIGKILL — detaches
//! everything.

mod attach;
mod btf_cache;
mod error;
mod fentry;
mod instance;
mod kernel_btf;
mod kprobe;
mod raw_tracepoint;
#[allow(clippy::module_inception)]
mod session;
mod tables;
mod tp_btf;
mod tracepoint;
mod uprobe;

pub use error::{MapAccess, MechanismError, Reason, SessionError};
pub use instance::{Instance, InstanceId, InstanceLoss};
pub use kernel_btf::{btf_parses, btf_use, preload_btf};
pub use session::{
    ring_bytes_for, ring_bytes_of, Session, SessionOptions, Support, RING_HOLDS_MS,
    RING_SIZED_FOR_EVENTS_PER_S,
};
pub use tables::TableError;
