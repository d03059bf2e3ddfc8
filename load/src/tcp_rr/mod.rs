//! netperf's TCP_RR: `streams` TCP connections, each doing synchronous
//! request/response, every transaction timed.
//!
//! Each stream is one connection (TCP_NODELAY on both ends) on its own thread
//! with a blocking socket: send `request_size` bytes, read the full
//! `response_size` bytes back, repeat; a transaction's latency is the
//! monotonic time from before the send to after the last byte of the response.
//! Only one transaction is ever in flight per stream, exactly as netperf
//! `-t TCP_RR -- -r REQ,RESP`; with N streams, netperf users run N netperf
//! processes side by side, which is what the N threads do here.
//!
//! Before the test, each connection carries one 16-byte hello (magic, version
//! and the two sizes) and the server's 4-byte answer ([`protocol`]), so
//! [`serve`] needs no configuration (netperf sends the same on its control
//! connection). After that, the connection carries only requests and
//! responses.
//!
//! The run ([`start`]): connect every stream (start fails with the first
//! connection error), warm up for `warmup` (transactions not counted), measure
//! for `duration` (or until [`RrHandle::stop`]). A transaction in flight at
//! the end may finish within [`END_GRACE`] and is counted (so a slow tail is
//! not cut off); after that, the connections are shut down and what was still
//! in flight is reported as `unfinished`.
//!
//! Every measured transaction at or above the smallest threshold is also
//! kept as a [`SlowTransaction`]: its connection and its CLOCK_MONOTONIC
//! interval, the clock of `bpf_ktime_get_ns`, so it can be matched with the
//! kernel's events on that connection at that time.

mod client;
mod options;
pub mod protocol;
mod server;

pub use client::{
    start, RrHandle, RrPhase, RrResult, RrSnapshot, SlowTransaction, StreamError, END_GRACE,
    MAX_SLOW_RECORDS,
};
pub use options::{default_thresholds, parse_cpus, OptionsError, RrOptions};
pub use protocol::{DEFAULT_PORT, MAX_MESSAGE, MAX_STREAMS};
pub use server::{serve, ServeStats, ServerHandle};
