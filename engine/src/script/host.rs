//! What a running session answers when a script asks (`total`, `entries`,
//! `workload`, `dev_stat`, `lab`, `devices`): the [`Host`] the run loop installs.

use crate::output::Lost;
use crate::plan::AggName;

/// An aggregation's total, and the updates its map refused for want of room
/// (new keys are not counted: the total is low by at least that much).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggTotal {
    /// The sum of its counts.
    pub total: u64,
    /// Updates its full map refused.
    pub refused: u64,
}

/// What a script can ask the running session, implemented by the run loop.
pub trait Host {
    /// Sum of the aggregation's counts, `None` when there is no such aggregation.
    fn agg_total(&self, name: &AggName) -> Option<AggTotal>;
    /// What the session lost so far (`undelivered`: events that reached a
    /// ring but not yet a callback).
    fn lost(&self) -> Lost;
    /// The same per attach point (`callback_errors` are the script's, so 0).
    fn lost_by_probe(&self) -> std::collections::BTreeMap<String, Lost> {
        Default::default()
    }
    /// The aggregation in the JSON summary's shape.
    fn agg_entries(&self, name: &AggName) -> Option<serde_json::Value>;
    /// A workload's result when it ended, else its live statistics.
    fn workload(&self, name: &str) -> Option<serde_json::Value>;
    /// A network device's statistic (`rx_dropped`, ...), looked up in the lab's
    /// namespaces first when there is a lab.
    fn dev_stat(&self, dev: &str, stat: &str) -> Result<u64, DevStatError>;
    /// The lab, when the run has one.
    fn lab(&self) -> Option<serde_json::Value>;
    /// Network devices whose name matches `pattern` (a name, or a prefix
    /// glob `macvtap*`): the lab's when there is a lab, else this namespace's.
    fn devices(&self, pattern: &str) -> Vec<String>;
}

/// Why `dev_stat(device, statistic)` has no value.
#[derive(Debug, thiserror::Error)]
pub enum DevStatError {
    /// No lab namespace has the device.
    #[error("no device `{dev}` in the lab (devices: {})", known.join(", "))]
    NotInLab {
        /// As asked.
        dev: String,
        /// The lab's devices.
        known: Vec<String>,
    },
    /// Several lab namespaces have a device of that name.
    #[error("`{dev}` is in several lab namespaces: say which, as `{}`", namespaces.iter().map(|ns| format!("{ns}/{dev}")).collect::<Vec<_>>().join("` or `"))]
    Ambiguous {
        /// As asked.
        dev: String,
        /// The namespaces that have it.
        namespaces: Vec<String>,
    },
    /// The lab could not read the device's counters.
    #[error(transparent)]
    Lab(Box<dyn std::error::Error + Send + Sync>),
    /// A lab device has no such counter.
    #[error("`{dev}` has no statistic `{stat}` (lab devices have: {})", known.join(", "))]
    NoLabStat {
        /// As asked.
        dev: String,
        /// As asked.
        stat: String,
        /// The counters lab devices have.
        known: Vec<String>,
    },
    /// Not a plain device name.
    #[error("`{0}` is not a device name")]
    BadDevice(String),
    /// Not a plain statistic name.
    #[error("`{0}` is not a statistic name (like rx_dropped)")]
    BadStat(String),
    /// No such device in this network namespace.
    #[error("no network device `{0}` in this namespace")]
    NoDevice(String),
    /// The device has no such statistic in sysfs.
    // the cause is part of the sentence, in parentheses, as users have read it
    #[error("`{dev}` has no statistic `{stat}` ({why})")]
    NoStat {
        /// As asked.
        dev: String,
        /// As asked.
        stat: String,
        /// Why the file could not be read.
        why: std::io::Error,
    },
    /// The statistic's file holds no number.
    #[error("{path}: unexpected content {text:?}")]
    Unexpected {
        /// The sysfs file.
        path: String,
        /// What it holds.
        text: String,
    },
}
