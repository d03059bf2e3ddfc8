//! Workloads of a session: what a script declares with `tcp_rr(..)` and
//! `exec(..)`, run by the load generators of `vprobe-load`.
//!
//! - [`running`]: a session's declared workloads, started (with the session
//!   or by a trigger), polled, finished into results; in a lab, a `tcp_rr`
//!   without a target runs across the lab ([`LabPath`]).
//!
//! The generators themselves (TCP_RR client and server, external commands,
//! latency histograms) and their options are `vprobe_load`'s.

use vprobe_load::LoadError;

pub mod running;

pub use running::{LabPath, Running, WorkloadCounters, WorkloadProgress, WorkloadResult};

/// Why a script's workload cannot be declared or started.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// No workload has this name.
    #[error("no workload named `{0}`")]
    Unknown(String),
    /// A `tcp_rr` without a target, outside a lab.
    #[error("no target: give `target: \"HOST:PORT\"` (a `vprobe serve`), or run with --lab")]
    NoTarget,
    /// A `target` that is not a numeric address.
    #[error(
        "target `{0}` is not an address: `192.0.2.2:12866`, `192.0.2.2` or `[2001:db8::2]:12866`"
    )]
    BadTarget(String),
    /// A workload declared under a name already taken.
    #[error("a workload named `{0}` already exists")]
    Duplicate(String),
    /// A `--load` named like one of the script's workloads.
    #[error("--load: the script has a workload named `{0}` already; name the load otherwise (`--load tcp_rr:name=load,...`)")]
    LoadNameTaken(String),
    /// A `tcp_rr` whose target cannot be used.
    #[error("tcp_rr `{name}`: {why}")]
    Target {
        /// The workload.
        name: String,
        /// Why (in the message, so not also a `source()`).
        why: Box<WorkloadError>,
    },
    /// The load generator could not start.
    #[error(transparent)]
    Load(#[from] LoadError),
}
