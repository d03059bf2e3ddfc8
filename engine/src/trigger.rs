//! Triggers: a condition over live aggregations or workload results, checked on
//! every tick of the run loop, that fires actions when it becomes true.
//!
//! Conditions are small expressions parsed when the script declares them, so a
//! typo is a located script error and checking one costs no Rhai call:
//!
//! | condition            | true when                                                   |
//! |----------------------|-------------------------------------------------------------|
//! | `drops > 0`          | the aggregation `drops` has counted more than 0 events      |
//! | `rate(drops) > 100`  | it grew by more than 100 per second over the last second    |
//! | `rr.p99 > 10ms`      | the workload `rr`'s p99 latency so far is above 10 ms       |
//! | `rr.slow(200ms) > 0` | some of `rr`'s transactions took 200 ms or more             |
//! | `rr.tps < 5000`      | its transaction rate over the last second is below 5000     |
//!
//! A trigger fires on a rising edge (false → true) and again only after the
//! condition has been false, unless it is `once`.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use vprobe_time::duration;

use crate::plan::{AggName, CallbackId};

/// A malformed condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trigger condition `{text}`: {why}")]
pub struct TriggerError {
    /// The condition as written.
    pub text: String,
    /// What is wrong with it.
    pub why: Malformed,
}

/// What is wrong with a condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// No comparison operator.
    #[error("expected `METRIC OP VALUE` with OP one of > >= < <= == !=")]
    NoOperator,
    /// `rate(..)` of something that is not a name.
    #[error("`{0}` is not an aggregation name")]
    NotAggregation(String),
    /// `X.stat` where X is not a name.
    #[error("`{0}` is not a workload name")]
    NotWorkload(String),
    /// `rr.p42`.
    #[error("unknown workload statistic `{0}` (p50, p90, p99, p999, mean, max, tps, transactions, errors, slow(DURATION))")]
    UnknownStat(String),
    /// `rr.slow(soon)`.
    #[error(transparent)]
    Duration(#[from] duration::DurationError),
    /// Neither a name, `rate(NAME)` nor `WORKLOAD.STAT`.
    #[error("`{0}` is not an aggregation name, `rate(NAME)` or `WORKLOAD.STAT`")]
    NotMetric(String),
    /// A duration compared with a count.
    #[error("`{0}` is a duration; this metric is a number")]
    DurationForNumber(String),
    /// Neither a number nor a duration.
    #[error("`{0}` is not a number")]
    NotNumber(String),
}

/// A workload statistic a condition can test.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkloadStat {
    /// A latency percentile (0–100), in microseconds.
    Percentile(f64),
    /// Mean latency, µs.
    Mean,
    /// Largest latency, µs.
    Max,
    /// Transactions per second over the last second.
    Tps,
    /// Transactions so far.
    Transactions,
    /// Transactions that took at least this long.
    Slow(Duration),
    /// Failed connections or transactions.
    Errors,
}

impl WorkloadStat {
    /// Whether the value is a latency in µs (then the threshold may be a duration).
    fn is_latency(&self) -> bool {
        matches!(
            self,
            WorkloadStat::Percentile(_) | WorkloadStat::Mean | WorkloadStat::Max
        )
    }
}

/// What a condition measures.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// The sum of an aggregation's counts (or of a histogram's samples).
    Total(AggName),
    /// The aggregation's growth per second over the last second.
    Rate(AggName),
    /// A statistic of a running workload.
    Workload {
        /// The workload's name.
        name: String,
        /// Which statistic.
        stat: WorkloadStat,
    },
}

/// Comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Cmp {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// What is measured.
    pub metric: Metric,
    /// How it is compared.
    pub cmp: Cmp,
    /// The threshold (µs for latencies).
    pub value: f64,
    /// The condition as written, for messages.
    pub text: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What the run loop can tell a condition about the session.
