//! Aggregations read back from the kernel: per-CPU values summed, keys decoded.

use serde::Serialize;

use crate::value::Value;

/// Kind of aggregation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggKind {
    /// Event counts per key.
    Count,
    /// Log2 histogram per key (`hist()`): bucket `[2^(k-1), 2^k)`, and `[0, 1)`.
    Hist,
    /// Linear histogram per key (`lhist()`): buckets `[n*step, (n+1)*step)`.
    Lhist,
}

impl AggKind {
    /// Whether entries are histograms.
    pub fn is_hist(self) -> bool {
        matches!(self, AggKind::Hist | AggKind::Lhist)
    }
}

/// One histogram bucket `[low, high)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Inclusive lower bound.
    pub low: u64,
    /// Exclusive upper bound.
    pub high: u64,
    /// Events in the bucket.
    pub count: u64,
}

/// The value of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EntryValue {
    /// A count.
    Count {
        /// Events.
        value: u64,
    },
    /// Histogram buckets, ascending, empty buckets left out.
    Hist {
        /// Buckets.
        buckets: Vec<Bucket>,
        /// Sum of the histogrammed field over every event (saturating).
        sum: u64,
    },
}

/// One key of an aggregation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Key fields in the script's order, each `field: value`.
    #[serde(serialize_with = "key_as_object")]
    pub key: Vec<(String, Value)>,
    /// Count or buckets.
    #[serde(flatten)]
    pub value: EntryValue,
}

fn key_as_object<S: serde::Serializer>(key: &[(String, Value)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(key.len()))?;
    for (k, v) in key {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// A named aggregation at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AggSnapshot {
    /// Name given in the script.
    #[serde(skip)]
    pub name: String,
    /// Count or histogram.
    pub kind: AggKind,
    /// Key field names.
    pub keys: Vec<String>,
    /// Histogrammed field (histograms only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Bucket width (`lhist` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// The histogrammed field is a time span in nanoseconds: text shows its
    /// buckets as times (`[1.05 ms, 2.1 ms)`), not `[1M, 2M)`.
    #[serde(skip)]
    pub time_ns: bool,
    /// Entries, largest count first for counts, by key for histograms.
    pub entries: Vec<Entry>,
}

impl EntryValue {
    /// Total events.
    pub fn total(&self) -> u64 {
        match self {
            EntryValue::Count { value } => *value,
            EntryValue::Hist { buckets, .. } => buckets.iter().map(|b| b.count).sum(),
        }
    }
}

impl AggSnapshot {
    /// Total events over all keys.
    pub fn total(&self) -> u64 {
        self.entries.iter().map(|e| e.value.total()).sum()
    }

    /// Sorts entries the way they are shown: counts descending, then key.
    pub fn sort(&mut self) {
        match self.kind {
            AggKind::Count => self.entries.sort_by(|a, b| {
                b.value
                    .total()
                    .cmp(&a.value.total())
                    .then_with(|| a.key.cmp(&b.key))
            }),
            AggKind::Hist | AggKind::Lhist => self.entries.sort_by(|a, b| a.key.cmp(&b.key)),
        }
    }

    /// This snapshot minus `earlier` (same aggregation): what happened in between.
    /// Keys whose difference is zero are left out.
    pub fn delta(&self, earlier: &AggSnapshot) -> AggSnapshot {
        let mut out = AggSnapshot {
            entries: Vec::new(),
            ..self.clone()
        };
        for e in &self.entries {
            let before = earlier.entries.iter().find(|b| b.key == e.key);
            let value = match (&e.value, before.map(|b| &b.value)) {
                (EntryValue::Count { value }, Some(EntryValue::Count { value: old })) => {
                    EntryValue::Count {
                        value: value.saturating_sub(*old),
                    }
                }
                (
                    EntryValue::Hist { buckets, sum },
                    Some(EntryValue::Hist {
                        buckets: old,
                        sum: old_sum,
                    }),
                ) => EntryValue::Hist {
                    sum: sum.saturating_sub(*old_sum),
                    buckets: buckets
                        .iter()
                        .map(|b| {
                            let prev = old.iter().find(|o| o.low == b.low).map_or(0, |o| o.count);
                            Bucket {
                                count: b.count.saturating_sub(prev),
                                ..b.clone()
                            }
                        })
                        .filter(|b| b.count > 0)
                        .collect(),
                },
                (v, _) => v.clone(),
            };
            if value.total() > 0 {
                out.entries.push(Entry {
                    key: e.key.clone(),
                    value,
                });
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(dev: &str, n: u64) -> Entry {
        Entry {
            key: vec![("dev".into(), Value::Str(dev.into()))],
            value: EntryValue::Count { value: n },
        }
    }

    #[test]
    fn delta_subtracts_per_key_and_drops_unchanged() {
        let snap = |entries| AggSnapshot {
            time_ns: false,
            name: "drops".into(),
            kind: AggKind::Count,
            keys: vec!["dev".into()],
            field: None,
            step: None,
            entries,
        };
        let before = snap(vec![count("a", 5), count("b", 2)]);
        let after = snap(vec![count("a", 9), count("b", 2), count("c", 1)]);
        let d = after.delta(&before);
        assert_eq!(d.entries, vec![count("a", 4), count("c", 1)]);
        assert_eq!(d.total(), 5);
    }

    #[test]
    fn json_shape_matches_the_summary_contract() {
        let e = count("mvt0", 3);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"key":{"dev":"mvt0"},"value":3}"#
        );
        let h = Entry {
            key: vec![],
            value: EntryValue::Hist {
                buckets: vec![Bucket {
                    low: 4,
                    high: 8,
                    count: 2,
                }],
                sum: 11,
            },
        };
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"key":{},"buckets":[{"low":4,"high":8,"count":2}],"sum":11}"#
        );
    }
}
