//! The engine's error: one small enum per module, gathered here.

use crate::script::ScriptError;
use crate::session::SessionError;
use crate::workload::WorkloadError;
use vprobe_lab::LabError;

/// Anything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A script failed to compile, plan or run.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// Loading or attaching failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A lab could not be built or read.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A workload could not start.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// A capture file could not be created.
    #[error(transparent)]
    Capture(#[from] crate::output::pcap::CaptureError),
    /// The caller refused the plan ([`crate::run::PlanCheck`]).
    #[error(transparent)]
    Refused(#[from] crate::run::Refused),
    /// Writing output failed (the writer's error says where).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