pub trait View {
    /// Total of the aggregation `name`, or `None` when there is no such aggregation.
    fn agg_total(&self, name: &str) -> Option<u64>;
    /// A statistic of the workload `name`, or `None` when there is no such workload
    /// or it has no value yet (a percentile before the first transaction).
    fn workload_stat(&self, name: &str, stat: &WorkloadStat) -> Option<f64>;
}

impl Condition {
    /// Parses `METRIC OP VALUE`, e.g. `rate(drops) > 100` or `rr.p99 >= 10ms`.
    ///
    /// ```
    /// use vprobe_engine::trigger::{Condition, Metric};
    /// let c = Condition::parse("rate(drops) > 100").unwrap();
    /// assert_eq!(c.metric, Metric::Rate("drops".into()));
    /// ```
    pub fn parse(text: &str) -> Result<Condition, TriggerError> {
        let err = |why: Malformed| TriggerError {
            text: text.to_string(),
            why,
        };
        let ops = [
            (">=", Cmp::Ge),
            ("<=", Cmp::Le),
            ("==", Cmp::Eq),
            ("!=", Cmp::Ne),
            (">", Cmp::Gt),
            ("<", Cmp::Lt),
        ];
        let (at, op, cmp) = ops
            .iter()
            .filter_map(|(op, cmp)| text.find(op).map(|at| (at, *op, *cmp)))
            .min_by_key(|(at, op, _)| (*at, usize::MAX - op.len()))
            .ok_or_else(|| err(Malformed::NoOperator))?;
        let lhs = text[..at].trim();
        let rhs = text[at + op.len()..].trim();
        let metric = parse_metric(lhs).map_err(err)?;
        let value = parse_value(rhs, &metric).map_err(err)?;
        Ok(Condition {
            metric,
            cmp,
            value,
            text: text.trim().to_string(),
        })
    }

    /// The aggregation this condition reads, if any.
    pub fn aggregation(&self) -> Option<&str> {
        match &self.metric {
            Metric::Total(a) | Metric::Rate(a) => Some(a.as_str()),
            Metric::Workload { .. } => None,
        }
    }

    /// The workload this condition reads, if any.
    pub fn workload(&self) -> Option<&str> {
        match &self.metric {
            Metric::Workload { name, .. } => Some(name),
            _ => None,
        }
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_metric(s: &str) -> Result<Metric, Malformed> {
    if let Some(inner) = s.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let inner = inner.trim();
        return if is_name(inner) {
            Ok(Metric::Rate(inner.into()))
        } else {
            Err(Malformed::NotAggregation(inner.to_string()))
        };
    }
    if let Some((name, stat)) = s.split_once('.') {
        let (name, stat) = (name.trim(), stat.trim());
        if !is_name(name) {
            return Err(Malformed::NotWorkload(name.to_string()));
        }
        let stat = match stat {
            "p50" => WorkloadStat::Percentile(50.0),
            "p90" => WorkloadStat::Percentile(90.0),
            "p99" => WorkloadStat::Percentile(99.0),
            "p999" | "p99_9" => WorkloadStat::Percentile(99.9),
            "mean" => WorkloadStat::Mean,
            "max" => WorkloadStat::Max,
            "tps" => WorkloadStat::Tps,
            "transactions" => WorkloadStat::Transactions,
            "errors" => WorkloadStat::Errors,
            s => match s.strip_prefix("slow(").and_then(|r| r.strip_suffix(')')) {
                Some(d) => WorkloadStat::Slow(duration::parse(d)?),
                None => return Err(Malformed::UnknownStat(s.to_string())),
            },
        };
        return Ok(Metric::Workload {
            name: name.to_string(),
            stat,
        });
    }
    if is_name(s) {
        Ok(Metric::Total(s.into()))
    } else {
        Err(Malformed::NotMetric(s.to_string()))
    }
}

fn parse_value(s: &str, metric: &Metric) -> Result<f64, Malformed> {
    if let Ok(n) = s.parse::<f64>() {
        if n.is_finite() {
            return Ok(n);
        }
    }
    let latency = matches!(metric, Metric::Workload { stat, .. } if stat.is_latency());
    match duration::parse(s) {
        Ok(d) if latency => Ok(d.as_secs_f64() * 1e6),
        Ok(_) => Err(Malformed::DurationForNumber(s.to_string())),
        Err(_) => Err(Malformed::NotNumber(s.to_string())),
    }
}

/// What a trigger does when it fires, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerAction {
    /// Print a line.
    Print(String),
    /// Print an aggregation as it is at that moment.
    Snapshot(AggName),
    /// Start a workload declared with `start: false`.
    Start(String),
    /// Stop a running workload.
    Stop(String),
    /// End the session with this exit status.
    Exit(i32),
    /// Call a script function (with `Script::call`).
    Call(CallbackId),
}

