//! What a scrape exposes: the session's aggregations, losses, probes, script,
//! reports and workloads, as metric families. The aggregations are read from
//! the kernel's maps at that moment; nothing here runs per event.
//!
//! Each aggregation exports at most `limit` series (keys): the first keys
//! seen (the largest counts, at the first scrape that sees them) stay
//! exported for the whole run, so their counters stay monotonic; the events
//! of every other key are counted in `vprobe_series_overflow_total` and
//! their number in `vprobe_series_dropped`. Memory is bounded by the limit,
//! whatever the kernel's maps hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::exposition::{label_name, metric_name, Family, Kind, Series, Value};
use crate::agg::{AggKind, AggSnapshot, Bucket, EntryValue};
use crate::output::{Lost, ProbeInfo};
use crate::plan::MetricDesc;
use crate::value::Value as FieldValue;
use crate::workload::WorkloadCounters;
use vprobe_probes::abi::log2_bounds;

/// Linear histograms with at most this many buckets up to their highest are
/// written with every bucket (a fixed layout); wider ones with those seen.
const MAX_FILLED_LINEAR: u64 = 256;

/// The script a session runs, as its info series says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScriptInfo {
    /// Its `//! name:`, else its file name.
    pub name: String,
    /// Its `//! version:`, if it has one.
    pub version: Option<String>,
}

/// One scrape's view of the session.
pub struct Reading<'a> {
    /// Every aggregation, read now.
    pub aggregations: &'a [AggSnapshot],
    /// Loss counters.
    pub lost: Lost,
    /// Probes attached.
    pub probes: &'a [ProbeInfo],
    /// `report(key, value)` so far.
    pub reports: &'a serde_json::Map<String, serde_json::Value>,
    /// The script.
    pub script: &'a ScriptInfo,
    /// `metric(name, #{..})` descriptions, by aggregation or report name.
    pub descriptions: &'a BTreeMap<String, MetricDesc>,
    /// Workload counters.
    pub workloads: &'a [WorkloadCounters],
}

/// Turns readings into families, keeping each aggregation's exported keys.
pub struct Collector {
    limit: usize,
    admitted: HashMap<String, HashSet<Vec<FieldValue>>>,
}

