//! Disposable labs: the virtualization stack of the seed case, rebuilt in
//! network namespaces that belong to this process.
//!
//! [`Lab::up`] builds a [`LabSpec`]: `macvtap` (two hosts on a veth wire, a
//! bridge-mode macvtap on each, a relay playing vhost-net into each guest),
//! `bridge` (a guest behind a tap on a bridge, a veth to the other guest) or
//! `veth`. Guests are `guest-a` (192.0.2.1/24) and `guest-b` (192.0.2.2/24).
//! Every namespace is anonymous and held by an fd, every device lives inside
//! one of them: dropping the lab, or the process dying in any way, leaves
//! nothing behind. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
//!
//! ```no_run
//! use vprobe_lab::{Lab, LabSpec};
//! let lab = Lab::up(&LabSpec::parse("macvtap:qlen=8,stall=20ms/1s")?)?;
//! let a = lab.guest("guest-a").unwrap();
//! println!("{} in netns {}", a.addr, a.netns_inode);
//! // … traffic between the guests …
//! let st = lab.link_stats("host-b", "macvtap1")?;
//! println!("macvtap1 rx_dropped {}", st.rx_dropped);
//! lab.down();
//! # Ok::<(), vprobe_lab::LabError>(())
//! ```
//!
//! It knows nothing of probes: the engine watches a lab from outside, by the
//! namespace inodes and device names a [`Lab`] reports.
#![deny(missing_docs)]

mod knobs;
mod lab;
mod links;
mod netns;
mod relay;
mod tap;
mod topology;

pub use knobs::{KnobDoc, Knobs, LabSpec, Stall, Topology, CONTROL_KNOBS, KNOBS};
pub use lab::{Device, DeviceKind, Guest, Lab};
pub use links::LinkStats;
pub use netns::Namespace;
pub use relay::RelayStats;

/// Why a lab could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab spec did not parse.
    #[error("lab `{spec}`: {message}")]
    Spec {
        /// The spec as written.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The lab needs privileges this process does not have.
    #[error("{what}: the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")]
    Privileges {
        /// What was refused.
        what: String,
        /// The refusal.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}")]
    Os {
        /// What was attempted.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink in lab namespace `{ns}`: {what}")]
    Netlink {
        /// The lab namespace.
        ns: String,
        /// The request.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// No such device in that namespace.
    #[error("no device `{dev}` in lab namespace `{ns}`")]
    NoDevice {
        /// The lab namespace.
        ns: String,
        /// The device asked for.
        dev: String,
    },
    /// A device did not come up.
    #[error("device `{dev}` in lab namespace `{ns}` is not running {after:?} after it was set up")]
    NotRunning {
        /// The lab namespace.
        ns: String,
        /// The device.
        dev: String,
        /// How long the lab waited.
        after: std::time::Duration,
    },
    /// No such namespace in this lab.
    #[error("no namespace `{ns}` in this lab; it has {}", have.join(", "))]
    NoNamespace {
        /// The name asked for.
        ns: String,
        /// The names it has.
        have: Vec<String>,
    },
}

/// Maps a failed syscall to [`LabError::Os`] (or [`LabError::Privileges`] on EPERM).
fn os(what: &str) -> impl Fn(nix::errno::Errno) -> LabError + '_ {
    move |e| {
        let what = what.to_string();
        let source = std::io::Error::from(e);
        if e == nix::errno::Errno::EPERM {
            LabError::Privileges { what, source }
        } else {
            LabError::Os { what, source }
        }
    }
}
