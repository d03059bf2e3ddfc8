//! [`LiveHost`]: how a running script's queries (`total`, `entries`,
//! `workload`, `dev_stat`, `lab`) are answered, from the session it shares
//! with [`crate::live::Live`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::script::Host;
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
}

impl Host for LiveHost {
    fn agg_total(&self, name: &str) -> Option<u64> {
        let snap = self.session.borrow().snapshot(name, &self.symbols).ok()??;
        Some(snap.total())
    }

    fn agg_entries(&self, name: &str) -> Option<serde_json::Value> {
        let mut snap = self.session.borrow().snapshot(name, &self.symbols).ok()??;
        snap.sort();
        serde_json::to_value(&snap).ok()
    }

    fn workload(&self, name: &str) -> Option<serde_json::Value> {
        self.workloads.borrow().json(name)
    }

    fn dev_stat(&self, dev: &str, stat: &str) -> Result<u64, String> {
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
    })
}

/// A statistic of a lab device: `DEV` when one lab namespace has it (the
/// macvtaps), else `NAMESPACE/DEV` (`guest-a/eth0`); read over netlink.
pub fn lab_dev_stat(lab: &Lab, dev: &str, stat: &str) -> Result<u64, String> {
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
                    let known: Vec<String> = lab.devices().iter().map(|d| d.name.clone()).collect();
                    return Err(format!(
                        "no device `{dev}` in the lab (devices: {})",
                        known.join(", ")
                    ));
                }
                _ => {
                    return Err(format!(
                        "`{dev}` is in several lab namespaces: say which, as `{}/{dev}`",
                        holders.join(&format!("/{dev}` or `"))
                    ))
                }
            }
        }
    };
    let stats = lab.link_stats(&ns, name).map_err(|e| e.to_string())?;
    let v = serde_json::to_value(stats).map_err(|e| e.to_string())?;
    v.get(stat).and_then(|v| v.as_u64()).ok_or_else(|| {
        let names: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        format!(
            "`{dev}` has no statistic `{stat}` (lab devices have: {})",
            names.join(", ")
        )
    })
}

/// Reads `/sys/class/net/DEV/statistics/STAT` (this process's network namespace).
pub fn sysfs_dev_stat(dev: &str, stat: &str) -> Result<u64, String> {
    let name_ok =
        |s: &str| !s.is_empty() && s.len() < 64 && !s.contains('/') && s != "." && s != "..";
    if !name_ok(dev) {
        return Err(format!("`{dev}` is not a device name"));
    }
    if !name_ok(stat) || !stat.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!(
            "`{stat}` is not a statistic name (like rx_dropped)"
        ));
    }
    let dir = std::path::Path::new("/sys/class/net").join(dev);
    if !dir.exists() {
        return Err(format!("no network device `{dev}` in this namespace"));
    }
    let path = dir.join("statistics").join(stat);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("`{dev}` has no statistic `{stat}` ({e})"))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: unexpected content {text:?}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_loopback_counters_and_rejects_bad_names() {
        assert!(sysfs_dev_stat("lo", "rx_packets").is_ok());
        assert!(sysfs_dev_stat("lo", "no_such_stat")
            .unwrap_err()
            .contains("no statistic"));
        assert!(sysfs_dev_stat("nodev0", "rx_dropped")
            .unwrap_err()
            .contains("no network device"));
        assert!(sysfs_dev_stat("../lo", "rx_dropped").is_err());
        assert!(sysfs_dev_stat("lo", "../uevent").is_err());
    }
}