impl Collector {
    /// A collector exporting at most `limit` series per aggregation.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            admitted: HashMap::new(),
        }
    }

    /// The families of one scrape.
    pub fn families(&mut self, r: &Reading) -> Vec<Family> {
        let mut out = Families::default();
        out.push(family(
            "vprobe_script",
            "the script this vprobe runs",
            Kind::Info,
            vec![Series {
                labels: vec![
                    ("script".into(), r.script.name.clone()),
                    (
                        "version".into(),
                        r.script.version.clone().unwrap_or_default(),
                    ),
                    ("vprobe".into(), env!("CARGO_PKG_VERSION").into()),
                ],
                value: Value::Uint(1),
            }],
        ));
        let mut seen = HashSet::new();
        let probes = r
            .probes
            .iter()
            .filter(|p| seen.insert((&p.name, &p.mechanism, &p.feeds)))
            .map(|p| Series {
                labels: vec![
                    ("probe".into(), p.name.clone()),
                    ("mechanism".into(), p.mechanism.clone()),
                    ("aggregation".into(), p.feeds.clone()),
                ],
                value: Value::Uint(1),
            })
            .collect();
        out.push(family(
            "vprobe_probe",
            "an attached probe: its attach point, the mechanism that worked here, what it feeds",
            Kind::Info,
            probes,
        ));
        for (name, help, v) in [
            (
                "vprobe_events_lost",
                "ring-buffer records the kernel could not reserve (events no callback saw)",
                r.lost.events,
            ),
            (
                "vprobe_map_full",
                "events not counted because their aggregation's map was full",
                r.lost.map_full,
            ),
            (
                "vprobe_callback_errors",
                "script callbacks that failed",
                r.lost.callback_errors,
            ),
            (
                "vprobe_captures_lost",
                "captured packets that did not reach their pcapng file",
                r.lost.captures,
            ),
            (
                "vprobe_rate_limited",
                "events and captures an in-kernel .rate(..) limit held back",
                r.lost.rate_limited,
            ),
            (
                "vprobe_missed",
                "program runs the kernel skipped (recursion on a CPU)",
                r.lost.missed,
            ),
        ] {
            out.push(family(name, help, Kind::Counter, vec![unlabelled(v)]));
        }

        let mut overflow = Vec::new();
        let mut dropped = Vec::new();
        for agg in r.aggregations {
            let desc = r.descriptions.get(&agg.name);
            let (fam, events, keys) = self.aggregation(agg, desc);
            let label = || vec![("aggregation".to_string(), agg.name.clone())];
            overflow.push(Series {
                labels: label(),
                value: Value::Uint(events),
            });
            dropped.push(Series {
                labels: label(),
                value: Value::Uint(keys),
            });
            out.push(fam);
        }
        out.push(family(
            "vprobe_series_overflow",
            "events of keys left out of an aggregation's series (over --metrics-series-limit)",
            Kind::Counter,
            overflow,
        ));
        out.push(family(
            "vprobe_series_dropped",
            "keys of an aggregation left out of its series (over --metrics-series-limit)",
            Kind::Gauge,
            dropped,
        ));

        for (key, v) in r.reports {
            let n = match v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            let Some(n) = n else { continue };
            let desc = r.descriptions.get(key);
            let (name, unit) = named(&format!("report_{key}"), desc);
            let scale = desc.and_then(|d| d.scale).unwrap_or(1.0);
            out.push(Family {
                name,
                help: help_of(desc, || format!("report(\"{key}\", …) of the script")),
                unit,
                kind: Kind::Gauge,
                series: vec![Series {
                    labels: vec![],
                    value: Value::Float(n * scale),
                }],
            });
        }

        let mut tx = Vec::new();
        let mut errors = Vec::new();
        let mut slow = Vec::new();
        for w in r.workloads {
            let l = || vec![("workload".to_string(), w.name.clone())];
            tx.push(Series {
                labels: l(),
                value: Value::Uint(w.transactions),
            });
            errors.push(Series {
                labels: l(),
                value: Value::Uint(w.errors),
            });
            for (at, n) in &w.slow {
                let mut labels = l();
                labels.push((
                    "threshold_seconds".into(),
                    super::exposition::float(at.as_secs_f64()),
                ));
                slow.push(Series {
                    labels,
                    value: Value::Uint(*n),
                });
            }
        }
        if !r.workloads.is_empty() {
            out.push(family(
                "vprobe_workload_transactions",
                "transactions a tcp_rr workload completed",
                Kind::Counter,
                tx,
            ));
            out.push(family(
                "vprobe_workload_errors",
                "failed connections or transactions of a tcp_rr workload",
                Kind::Counter,
                errors,
            ));
            out.push(family(
                "vprobe_workload_slow_transactions",
                "tcp_rr transactions that took at least threshold_seconds",
                Kind::Counter,
                slow,
            ));
        }
        out.0
    }

    /// One aggregation's family, and (events, keys) left out by the limit.
    fn aggregation(&mut self, agg: &AggSnapshot, desc: Option<&MetricDesc>) -> (Family, u64, u64) {
        let (name, unit) = named(&agg.name, desc);
        let scale = desc.and_then(|d| d.scale).unwrap_or(1.0);
        let labels: Vec<String> = unique_labels(&agg.keys);
        let admitted = self.admitted.entry(agg.name.clone()).or_default();
        let (mut over_events, mut over_keys) = (0u64, 0u64);
        let mut series = Vec::new();
        for e in &agg.entries {
            let key: Vec<FieldValue> = e.key.iter().map(|(_, v)| v.clone()).collect();
            if !admitted.contains(&key) {
                if admitted.len() >= self.limit {
                    over_events = over_events.saturating_add(e.value.total());
                    over_keys += 1;
                    continue;
                }
                admitted.insert(key);
            }
            let labels = labels
                .iter()
                .zip(&e.key)
                .map(|(l, (_, v))| (l.clone(), v.to_string()))
                .collect();
            let value = match &e.value {
                EntryValue::Count { value } => Value::Uint(*value),
                EntryValue::Hist { buckets, sum } => Value::Histogram {
                    buckets: cumulative(agg.kind, agg.step, buckets, scale),
                    sum: *sum as f64 * scale,
                    count: e.value.total(),
                },
            };
            series.push(Series { labels, value });
        }
        let kind = if agg.kind.is_hist() {
            Kind::Histogram
        } else {
            Kind::Counter
        };
        let what = match agg.kind {
            AggKind::Count => "events counted".to_string(),
            AggKind::Hist => format!(
                "log2 histogram of `{}`",
                agg.field.as_deref().unwrap_or("?")
            ),
            AggKind::Lhist => format!(
                "linear histogram of `{}`",
                agg.field.as_deref().unwrap_or("?")
            ),
        };
        let fam = Family {
            name,
            help: help_of(desc, || {
                format!("{what} into the aggregation `{}`", agg.name)
            }),
            unit,
            kind,
            series,
        };
        (fam, over_events, over_keys)
    }
}

