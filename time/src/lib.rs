//! Time as vprobe's parts share it: durations written the way users type them
//! (`500ms`, `20ms/1s` in lab knobs, `-d 12s` on the command line, `every("1s")`
//! in scripts), and CLOCK_MONOTONIC, the clock the kernel stamps events with.
//!
//! Its own crate because the lab, the load generators and the engine all speak
//! it, and none of them should depend on another for it.
#![deny(missing_docs)]

pub mod clock;
pub mod duration;

pub use clock::monotonic_ns;
pub use duration::DurationError;