/// A condition, its actions and its firing state.
#[derive(Clone, Debug)]
pub struct Trigger {
    /// When.
    pub condition: Condition,
    /// What.
    pub actions: Vec<TriggerAction>,
    /// Fire at most once.
    pub once: bool,
    /// Where the script declared it.
    pub origin: crate::plan::Origin,
    was_true: bool,
    fired: u64,
    /// (time, total) samples over the last second, for `rate()` and `tps`.
    history: VecDeque<(Instant, f64)>,
}

/// How far back `rate()` looks.
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl Trigger {
    /// A trigger with no actions yet.
    pub fn new(condition: Condition, origin: crate::plan::Origin) -> Trigger {
        Trigger {
            condition,
            actions: Vec::new(),
            once: false,
            origin,
            was_true: false,
            fired: 0,
            history: VecDeque::new(),
        }
    }

    /// How often it fired.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Evaluates the condition at `now`; true when the trigger fires (a rising edge).
    pub fn check(&mut self, view: &dyn View, now: Instant) -> bool {
        let holds = match self.current(view, now) {
            Some(v) => self.condition.cmp.holds(v, self.condition.value),
            None => false,
        };
        let fire = holds && !self.was_true && !(self.once && self.fired > 0);
        self.was_true = holds;
        if fire {
            self.fired += 1;
        }
        fire
    }

    fn current(&mut self, view: &dyn View, now: Instant) -> Option<f64> {
        match &self.condition.metric {
            Metric::Total(name) => view.agg_total(name.as_str()).map(|t| t as f64),
            Metric::Rate(name) => {
                let total = view.agg_total(name.as_str())? as f64;
                Some(self.rate(now, total))
            }
            Metric::Workload {
                name,
                stat: WorkloadStat::Tps,
            } => {
                let total = view.workload_stat(name, &WorkloadStat::Transactions)?;
                Some(self.rate(now, total))
            }
            Metric::Workload { name, stat } => view.workload_stat(name, stat),
        }
    }

    /// Growth per second of `total` over the last [`RATE_WINDOW`] (0 until two samples).
    fn rate(&mut self, now: Instant, total: f64) -> f64 {
        self.history.push_back((now, total));
        while let Some(&(t, _)) = self.history.front() {
            if now.duration_since(t) > RATE_WINDOW && self.history.len() > 2 {
                self.history.pop_front();
            } else {
                break;
            }
        }
        let (t0, v0) = self.history[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            (total - v0) / secs
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::plan::Origin;

    #[derive(Default)]
    struct Fake {
        aggs: HashMap<String, u64>,
        stats: HashMap<String, f64>,
    }

    impl View for Fake {
        fn agg_total(&self, name: &str) -> Option<u64> {
            self.aggs.get(name).copied()
        }
        fn workload_stat(&self, name: &str, stat: &WorkloadStat) -> Option<f64> {
            self.stats.get(&format!("{name}.{stat:?}")).copied()
        }
    }

    fn trigger(text: &str) -> Trigger {
        Trigger::new(Condition::parse(text).unwrap(), Origin::default())
    }

    #[test]
    fn parses_every_form() {
        let c = Condition::parse("drops > 0").unwrap();
        assert_eq!(c.metric, Metric::Total("drops".into()));
        assert_eq!((c.cmp, c.value), (Cmp::Gt, 0.0));
        let c = Condition::parse(" rate( drops ) >= 1.5 ").unwrap();
        assert_eq!(c.metric, Metric::Rate("drops".into()));
        assert_eq!((c.cmp, c.value), (Cmp::Ge, 1.5));
        let c = Condition::parse("rr.p99 > 10ms").unwrap();
        assert_eq!(
            c.metric,
            Metric::Workload {
                name: "rr".into(),
                stat: WorkloadStat::Percentile(99.0)
            }
        );
        assert_eq!(c.value, 10_000.0);
        let c = Condition::parse("rr.slow(200ms) != 0").unwrap();
        assert_eq!(
            c.metric,
            Metric::Workload {
                name: "rr".into(),
                stat: WorkloadStat::Slow(Duration::from_millis(200))
            }
        );
        assert_eq!(c.cmp, Cmp::Ne);
        assert_eq!(Condition::parse("x<=3").unwrap().cmp, Cmp::Le);
    }

    #[test]
    fn rejects_malformed_conditions_with_a_reason() {
        for (text, why) in [
            ("drops", "expected `METRIC OP VALUE`"),
            ("drops > lots", "`lots` is not a number"),
            ("rr.p42 > 1", "unknown workload statistic `p42`"),
            ("1drops > 0", "not an aggregation name"),
            ("drops > 10ms", "is a duration"),
            ("rr.slow(soon) > 0", "invalid duration"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn fires_on_rising_edges_only() {
        let mut t = trigger("drops > 2");
        let mut v = Fake::default();
        let now = Instant::now();
        assert!(!t.check(&v, now), "no aggregation yet: false, not an error");
        v.aggs.insert("drops".into(), 3);
        assert!(t.check(&v, now));
        assert!(!t.check(&v, now), "still true: no second firing");
        v.aggs.insert("drops".into(), 0);
        assert!(!t.check(&v, now));
        v.aggs.insert("drops".into(), 5);
        assert!(t.check(&v, now), "true again after false");
        assert_eq!(t.fired(), 2);
    }

    #[test]
    fn once_fires_once() {
        let mut t = trigger("drops > 0");
        t.once = true;
        let mut v = Fake::default();
        let now = Instant::now();
        v.aggs.insert("drops".into(), 1);
        assert!(t.check(&v, now));
        v.aggs.insert("drops".into(), 0);
        t.check(&v, now);
        v.aggs.insert("drops".into(), 1);
        assert!(!t.check(&v, now));
    }

    #[test]
    fn rate_is_growth_per_second_over_the_window() {
        let mut t = trigger("rate(drops) > 100");
        let mut v = Fake::default();
        let t0 = Instant::now();
        v.aggs.insert("drops".into(), 0);
        assert!(!t.check(&v, t0));
        v.aggs.insert("drops".into(), 50);
        assert!(!t.check(&v, t0 + Duration::from_millis(500)), "100/s");
        v.aggs.insert("drops".into(), 200);
        assert!(t.check(&v, t0 + Duration::from_millis(1000)), "200/s");
        // quiet for 2 s: the window forgets the burst
        for ms in [1500, 2000, 2500, 3000] {
            t.check(&v, t0 + Duration::from_millis(ms));
        }
        assert!(t.rate(t0 + Duration::from_millis(3100), 200.0) < 1.0);
    }

    #[test]
    fn workload_latency_compares_in_microseconds() {
        let mut t = trigger("rr.p99 >= 200ms");
        let mut v = Fake::default();
        let now = Instant::now();
        v.stats.insert("rr.Percentile(99.0)".into(), 150_000.0);
        assert!(!t.check(&v, now));
        v.stats.insert("rr.Percentile(99.0)".into(), 200_000.0);
        assert!(t.check(&v, now));
    }
}
