//! A built lab: its namespaces, devices, guests and relays.

use crate::background::Background;
use crate::error::LabError;
use crate::knobs::LabSpec;
use crate::links::LinkStats;
use crate::model::{Device, DeviceKind, Guest};
use crate::netns::Namespace;
use crate::parts::Parts;
use crate::relay::{Relay, RelayStats, StallWindow};
use crate::topology;

/// A running lab. Dropping it (or [`Lab::down`]) stops the relays and closes
/// every namespace; the kernel then removes every device in them.
pub struct Lab {
    parts: Parts,
    spec: LabSpec,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("spec", &self.spec.to_string())
            .field("namespaces", &self.parts.namespaces)
            .field("devices", &self.parts.devices)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Builds the lab `spec` describes. On error, whatever was built is torn down.
    pub fn up(spec: &LabSpec) -> Result<Lab, LabError> {
        let mut parts = topology::build(spec)?;
        parts.wait_running()?;
        if spec.topology.has_relay() && spec.knobs.background > 0 {
            let guests = parts
                .guests
                .iter()
                .map(|g| Ok((g, &parts.namespaces[parts.ns_index(&g.name)?])))
                .collect::<Result<Vec<_>, LabError>>()?;
            let background =
                Background::start(&guests, spec.knobs.background, parts.disturbed.clone())?;
            parts.background = Some(background);
        }
        Ok(Lab {
            parts,
            spec: spec.clone(),
        })
    }

    /// What it was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// Its guests, `guest-a` first.
    pub fn guests(&self) -> &[Guest] {
        &self.parts.guests
    }

    /// The guest named `name`.
    pub fn guest(&self, name: &str) -> Option<&Guest> {
        self.parts.guests.iter().find(|g| g.name == name)
    }

    /// Its namespaces (hosts first, then guests).
    pub fn namespaces(&self) -> &[Namespace] {
        &self.parts.namespaces
    }

    /// The namespace named `name`.
    pub fn namespace(&self, name: &str) -> Result<&Namespace, LabError> {
        self.parts.ns_index(name).map(|i| &self.parts.namespaces[i])
    }

    /// The inodes of all its namespaces.
    pub fn netns_inodes(&self) -> Vec<u64> {
        self.parts.namespaces.iter().map(Namespace::inode).collect()
    }

    /// Every device it made (not the namespaces' `lo`).
    pub fn devices(&self) -> &[Device] {
        &self.parts.devices
    }

    /// Its macvtaps (none unless the topology is `macvtap`).
    pub fn macvtaps(&self) -> impl Iterator<Item = &Device> {
        self.parts
            .devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Macvtap)
    }

    /// The counters of device `dev` in namespace `ns`, read over netlink.
    pub fn link_stats(&self, ns: &str, dev: &str) -> Result<LinkStats, LabError> {
        let i = self.parts.ns_index(ns)?;
        self.parts.nl(i).stats(dev)
    }

    /// What each relay has moved.
    pub fn relay_stats(&self) -> Vec<RelayStats> {
        self.parts.relays.iter().map(Relay::stats).collect()
    }

    /// Turns the lab's disturbances on or off: the relays' planned stalls
    /// and the background traffic (on when the lab is built). A run turns
    /// them off while it attaches its probes and on when it starts, so that
    /// every counter it compares sees the same drops.
    pub fn set_disturbed(&self, on: bool) {
        self.parts
            .disturbed
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The stalls of each relay so far, by the host-side device it reads
    /// (`macvtap1`): the windows when a drop there is a late consumer's.
    pub fn stalls(&self) -> Vec<(String, Vec<StallWindow>)> {
        self.parts
            .relays
            .iter()
            .map(|r| (r.device().to_string(), r.stall_windows()))
            .collect()
    }

    /// Stops the relays (joining their threads) and closes every namespace.
    /// The kernel dismantles closed namespaces asynchronously, so devices may
    /// linger for a moment after this returns.
    pub fn down(self) {
        drop(self)
    }
}
