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
    /// Writing output failed.
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `error: cause: cause` — the one way
/// vprobe shows a chain, in the engine's messages and in the binary's.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn a_chain_reads_outermost_first() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("no such device"));
        assert_eq!(error_chain(&e), "cannot start: no such device");
        assert_eq!(error_chain(&std::io::Error::other("alone")), "alone");
    }
}
