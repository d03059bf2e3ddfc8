//! Why a workload could not start, or a part of it failed.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tcp_rr::OptionsError;

/// Why a workload could not start (or a part of it failed).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An option is out of range.
    #[error("invalid workload option")]
    Invalid(#[from] OptionsError),
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
    #[error("stream {stream}: {target} did not answer as a `vprobe serve`")]
    Handshake {
        /// Stream index (0-based).
        stream: usize,
        /// Server address.
        target: SocketAddr,
        /// What went wrong.
        #[source]
        source: HandshakeError,
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

/// How a peer failed a client's hello.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// It answered something else than the server's answer.
    #[error("it answered {0:02x?}")]
    Answered([u8; 4]),
    /// It closed the connection without answering.
    #[error("it closed the connection (a different program, or a different vprobe version)")]
    Closed,
    /// It said nothing within the connect timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Reading the answer failed.
    #[error(transparent)]
    Io(io::Error),
}
