//! Transaction latencies: an hdrhistogram plus the exact figures it would round.
//!
//! Latencies are recorded in nanoseconds with three significant digits (values
//! below 2048 ns exactly), up to [`MAX_LATENCY`]; longer ones are counted at the
//! maximum. Minimum, maximum, mean and the threshold counts are kept exactly
//! beside the histogram, so a transaction of exactly 200 ms is always counted
//! "at or above 200 ms", whatever the histogram's rounding.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency the histogram resolves; longer ones count as this.
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

/// Significant digits of the histogram (0.1 % worst-case rounding).
const SIGFIG: u8 = 3;

/// Fine buckets per power of two above [`UNIT_BUCKETS_BELOW_US`].
const SUB_BUCKETS: u64 = 8;

/// Below this many µs, buckets are 1 µs wide.
const UNIT_BUCKETS_BELOW_US: u64 = SUB_BUCKETS;

/// Latency figures in microseconds (ns precision).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Shortest transaction.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Longest transaction.
    pub max: f64,
}

/// How many transactions took at least `at_us` microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ThresholdCount {
    /// The threshold, µs.
    pub at_us: u64,
    /// Transactions at or above it.
    pub count: u64,
}

/// One histogram bucket `[lo_us, hi_us)`.
///
/// Buckets are log-linear: 1 µs wide below 8 µs, then each power of two
/// `[2^k, 2^(k+1))` split into 8 equal parts, so a bucket is 6-12 % of its
/// value wide and never straddles a power of two (merging eight neighbours
/// gives the log2 buckets of a bpftrace-style histogram).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LatencyBucket {
    /// Inclusive lower bound, µs.
    pub lo_us: u64,
    /// Exclusive upper bound, µs.
    pub hi_us: u64,
    /// Transactions in the bucket.
    pub count: u64,
}

/// The bucket `[lo, hi)` (µs) holding `us`.
pub fn bucket_of(us: u64) -> (u64, u64) {
    if us < UNIT_BUCKETS_BELOW_US {
        return (us, us + 1);
    }
    let k = 63 - u64::from(us.leading_zeros()); // floor(log2 us), ≥ 3
    let width = (1u64 << k) / SUB_BUCKETS;
    let lo = us - us % width;
    (lo, lo.saturating_add(width))
}

/// Latencies of a set of transactions.
#[derive(Clone, Debug)]
pub struct Latencies {
    hist: Histogram<u64>,
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    thresholds_ns: Vec<u64>,
    at_or_above: Vec<u64>,
}

impl Latencies {
    /// Empty, counting transactions at or above each of `thresholds`.
    pub fn new(thresholds: &[Duration]) -> Latencies {
        let high = MAX_LATENCY.as_nanos() as u64;
        let hist = Histogram::new_with_bounds(1, high, SIGFIG)
            .expect("constant histogram bounds are valid");
        Latencies {
            hist,
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            thresholds_ns: thresholds.iter().map(|t| t.as_nanos() as u64).collect(),
            at_or_above: vec![0; thresholds.len()],
        }
    }

    /// Records one transaction.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns);
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        for (t, n) in self.thresholds_ns.iter().zip(&mut self.at_or_above) {
            if ns >= *t {
                *n += 1;
            }
        }
    }

    /// Adds `other`'s transactions (same thresholds).
    pub fn merge(&mut self, other: &Latencies) {
        debug_assert_eq!(self.thresholds_ns, other.thresholds_ns);
        // Same bounds on both sides, so the addition cannot fail.
        let _ = self.hist.add(&other.hist);
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        for (a, b) in self.at_or_above.iter_mut().zip(&other.at_or_above) {
            *a += b;
        }
    }

    /// Transactions recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Min, mean, percentiles and max; None without transactions.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.count == 0 {
            return None;
        }
        // The histogram answers with the top of a value's 0.1 % range; keep
        // percentiles within the exact extremes.
        let q = |q: f64| {
            us(self
                .hist
                .value_at_quantile(q)
                .clamp(self.min_ns, self.max_ns))
        };
        Some(LatencySummary {
            min: us(self.min_ns),
            mean: round3(self.sum_ns as f64 / self.count as f64 / 1e3),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p99_9: q(0.999),
            max: us(self.max_ns),
        })
    }

    /// Transactions at or above each threshold, in the order given.
    pub fn thresholds(&self) -> Vec<ThresholdCount> {
        self.thresholds_ns
            .iter()
            .zip(&self.at_or_above)
            .map(|(t, n)| ThresholdCount {
                at_us: t / 1000,
                count: *n,
            })
            .collect()
    }

    /// The non-empty log-linear buckets, ascending.
    pub fn buckets(&self) -> Vec<LatencyBucket> {
        let mut out: Vec<LatencyBucket> = Vec::new();
        for v in self.hist.iter_recorded() {
            let ns = self.hist.lowest_equivalent(v.value_iterated_to());
            let (lo, hi) = bucket_of(ns / 1000);
            let count = v.count_at_value();
            match out.last_mut() {
                Some(b) if b.lo_us == lo => b.count += count,
                _ => out.push(LatencyBucket {
                    lo_us: lo,
                    hi_us: hi,
                    count,
                }),
            }
        }
        out
    }
}

