//! vprobe's load generators: the traffic a session makes while it watches,
//! or that `vprobe rr` and `vprobe serve` make on their own.
//!
//! - [`tcp_rr`]: netperf's TCP_RR, client ([`tcp_rr::start`]) and server
//!   ([`tcp_rr::serve`]), every transaction's latency in an hdrhistogram
//!   ([`latency`]); its options ([`tcp_rr::RrOptions`]) and their limits are
//!   the same for the CLI, scripts and the server.
//! - [`exec`]: an external command (netperf, iperf3, a user's program), its
//!   output captured, its process group killed when it is stopped.
//!
//! Each workload runs on its own OS threads (blocking sockets, the lowest
//! latency) and hands back a handle: a live snapshot at any time, `stop()`,
//! and `join()` for the result. Dropping a handle stops the workload and waits
//! for its threads, so nothing outlives it. Each can run inside a network
//! namespace given as an fd ([`Netns`]), e.g. a lab's anonymous namespace.
#![deny(missing_docs)]

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

mod error;
pub mod exec;
pub mod latency;
pub mod tcp_rr;

pub use error::{HandshakeError, LoadError};

/// A network namespace, as an open fd on `/proc/PID/ns/net`, `/run/netns/NAME`
/// or a namespace a lab holds. Shared by every thread that enters it.
pub type Netns = Arc<OwnedFd>;

/// Enters `ns` on the calling thread. Only for threads the workload owns: the
/// thread stays in the namespace for the rest of its life.
pub(crate) fn enter(ns: &Netns) -> Result<(), LoadError> {
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| LoadError::Netns(io::Error::from(e)))
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin(cpu: usize) -> Result<(), LoadError> {
    let err = |e: nix::Error| LoadError::Cpu {
        cpu,
        source: io::Error::from(e),
    };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(err)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(err)
}

/// Locks a mutex even if a thread panicked while holding it: the data are
/// counters, still meaningful.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