/// Families by name: a second family of a name already used (an aggregation
/// or report named like vprobe's own metrics) is left out.
#[derive(Default)]
struct Families(Vec<Family>, HashSet<String>);

impl Families {
    fn push(&mut self, f: Family) {
        if self.1.insert(f.name.clone()) {
            self.0.push(f);
        }
    }
}

fn family(name: &str, help: &str, kind: Kind, series: Vec<Series>) -> Family {
    Family {
        name: name.into(),
        help: help.into(),
        unit: None,
        kind,
        series,
    }
}

fn unlabelled(v: u64) -> Series {
    Series {
        labels: vec![],
        value: Value::Uint(v),
    }
}

fn help_of(desc: Option<&MetricDesc>, default: impl FnOnce() -> String) -> String {
    desc.and_then(|d| d.help.clone()).unwrap_or_else(default)
}

/// `vprobe_<name>[_<unit>]` (the script's own name if it gave one), and the unit.
fn named(default: &str, desc: Option<&MetricDesc>) -> (String, Option<String>) {
    let base = desc.and_then(|d| d.name.as_deref()).unwrap_or(default);
    let mut name = format!("vprobe_{}", metric_name(base));
    // a counter's samples get `_total` when written
    if let Some(stripped) = name.strip_suffix("_total") {
        name = stripped.to_string();
    }
    let unit = desc.and_then(|d| d.unit.as_deref()).map(metric_name);
    if let Some(u) = &unit {
        if !name.ends_with(&format!("_{u}")) {
            name = format!("{name}_{u}");
        }
    }
    (name, unit)
}

/// Label names for key fields, sanitized, a repeated one made unique.
fn unique_labels(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for k in keys {
        let mut l = label_name(k);
        while out.contains(&l) {
            l.push('_');
        }
        out.push(l);
    }
    out
}