/// ns → µs, three decimals.
fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us_d(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    #[test]
    fn buckets_are_log_linear_and_aligned() {
        assert_eq!(bucket_of(0), (0, 1));
        assert_eq!(bucket_of(7), (7, 8));
        assert_eq!(bucket_of(8), (8, 9));
        assert_eq!(bucket_of(15), (15, 16));
        assert_eq!(bucket_of(16), (16, 18));
        assert_eq!(bucket_of(17), (16, 18));
        assert_eq!(bucket_of(35), (32, 36));
        assert_eq!(bucket_of(100), (96, 104));
        assert_eq!(bucket_of(200_000), (196_608, 212_992));
        // Every bucket lies inside one power of two, and buckets tile the line.
        let mut next = 0;
        let mut v = 0;
        while v < 1 << 20 {
            let (lo, hi) = bucket_of(v);
            assert_eq!(lo, next, "gap or overlap at {v}");
            assert!(hi > lo);
            if lo >= 8 {
                assert_eq!(63 - lo.leading_zeros(), 63 - (hi - 1).leading_zeros());
            }
            next = hi;
            v = hi;
        }
        assert_eq!(bucket_of(u64::MAX).1, u64::MAX);
    }

    #[test]
    fn summary_of_known_latencies() {
        let mut l = Latencies::new(&[]);
        assert_eq!(l.summary(), None);
        // 1..=1000 µs, one each.
        for i in 1..=1000 {
            l.record(us_d(i));
        }
        let s = l.summary().unwrap();
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 1000.0);
        assert_eq!(s.mean, 500.5);
        // within the histogram's 0.1 %
        for (got, want) in [
            (s.p50, 500.0),
            (s.p90, 900.0),
            (s.p99, 990.0),
            (s.p99_9, 999.0),
        ] {
            assert!((got - want).abs() <= want * 0.001, "{got} vs {want}");
        }
        assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99);
        assert!(s.p99 <= s.p99_9 && s.p99_9 <= s.max);
    }

    #[test]
    fn thresholds_count_at_or_above_exactly() {
        let ts = [Duration::from_millis(200), Duration::from_millis(400)];
        let mut l = Latencies::new(&ts);
        for d in [
            us_d(35),
            Duration::from_nanos(199_999_999),
            Duration::from_millis(200),
            Duration::from_millis(399),
            Duration::from_millis(400),
            Duration::from_secs(2),
        ] {
            l.record(d);
        }
        assert_eq!(
            l.thresholds(),
            vec![
                ThresholdCount {
                    at_us: 200_000,
                    count: 4
                },
                ThresholdCount {
                    at_us: 400_000,
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn merge_adds_everything() {
        let ts = [Duration::from_millis(200)];
        let mut a = Latencies::new(&ts);
        let mut b = Latencies::new(&ts);
        a.record(us_d(40));
        a.record(us_d(50));
        b.record(us_d(10));
        b.record(Duration::from_millis(250));
        a.merge(&b);
        assert_eq!(a.count(), 4);
        let s = a.summary().unwrap();
        assert_eq!((s.min, s.max), (10.0, 250_000.0));
        assert_eq!(a.thresholds()[0].count, 1);
        let total: u64 = a.buckets().iter().map(|b| b.count).sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn buckets_hold_what_was_recorded() {
        let mut l = Latencies::new(&[]);
        for _ in 0..3 {
            l.record(us_d(33));
        }
        l.record(us_d(35));
        l.record(us_d(36));
        l.record(Duration::from_nanos(500)); // sub-µs lands in [0, 1)
        l.record(Duration::from_millis(201));
        // beyond the histogram's range: saturates, but is still counted
        l.record(Duration::from_secs(100));
        let b = l.buckets();
        let got: Vec<(u64, u64, u64)> = b.iter().map(|b| (b.lo_us, b.hi_us, b.count)).collect();
        let (lo200, hi200) = bucket_of(201_000);
        let (lo60s, hi60s) = bucket_of(60_000_000);
        assert_eq!(
            got,
            vec![
                (0, 1, 1),
                (32, 36, 4),
                (36, 40, 1),
                (lo200, hi200, 1),
                (lo60s, hi60s, 1)
            ]
        );
        assert_eq!(l.summary().unwrap().max, 100_000_000.0);
        // percentiles never exceed the exact extremes
        assert!(l.summary().unwrap().p99_9 <= 100_000_000.0);
    }
}
