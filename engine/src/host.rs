//! [`LiveHost`]: how a running script's queries (`total`, `entries`,
//! `workload`, `dev_stat`, `lab`) are answered, from the session it shares
//! with [`crate::live::Live`].

use std::cell::RefCell;
use std::rc::Rc;

use crate::script::Host;
use crate::session::Session;
use crate::symbols::Symbols;

/// Answers script queries from the live session.
pub struct LiveHost {
    pub(crate) session: Rc<RefCell<Session>>,
    pub(crate) symbols: Rc<Symbols>,
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

    fn workload(&self, _name: &str) -> Option<serde_json::Value> {
        None
    }

    fn dev_stat(&self, dev: &str, stat: &str) -> Result<u64, String> {
        sysfs_dev_stat(dev, stat)
    }

    fn lab(&self) -> Option<serde_json::Value> {
        None
    }
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
