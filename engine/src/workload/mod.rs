//! Workloads: the traffic a session makes while it watches.
//!
//! - [`tcp_rr`]: netperf's TCP_RR, client ([`tcp_rr::start`]) and server
//!   ([`tcp_rr::serve`]), every transaction's latency in an hdrhistogram.
//! - [`running`]: a session's declared workloads, started, polled, finished.
//! - [`exec`]: an external command (netperf, iperf3, a user's program), its
//!   output captured, its process group killed when it is stopped.
//!
//! Each workload runs on its own OS threads (blocking sockets, the lowest
//! latency) and hands back a handle: a live snapshot at any time, `stop()`,
//! and `join()` for the result. Dropping a handle stops the workload and waits
//! for its threads, so nothing outlives it. Each can run inside a network
//! namespace given as an fd ([`Netns`]), e.g. a lab's anonymous namespace.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

pub mod exec;
pub mod latency;
pub mod running;
pub mod tcp_rr;

pub use exec::{ExecHandle, ExecOptions, ExecResult};
pub use latency::{LatencyBucket, LatencySummary, ThresholdCount};
pub use running::{LabPath, Running, WorkloadResult};
pub use tcp_rr::{RrHandle, RrOptions, RrResult, ServeOptions, ServerHandle, SlowTransaction};

/// A network namespace, as an open fd on `/proc/PID/ns/net`, `/run/netns/NAME`
/// or a namespace a lab holds. Shared by every thread that enters it.
pub type Netns = Arc<OwnedFd>;

/// Why a workload could not start (or a part of it failed).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An option is out of range.
    #[error("invalid workload option: {0}")]
    Invalid(String),
    /// `setns(CLONE_NEWNET)` failed.
    #[error("cannot enter the network namespace")]
    Netns(#[source] io::Error),
    /// Pinning a thread to a CPU failed.
    #[error("cannot pin a thread to CPU {cpu}")]
    Cpu {
        /// The CPU asked for.
        cpu: usize,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server could not listen.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A stream could not connect.
    #[error("stream {stream}: cannot connect to {target}")]
    Connect {
        /// Stream index (0-based).
        stream: usize,
        /// Server address.
        target: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The peer did not answer the vprobe handshake.
    #[error("stream {stream}: {target} did not answer as a `vprobe serve`: {detail}")]
    Handshake {
        /// Stream index (0-based).
        stream: usize,
        /// Server address.
        target: SocketAddr,
        /// What went wrong.
        detail: String,
    },
    /// A thread or process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// What was being started.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Enters `ns` on the calling thread. Only for threads the workload owns: the
/// thread stays in the namespace for the rest of its life.
pub(crate) fn enter(ns: &Netns) -> Result<(), WorkloadError> {
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| WorkloadError::Netns(io::Error::from(e)))
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin(cpu: usize) -> Result<(), WorkloadError> {
    let err = |e: nix::Error| WorkloadError::Cpu {
        cpu,
        source: io::Error::from(e),
    };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(err)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(err)
}

/// Locks a mutex even if a thread panicked while holding it: the data are
/// counters, still meaningful.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
