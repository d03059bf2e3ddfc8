//! What a lab is made of, as the topology builds it: namespaces with a
//! netlink socket in each, the devices in them, the guests and the relays.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::background::Background;
use crate::error::LabError;
use crate::links::Netlink;
use crate::model::{Device, DeviceKind, Guest};
use crate::netns::Namespace;
use crate::relay::Relay;

/// How long a new lab's devices may take to pass traffic.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(5);

/// A lab's parts. Dropped half-built (a step of the topology failed) or
/// whole, it takes everything down: the relays stop, the namespaces close.
pub(crate) struct Parts {
    // Fields drop in this order: background traffic, relays (their threads
    // hold the device fds), then the netlink sockets, then the namespaces.
    pub background: Option<Background>,
    pub relays: Vec<Relay>,
    netlink: Vec<Mutex<Netlink>>,
    pub namespaces: Vec<Namespace>,
    pub devices: Vec<Device>,
    pub guests: Vec<Guest>,
    /// Whether the relays stall and the background traffic flows (see
    /// `Lab::set_disturbed`); shared with their threads.
    pub disturbed: Arc<AtomicBool>,
}

impl Parts {
    /// Nothing yet.
    pub fn new() -> Parts {
        Parts {
            background: None,
            relays: Vec::new(),
            netlink: Vec::new(),
            namespaces: Vec::new(),
            devices: Vec::new(),
            guests: Vec::new(),
            disturbed: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Makes a namespace with `lo` up and a netlink socket inside.
    pub fn add_namespace(&mut self, name: &str) -> Result<usize, LabError> {
        let ns = Namespace::create(name)?;
        let mut nl = ns.run(|| Netlink::open_here(name))??;
        nl.up("lo")?;
        self.namespaces.push(ns);
        self.netlink.push(Mutex::new(nl));
        Ok(self.namespaces.len() - 1)
    }

    /// The netlink socket of namespace `i`.
    pub fn nl(&self, i: usize) -> MutexGuard<'_, Netlink> {
        self.netlink[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records device `name` of namespace `i`.
    pub fn record(&mut self, i: usize, name: &str, kind: DeviceKind, ifindex: u32) {
        self.devices.push(Device {
            name: name.to_string(),
            kind,
            ifindex,
            namespace: self.namespaces[i].name().to_string(),
            netns_inode: self.namespaces[i].inode(),
        });
    }

    /// The index of the namespace named `name`.
    pub fn ns_index(&self, name: &str) -> Result<usize, LabError> {
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

    /// Waits until every device passes traffic: carrier changes reach the
    /// link watch asynchronously, and until then a device's qdisc drops all.
    pub fn wait_running(&self) -> Result<(), LabError> {
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
}
