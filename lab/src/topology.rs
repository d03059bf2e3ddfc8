//! The three topologies, built into the [`Parts`] a [`Lab`](crate::Lab) wraps.
//!
//! ```text
//! macvtap  guest-a eth0 ~relay a~ macvtap0@nic0 [host-a] ==veth== nic1 [host-b] macvtap1@nic1 ~relay b~ eth0 guest-b
//! bridge   guest-a eth0 ~relay a~ tap0 ─ br0 [host] ─ nic0 ==veth== eth0 guest-b
//! veth     guest-a eth0 ==veth== eth0 guest-b
//! ```
//! `~relay~`: a [`Relay`] moving frames between a host-side queue (macvtap char
//! device or tap) and the guest's tap, as vhost-net would for a VM.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use crate::error::{os, LabError, SpecError};
use crate::knobs::{LabSpec, Topology};
use crate::links::LinkSet;
use crate::model::{DeviceKind, Guest};
use crate::parts::Parts;
use crate::relay::{Relay, RelayConfig};
use crate::tap::{open_macvtap, open_tap};

/// Guest names, addresses (192.0.2.0/24, documentation range) and MACs
/// (locally administered; "vp").
const GUESTS: [(&str, Ipv4Addr, [u8; 6]); 2] = [
    (
        "guest-a",
        Ipv4Addr::new(192, 0, 2, 1),
        [0x02, 0x76, 0x70, 0, 0, 0x0a],
    ),
    (
        "guest-b",
        Ipv4Addr::new(192, 0, 2, 2),
        [0x02, 0x76, 0x70, 0, 0, 0x0b],
    ),
];
const PREFIX: u8 = 24;
/// The guests' interface.
const GUEST_DEV: &str = "eth0";

/// Builds the lab `spec` describes. On error, what was built is dropped,
/// and so torn down.
pub(crate) fn build(spec: &LabSpec) -> Result<Parts, LabError> {
    let mut lab = Parts::new();
    match spec.topology {
        Topology::Macvtap => macvtap(&mut lab, spec)?,
        Topology::Bridge => bridge(&mut lab, spec)?,
        Topology::Veth => veth(&mut lab)?,
    }
    Ok(lab)
}

fn macvtap(lab: &mut Parts, spec: &LabSpec) -> Result<(), LabError> {
    let knobs = &spec.knobs;
    let cfg = relay_config(spec)?;
    let ha = lab.add_namespace("host-a")?;
    let hb = lab.add_namespace("host-b")?;
    let peer = lab.namespaces[hb].fd().clone();
    lab.nl(ha).add_veth("nic0", "nic1", peer.as_fd())?;
    for (relay, host, nic, mvt, guest) in [
        ("a", ha, "nic0", "macvtap0", 0),
        ("b", hb, "nic1", "macvtap1", 1),
    ] {
        let nic_index = lab.nl(host).up(nic)?;
        lab.record(host, nic, DeviceKind::Veth, nic_index);
        // The guest's MAC: the macvtap delivers what is addressed to it.
        let mac = GUESTS[guest].2;
        // txqueuelen before the char device is opened: it sizes the ring.
        lab.nl(host).add_macvtap(mvt, nic_index, mac, knobs.qlen)?;
        let mvt_index = lab.nl(host).up(mvt)?;
        lab.record(host, mvt, DeviceKind::Macvtap, mvt_index);
        let host_fds = open_macvtap(&lab.namespaces[host], mvt, mvt_index, knobs.queues)?;
        let guest_fds = tap_guest(lab, guest, knobs.queues)?;
        lab.relays.push(Relay::start(
            relay,
            mvt,
            host_fds,
            guest_fds,
            cfg,
            lab.disturbed.clone(),
        )?);
    }
    Ok(())
}

