//! What the test areas share; no tests of vprobe here, only the fixtures'
//! own checks.
//!
//! - [`util`]: the root policy, the kernel lock, temp dirs, bounded child
//!   processes, a running `vprobe --format json` session and its summary.
//! - [`netns`]: disposable network namespaces and veth pairs.
//! - [`traffic`]: bounded traffic generators inside those namespaces.
//! - [`labs`]: the reproductions the fidelity, attach and tap tests measure
//!   (a macvtap whose ring overflows, TCP whose path goes dark, a tap).
//! - [`host`]: what the host shows of labs, to check they leave nothing.
//! - [`kernel`]: vprobe's programs, maps and links in the kernel.
//! - [`tracefs`]: a tracefs instance of the test's own, ftrace's record of
//!   trace events (the witness where no BPF program runs).

pub mod host;
pub mod kernel;
pub mod labs;
pub mod netns;
pub mod prometheus;
pub mod schema;
pub mod tracefs;
pub mod traffic;
pub mod util;