/// Cumulative buckets `(le, count)`: a bucket `[low, high)` of integer values
/// holds values ≤ high − 1, so that is its `le`. Log2 histograms get every
/// bucket from 0 up to the highest seen (a fixed layout, at most 65), narrow
/// linear ones likewise; wide linear ones only those seen.
fn cumulative(kind: AggKind, step: Option<u64>, buckets: &[Bucket], scale: f64) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let le = |high: u64| (high.saturating_sub(1)) as f64 * scale;
    let count_at = |low: u64| buckets.iter().find(|b| b.low == low).map_or(0, |b| b.count);
    let top = buckets.last().map(|b| b.low);
    match (kind, step, top) {
        (_, _, None) => {}
        (AggKind::Hist, _, Some(top)) => {
            let top_slot = vprobe_probes::abi::log2_slot(top);
            for slot in 0..=top_slot {
                let (low, high) = log2_bounds(slot);
                total += count_at(low);
                out.push((le(high), total));
            }
        }
        (AggKind::Lhist, Some(step), Some(top)) if top / step < MAX_FILLED_LINEAR => {
            for i in 0..=top / step {
                total += count_at(i * step);
                out.push((le((i + 1) * step), total));
            }
        }
        _ => {
            for b in buckets {
                total += b.count;
                out.push((le(b.high), total));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Entry;
    use crate::metrics::exposition::{encode, Format};
    use std::time::Duration;

    fn s(v: &str) -> FieldValue {
        FieldValue::Str(v.into())
    }

    fn counts(n: usize) -> AggSnapshot {
        AggSnapshot {
            name: "drops".into(),
            kind: AggKind::Count,
            keys: vec!["dev".into(), "le".into()],
            field: None,
            step: None,
            time_ns: false,
            entries: (0..n)
                .map(|i| Entry {
                    key: vec![
                        ("dev".into(), s(&format!("mvt{i}"))),
                        ("le".into(), FieldValue::Uint(1)),
                    ],
                    value: EntryValue::Count {
                        value: 100 - i as u64,
                    },
                })
                .collect(),
        }
    }

    fn reading<'a>(
        aggs: &'a [AggSnapshot],
        reports: &'a serde_json::Map<String, serde_json::Value>,
        descs: &'a BTreeMap<String, MetricDesc>,
        workloads: &'a [WorkloadCounters],
        script: &'a ScriptInfo,
    ) -> Reading<'a> {
        Reading {
            aggregations: aggs,
            lost: Lost {
                events: 1,
                map_full: 2,
                callback_errors: 3,
                ..Lost::default()
            },
            probes: &[],
            reports,
            script,
            descriptions: descs,
            workloads,
        }
    }

    fn text(fams: &[Family]) -> String {
        let mut s = String::new();
        encode(fams, Format::Text, &mut s);
        s
    }

    #[test]
    fn counts_become_counters_with_key_labels() {
        let aggs = [counts(2)];
        let (r, d, script) = (
            Default::default(),
            Default::default(),
            ScriptInfo::default(),
        );
        let t = text(&Collector::new(10).families(&reading(&aggs, &r, &d, &[], &script)));
        assert!(t.contains("# TYPE vprobe_drops_total counter\n"), "{t}");
        assert!(
            t.contains("vprobe_drops_total{dev=\"mvt0\",key_le=\"1\"} 100\n"),
            "{t}"
        );
        assert!(
            t.contains("vprobe_drops_total{dev=\"mvt1\",key_le=\"1\"} 99\n"),
            "{t}"
        );
        assert!(t.contains("vprobe_events_lost_total 1\n"), "{t}");
        assert!(t.contains("vprobe_map_full_total 2\n"), "{t}");
        assert!(t.contains("vprobe_callback_errors_total 3\n"), "{t}");
        assert!(t.contains("vprobe_series_overflow_total{aggregation=\"drops\"} 0\n"));
    }

    #[test]
    fn the_series_limit_keeps_the_first_keys_and_counts_the_rest() {
        let (r, d, script) = (
            Default::default(),
            Default::default(),
            ScriptInfo::default(),
        );
        let mut c = Collector::new(3);
        let t = text(&c.families(&reading(&[counts(5)], &r, &d, &[], &script)));
        assert_eq!(t.matches("vprobe_drops_total{").count(), 3, "{t}");
        // mvt3 (97) and mvt4 (96) are left out
        assert!(
            t.contains("vprobe_series_overflow_total{aggregation=\"drops\"} 193\n"),
            "{t}"
        );
        assert!(
            t.contains("vprobe_series_dropped{aggregation=\"drops\"} 2\n"),
            "{t}"
        );
        // later, a left-out key grows past an exported one: the exported set stays
        let mut later = counts(5);
        later.entries.reverse();
        let t = text(&c.families(&reading(&[later], &r, &d, &[], &script)));
        assert!(t.contains("dev=\"mvt0\""), "{t}");
        assert!(!t.contains("dev=\"mvt4\""), "{t}");
        assert_eq!(c.admitted["drops"].len(), 3);
    }

    #[test]
    fn log2_histograms_get_every_bucket_up_to_the_highest() {
        let h = AggSnapshot {
            name: "lat".into(),
            kind: AggKind::Hist,
            keys: vec![],
            field: Some("latency".into()),
            step: None,
            time_ns: false,
            entries: vec![Entry {
                key: vec![],
                value: EntryValue::Hist {
                    buckets: vec![
                        Bucket {
                            low: 1,
                            high: 2,
                            count: 2,
                        },
                        Bucket {
                            low: 4,
                            high: 8,
                            count: 3,
                        },
                    ],
                    sum: 20,
                },
            }],
        };
        let (r, script) = (Default::default(), ScriptInfo::default());
        let mut d = BTreeMap::new();
        d.insert(
            "lat".to_string(),
            MetricDesc {
                name: Some("latency".into()),
                help: Some("time to answer".into()),
                unit: Some("seconds".into()),
                scale: Some(1e-9),
            },
        );
        let t = text(&Collector::new(10).families(&reading(&[h], &r, &d, &[], &script)));
        assert!(
            t.contains("# HELP vprobe_latency_seconds time to answer\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE vprobe_latency_seconds histogram\n"),
            "{t}"
        );
        for (le, n) in [
            ("0", 0),
            ("0.000000001", 2),
            ("0.000000003", 2),
            ("0.000000007", 5),
            ("+Inf", 5),
        ] {
            assert!(
                t.contains(&format!(
                    "vprobe_latency_seconds_bucket{{le=\"{le}\"}} {n}\n"
                )),
                "le {le}: {t}"
            );
        }
        assert!(t.contains("vprobe_latency_seconds_count 5\n"), "{t}");
        assert!(t.contains("vprobe_latency_seconds_sum 0.00000002\n"), "{t}");
    }

    #[test]
    fn linear_buckets_are_filled_and_bounded_by_their_largest_value() {
        let b = |low, count| Bucket {
            low,
            high: low + 8,
            count,
        };
        let got = cumulative(AggKind::Lhist, Some(8), &[b(8, 1), b(24, 2)], 1.0);
        assert_eq!(got, vec![(7.0, 0), (15.0, 1), (23.0, 1), (31.0, 3)]);
        // too wide to fill: only the buckets seen
        let got = cumulative(AggKind::Lhist, Some(1), &[b(0, 1), b(10_000, 2)], 1.0);
        assert_eq!(got, vec![(7.0, 1), (10_007.0, 3)]);
    }

    #[test]
    fn numeric_reports_are_gauges_and_workloads_counters() {
        let mut r = serde_json::Map::new();
        r.insert("match".into(), serde_json::json!(true));
        r.insert("tail_200ms".into(), serde_json::json!(355));
        r.insert("correlation".into(), serde_json::json!({"x": 1}));
        let w = [WorkloadCounters {
            name: "rr".into(),
            transactions: 1000,
            errors: 0,
            slow: vec![(Duration::from_millis(200), 7)],
        }];
        let (d, script) = (
            Default::default(),
            ScriptInfo {
                name: "macvtap_drops".into(),
                version: Some("1.2.0".into()),
            },
        );
        let t = text(&Collector::new(10).families(&reading(&[], &r, &d, &w, &script)));
        assert!(t.contains("vprobe_report_match 1\n"), "{t}");
        assert!(t.contains("vprobe_report_tail_200ms 355\n"), "{t}");
        assert!(!t.contains("correlation"), "{t}");
        assert!(t.contains(
            "vprobe_workload_slow_transactions_total{workload=\"rr\",threshold_seconds=\"0.2\"} 7\n"
        ), "{t}");
        assert!(
            t.contains("vprobe_workload_transactions_total{workload=\"rr\"} 1000\n"),
            "{t}"
        );
        assert!(
            t.contains("vprobe_script_info{script=\"macvtap_drops\",version=\"1.2.0\""),
            "{t}"
        );
    }

    #[test]
    fn a_name_taken_by_vprobe_is_not_written_twice() {
        let mut a = counts(1);
        a.name = "events_lost".into();
        let (r, d, script) = (
            Default::default(),
            Default::default(),
            ScriptInfo::default(),
        );
        let t = text(&Collector::new(10).families(&reading(&[a], &r, &d, &[], &script)));
        assert_eq!(
            t.matches("# TYPE vprobe_events_lost_total").count(),
            1,
            "{t}"
        );
    }
}