fn bridge(lab: &mut Parts, spec: &LabSpec) -> Result<(), LabError> {
    let knobs = &spec.knobs;
    let cfg = relay_config(spec)?;
    let h = lab.add_namespace("host")?;
    lab.nl(h).add_bridge("br0")?;
    let br = lab.nl(h).up("br0")?;
    lab.record(h, "br0", DeviceKind::Bridge, br);

    let host_fds = lab.namespaces[h].run(|| open_tap("tap0", knobs.queues))??;
    let tap = lab.nl(h).index("tap0")?;
    // The tap's rings follow its txqueuelen (tun resizes them on change).
    lab.nl(h).set(
        tap,
        LinkSet {
            up: true,
            qlen: Some(knobs.qlen),
            master: Some(br),
            ..LinkSet::default()
        },
    )?;
    lab.record(h, "tap0", DeviceKind::Tap, tap);
    let guest_fds = tap_guest(lab, 0, knobs.queues)?;
    lab.relays.push(Relay::start(
        "a",
        "tap0",
        host_fds,
        guest_fds,
        cfg,
        lab.disturbed.clone(),
    )?);

    let gb = lab.add_namespace(GUESTS[1].0)?;
    let peer = lab.namespaces[gb].fd().clone();
    lab.nl(h).add_veth("nic0", GUEST_DEV, peer.as_fd())?;
    let nic = lab.nl(h).index("nic0")?;
    lab.nl(h).set(
        nic,
        LinkSet {
            up: true,
            master: Some(br),
            ..LinkSet::default()
        },
    )?;
    lab.record(h, "nic0", DeviceKind::Veth, nic);
    configure_guest(lab, gb, 1, DeviceKind::Veth)
}

fn veth(lab: &mut Parts) -> Result<(), LabError> {
    let a = lab.add_namespace(GUESTS[0].0)?;
    let b = lab.add_namespace(GUESTS[1].0)?;
    let peer = lab.namespaces[b].fd().clone();
    lab.nl(a).add_veth(GUEST_DEV, GUEST_DEV, peer.as_fd())?;
    configure_guest(lab, a, 0, DeviceKind::Veth)?;
    configure_guest(lab, b, 1, DeviceKind::Veth)
}

/// Makes guest `which`'s namespace with a tap as its interface and returns
/// the tap's queues, the relay's guest side.
fn tap_guest(lab: &mut Parts, which: usize, queues: u32) -> Result<Vec<OwnedFd>, LabError> {
    let i = lab.add_namespace(GUESTS[which].0)?;
    let fds = lab.namespaces[i].run(|| open_tap(GUEST_DEV, queues))??;
    configure_guest(lab, i, which, DeviceKind::Tap)?;
    Ok(fds)
}

/// Gives the guest's interface (namespace `i`) its MAC and address, brings it up.
fn configure_guest(
    lab: &mut Parts,
    i: usize,
    which: usize,
    kind: DeviceKind,
) -> Result<(), LabError> {
    let (name, addr, mac) = GUESTS[which];
    let index = lab.nl(i).index(GUEST_DEV)?;
    lab.nl(i).set(
        index,
        LinkSet {
            up: true,
            mac: Some(mac),
            ..LinkSet::default()
        },
    )?;
    lab.nl(i).add_address(index, addr, PREFIX)?;
    lab.record(i, GUEST_DEV, kind, index);
    let ns = &lab.namespaces[i];
    lab.guests.push(Guest {
        name: name.to_string(),
        addr,
        prefix: PREFIX,
        dev: GUEST_DEV.to_string(),
        mac,
        netns: ns.fd().clone(),
        netns_inode: ns.inode(),
    });
    Ok(())
}

fn relay_config(spec: &LabSpec) -> Result<RelayConfig, LabError> {
    let knobs = &spec.knobs;
    if let Some(cpu) = knobs.cpu {
        let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .map_err(os("sched_getaffinity"))?;
        if !allowed.is_set(cpu).unwrap_or(false) {
            return Err(LabError::Spec {
                spec: spec.to_string(),
                problem: SpecError::CpuNotAllowed { cpu },
            });
        }
    }
    Ok(RelayConfig {
        batch: knobs.batch,
        stall: knobs.stall,
        cpu: knobs.cpu,
    })
}
