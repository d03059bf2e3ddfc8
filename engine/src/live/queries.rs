//! [`LiveHost`]: how a running script's queries (`total`, `entries`,
//! `workload`, `dev_stat`, `lab`) are answered, from the session it shares
//! with [`super::Live`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::output::Lost;
use crate::plan::AggName;
use crate::script::{AggTotal, DevStatError, Host};
use crate::session::Session;
use crate::symbols::Symbols;
use crate::workload::Running;
use vprobe_lab::Lab;

/// Answers script queries from the live session.
pub struct LiveHost {
    pub(crate) session: Rc<RefCell<Session>>,
    pub(crate) symbols: Rc<Symbols>,
    pub(crate) workloads: Rc<RefCell<Running>>,
    pub(crate) lab: Rc<RefCell<Option<Rc<Lab>>>>,
    pub(crate) tally: Rc<RefCell<crate::loss::Tally>>,
    pub(crate) callback_errors: Rc<std::cell::Cell<u64>>,
}

impl Host for LiveHost {
    fn agg_total(&self, name: &AggName) -> Option<AggTotal> {
        let session = self.session.borrow();
        let snap = session.snapshot(name.as_str(), &self.symbols).ok()??;
        Some(AggTotal {
            total: snap.total(),
            refused: session.map_full(name.as_str()),
        })
    }

    fn lost(&self) -> Lost {
        crate::loss::lost(
            &self.session.borrow(),
            &self.tally.borrow(),
            self.callback_errors.get(),
        )
    }

    fn lost_by_probe(&self) -> std::collections::BTreeMap<String, Lost> {
        crate::loss::lost_by_probe(&self.session.borrow(), &self.tally.borrow())
    }

    fn agg_entries(&self, name: &AggName) -> Option<serde_json::Value> {
        let mut snap = self
            .session
            .borrow()
            .snapshot(name.as_str(), &self.symbols)
            .ok()??;
        snap.sort();
        serde_json::to_value(&snap).ok()
    }

    fn workload(&self, name: &str) -> Option<serde_json::Value> {
        self.workloads.borrow().json(name)
    }

    fn dev_stat(&self, dev: &str, stat: &str) -> Result<u64, DevStatError> {
        match self.lab.borrow().as_deref() {
            Some(lab) => lab_dev_stat(lab, dev, stat),
            None => sysfs_dev_stat(dev, stat),
        }
    }

    fn lab(&self) -> Option<serde_json::Value> {
        self.lab.borrow().as_deref().map(lab_json)
    }

    fn devices(&self, pattern: &str) -> Vec<String> {
        let names: Vec<String> = match self.lab.borrow().as_deref() {
            Some(lab) => lab.devices().iter().map(|d| d.name.clone()).collect(),
            None => std::fs::read_dir("/sys/class/net")
                .map(|d| {
                    d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut out: Vec<String> = names
            .into_iter()
            .filter(|n| match pattern.strip_suffix('*') {
                Some(prefix) => n.starts_with(prefix),
                None => n == pattern,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The lab as scripts see it: `lab().guests[0].addr`, `lab().macvtaps`, ...
pub fn lab_json(lab: &Lab) -> serde_json::Value {
    serde_json::json!({
        "spec": lab.spec().to_string(),
        "topology": lab.spec().topology.name(),
        "guests": lab.guests().iter().map(|g| serde_json::json!({
            "name": g.name,
            "addr": g.addr.to_string(),
            "prefix": g.prefix,
            "dev": g.dev,
            "netns": g.netns_inode,
        })).collect::<Vec<_>>(),
        "devices": lab.devices(),
        "macvtaps": lab.macvtaps().map(|d| d.name.clone()).collect::<Vec<_>>(),
        "netns": lab.netns_inodes(),
        // each relay's stalls so far, by the device it reads:
        // [[start_ns, end_ns, planned], ..] (planned: the `stall` knob; else it was late)
        "stalls": lab.stalls().into_iter().map(|(dev, w)| {
            (dev, serde_json::Value::Array(w.iter().map(|w| serde_json::json!([w.start_ns, w.end_ns, w.planned])).collect()))
        }).collect::<serde_json::Map<_, _>>(),
    })
}

/// A statistic of a lab device: `DEV` when one lab namespace has it (the
/// macvtaps), else `NAMESPACE/DEV` (`guest-a/eth0`); read over netlink.
pub fn lab_dev_stat(lab: &Lab, dev: &str, stat: &str) -> Result<u64, DevStatError> {
    let (ns, name) = match dev.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name),
        None => {
            let holders: Vec<&str> = lab
                .devices()
                .iter()
                .filter(|d| d.name == dev)
                .map(|d| d.namespace.as_str())
                .collect();
            match holders[..] {
                [ns] => (ns.to_string(), dev),
                [] => {
                    return Err(DevStatError::NotInLab {
                        dev: dev.to_string(),
                        known: lab.devices().iter().map(|d| d.name.clone()).collect(),
                    });
                }
                _ => {
                    return Err(DevStatError::Ambiguous {
                        dev: dev.to_string(),
                        namespaces: holders.iter().map(|ns| ns.to_string()).collect(),
                    })
                }
            }
        }
    };
    let stats = lab
        .link_stats(&ns, name)
        .map_err(|e| DevStatError::Lab(Box::new(e)))?;
    let v = serde_json::to_value(stats).map_err(|e| DevStatError::Lab(Box::new(e)))?;
    v.get(stat)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| DevStatError::NoLabStat {
            dev: dev.to_string(),
            stat: stat.to_string(),
            known: v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
        })
}

/// Reads `/sys/class/net/DEV/statistics/STAT` (this process's network namespace).
pub fn sysfs_dev_stat(dev: &str, stat: &str) -> Result<u64, DevStatError> {
    let name_ok =
        |s: &str| !s.is_empty() && s.len() < 64 && !s.contains('/') && s != "." && s != "..";
    if !name_ok(dev) {
        return Err(DevStatError::BadDevice(dev.to_string()));
    }
    if !name_ok(stat) || !stat.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(DevStatError::BadStat(stat.to_string()));
    }
    let dir = std::path::Path::new("/sys/class/net").join(dev);
    if !dir.exists() {
        return Err(DevStatError::NoDevice(dev.to_string()));
    }
    let path = dir.join("statistics").join(stat);
    let text = std::fs::read_to_string(&path).map_err(|why| DevStatError::NoStat {
        dev: dev.to_string(),
        stat: stat.to_string(),
        why,
    })?;
    text.trim().parse().map_err(|_| DevStatError::Unexpected {
        path: path.display().to_string(),
        text: text.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loopback_counters_and_rejects_bad_names() {
        assert!(sysfs_dev_stat("lo", "rx_packets").is_ok());
        assert!(sysfs_dev_stat("lo", "no_such_stat")
            .unwrap_err()
            .to_string()
            .contains("no statistic"));
        assert!(sysfs_dev_stat("nodev0", "rx_dropped")
            .unwrap_err()
            .to_string()
            .contains("no network device"));
        assert!(sysfs_dev_stat("../lo", "rx_dropped").is_err());
        assert!(sysfs_dev_stat("lo", "../uevent").is_err());
    }
}
