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

mod background;
mod error;
mod knobs;
mod lab;
mod links;
mod model;
mod netns;
mod parts;
mod relay;
mod tap;
mod topology;

pub use error::{LabError, SpecError, ValueError};
pub use knobs::{knobs_help, KnobDoc, Knobs, LabSpec, Stall, Topology, CONTROL_KNOBS, KNOBS};
pub use lab::Lab;
pub use links::LinkStats;
pub use model::{Device, DeviceKind, Guest};
pub use netns::Namespace;
pub use relay::{RelayStats, StallWindow};
