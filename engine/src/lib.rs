//! vprobe's engine: everything that is not a user interface.
//!
//! A script ([`script`]) declares probe requests ([`plan`]); a [`session::Session`]
//! loads the precompiled programs from `vprobe-probes` with the settings each
//! request needs, attaches them and owns their links; [`agg`] reads the in-kernel
//! aggregations; [`events`] drains ring buffers; [`live`] is a running session
//! (plans applied, timers, callbacks, actions) that [`run`] drives with a stop
//! signal and a deadline, and the REPL with typed lines; [`output`] writes text or JSON
//! Lines; [`workload`] runs the traffic a script declares (netperf-style
//! TCP_RR, external commands: the generators of `vprobe-load`) while a
//! session watches, in a lab from `vprobe-lab` (a disposable topology) when
//! one is given.
#![deny(missing_docs)]

pub mod agg;
pub mod correlate;
pub mod error;
pub mod events;
pub mod filter;
pub mod generic;
pub mod kernel;
pub mod library;
pub mod live;
pub mod loss;
pub mod message;
pub mod meta;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod run;
pub mod script;
pub mod session;
pub mod symbols;
pub mod trigger;
pub mod value;
pub mod workload;

pub use error::{Error, Result};
pub use vprobe_probes as probes;
