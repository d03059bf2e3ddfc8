//! A built lab: its namespaces, devices, guests and relays.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::knobs::LabSpec;
use super::links::{LinkStats, Netlink};
use super::netns::Namespace;
use super::relay::{Relay, RelayStats};
use super::topology;
use crate::error::LabError;

/// How long a new lab's devices may take to pass traffic.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(5);

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

/// A running lab. Dropping it (or [`Lab::down`]) stops the relays and closes
/// every namespace; the kernel then removes every device in them.
pub struct Lab {
    // Fields drop in this order: relays (their threads hold the device fds),
    // then the netlink sockets, then the namespaces.
    pub(super) relays: Vec<Relay>,
    pub(super) netlink: Vec<Mutex<Netlink>>,
    pub(super) namespaces: Vec<Namespace>,
    pub(super) devices: Vec<Device>,
    pub(super) guests: Vec<Guest>,
    spec: LabSpec,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("spec", &self.spec.to_string())
            .field("namespaces", &self.namespaces)
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Builds the lab `spec` describes. On error, whatever was built is torn down.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        let mut lab = Lab {
            relays: Vec::new(),
            netlink: Vec::new(),
            namespaces: Vec::new(),
            devices: Vec::new(),
            guests: Vec::new(),
            spec: spec.clone(),
        };
        topology::build(&mut lab)?;
        lab.wait_running()?;
        Ok(lab)
    }

    /// Waits until every device passes traffic: carrier changes reach the
    /// link watch asynchronously, and until then a device's qdisc drops all.
    fn wait_running(&self) -> Result<(), LabError> {
        let deadline = Instant::now() + RUNNING_TIMEOUT;
        for (i, ns) in self.namespaces.iter().enumerate() {
            for d in self.devices.iter().filter(|d| d.namespace == ns.name()) {
                while !self.nl(i).running(&d.name)? {
                    if Instant::now() >= deadline {
                        return Err(LabError::NotRunning {
                            ns: ns.name().to_string(),
                            dev: d.name.clone(),
                            after: RUNNING_TIMEOUT,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        Ok(())
    }

    /// What it was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// Its guests, `guest-a` first.
    pub fn guests(&self) -> &[Guest] {
        &self.guests
    }

    /// The guest named `name`.
    pub fn guest(&self, name: &str) -> Option<&Guest> {
        self.guests.iter().find(|g| g.name == name)
    }

    /// Its namespaces (hosts first, then guests).
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// The namespace named `name`.
    pub fn namespace(&self, name: &str) -> Result<&Namespace, LabError> {
        self.ns_index(name).map(|i| &self.namespaces[i])
    }

    /// The inodes of all its namespaces.
    pub fn netns_inodes(&self) -> Vec<u64> {
        self.namespaces.iter().map(Namespace::inode).collect()
    }

    /// Every device it made (not the namespaces' `lo`).
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Its macvtaps (none unless the topology is `macvtap`).
    pub fn macvtaps(&self) -> impl Iterator<Item = &Device> {
        self.devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Macvtap)
    }

    /// The counters of device `dev` in namespace `ns`, read over netlink.
    pub fn link_stats(&self, ns: &str, dev: &str) -> Result<LinkStats, LabError> {
        let i = self.ns_index(ns)?;
        self.netlink[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats(dev)
    }

    /// What each relay has moved.
    pub fn relay_stats(&self) -> Vec<RelayStats> {
        self.relays.iter().map(Relay::stats).collect()
    }

    /// Stops the relays (joining their threads) and closes every namespace.
    /// The kernel dismantles closed namespaces asynchronously, so devices may
    /// linger for a moment after this returns.
    pub fn down(self) {
        drop(self)
    }

    fn ns_index(&self, name: &str) -> Result<usize, LabError> {
        self.namespaces
            .iter()
            .position(|n| n.name() == name)
            .ok_or_else(|| LabError::NoNamespace {
                ns: name.to_string(),
                have: self
                    .namespaces
                    .iter()
                    .map(|n| n.name().to_string())
                    .collect(),
            })
    }

    /// Makes a namespace with `lo` up and a netlink socket inside.
    pub(super) fn add_namespace(&mut self, name: &str) -> Result<usize, LabError> {
        let ns = Namespace::create(name)?;
        let mut nl = ns.run(|| Netlink::open_here(name))??;
        nl.up("lo")?;
        self.namespaces.push(ns);
        self.netlink.push(Mutex::new(nl));
        Ok(self.namespaces.len() - 1)
    }

    /// The netlink socket of namespace `i`.
    pub(super) fn nl(&self, i: usize) -> std::sync::MutexGuard<'_, Netlink> {
        self.netlink[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records device `name` of namespace `i`.
    pub(super) fn record(&mut self, i: usize, name: &str, kind: DeviceKind, ifindex: u32) {
        self.devices.push(Device {
            name: name.to_string(),
            kind,
            ifindex,
            namespace: self.namespaces[i].name().to_string(),
            netns_inode: self.namespaces[i].inode(),
        });
    }
}
