//! What a lab reports about itself: the devices it made and its guests.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// What a lab device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// One end of a veth pair.
    Veth,
    /// A bridge-mode macvtap.
    Macvtap,
    /// A tun/tap device in TAP mode.
    Tap,
    /// A Linux bridge.
    Bridge,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Veth => "veth",
            DeviceKind::Macvtap => "macvtap",
            DeviceKind::Tap => "tap",
            DeviceKind::Bridge => "bridge",
        })
    }
}

/// A device the lab made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Device {
    /// Its name inside its namespace (`macvtap0`, `eth0`).
    pub name: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its ifindex inside its namespace.
    pub ifindex: u32,
    /// The lab namespace it lives in (`host-a`).
    pub namespace: String,
    /// That namespace's inode.
    pub netns_inode: u64,
}

/// A guest: a namespace with one interface (`eth0`) and an address.
#[derive(Clone, Debug)]
pub struct Guest {
    /// `guest-a` or `guest-b`, also its namespace's name.
    pub name: String,
    /// Its IPv4 address (`192.0.2.1`, `192.0.2.2`).
    pub addr: Ipv4Addr,
    /// Prefix length of its network.
    pub prefix: u8,
    /// Its interface.
    pub dev: String,
    /// Its interface's MAC address.
    pub mac: [u8; 6],
    /// Its namespace: a thread that `setns`es into this runs inside the guest.
    pub netns: Arc<OwnedFd>,
    /// Its namespace's inode.
    pub netns_inode: u64,
}
