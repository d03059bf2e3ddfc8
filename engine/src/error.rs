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
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
