//! Matching drops to slow transactions, per connection and time.
//!
//! Totals do not match one for one in TCP_RR (docs/DESIGN.md, "The lab and
//! the seed-case accounting"): a drop can hit a
//! pure ACK or a segment outside the measured transactions, a transaction can
//! meet two drops (→ 400 ms), and a drop usually causes two retransmits (the
//! sender's repair and the peer's spurious loss probe). So each slow
//! transaction is matched with the drops on its own connection while it was in
//! flight, and each drop with the slow transaction it delayed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// A TCP connection: its two endpoints, in a canonical order (so either
/// direction of traffic gives the same key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Connection(SocketAddr, SocketAddr);

impl Connection {
    /// The connection between `a` and `b`, whichever sent.
    pub fn new(a: SocketAddr, b: SocketAddr) -> Connection {
        if a <= b {
            Connection(a, b)
        } else {
            Connection(b, a)
        }
    }
}

/// A dropped packet of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drop {
    /// CLOCK_MONOTONIC ns (the probe's `ts_ns`).
    pub ts_ns: u64,
    /// Its connection.
    pub conn: Connection,
}

/// A transaction that took at least the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowTransaction {
    /// When the request was sent, CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// When the response was complete.
    pub end_ns: u64,
    /// Its connection.
    pub conn: Connection,
}

/// The outcome of [`correlate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Correlation {
    /// Slow transactions.
    pub slow: u64,
    /// Slow transactions with at least one drop on their connection while in flight.
    pub slow_with_drop: u64,
    /// Drops.
    pub drops: u64,
    /// Drops that fell inside a slow transaction of their connection.
    pub drops_in_slow: u64,
    /// Drops on connections that had no transaction measured (other traffic).
    pub drops_other_connections: u64,
}

/// Slack on both ends of a transaction's interval: the probe's and the
/// workload's clocks are the same (CLOCK_MONOTONIC), but the request is timed
/// just before `send` and the drop is stamped in the kernel after it.
const SLACK_NS: u64 = 1_000_000;

/// Matches every slow transaction with the drops on its connection while it was
/// in flight.
///
/// ```
/// use vprobe_engine::correlate::{correlate, Connection, Drop, SlowTransaction};
/// let c = Connection::new("192.0.2.1:40000".parse().unwrap(), "192.0.2.2:12865".parse().unwrap());
/// let slow = [SlowTransaction { start_ns: 1_000_000_000, end_ns: 1_210_000_000, conn: c }];
/// let drops = [Drop { ts_ns: 1_000_100_000, conn: c }];
/// let m = correlate(&drops, &slow);
/// assert_eq!((m.slow_with_drop, m.drops_in_slow), (1, 1));
/// ```
pub fn correlate(drops: &[Drop], slow: &[SlowTransaction]) -> Correlation {
    let mut by_conn: HashMap<Connection, Vec<u64>> = HashMap::new();
    for d in drops {
        by_conn.entry(d.conn).or_default().push(d.ts_ns);
    }
    for v in by_conn.values_mut() {
        v.sort_unstable();
    }
    let mut slow_by_conn: HashMap<Connection, Vec<(u64, u64)>> = HashMap::new();
    for s in slow {
        slow_by_conn
            .entry(s.conn)
            .or_default()
            .push((s.start_ns.saturating_sub(SLACK_NS), s.end_ns + SLACK_NS));
    }
    let mut out = Correlation {
        slow: slow.len() as u64,
        drops: drops.len() as u64,
        ..Correlation::default()
    };
    for (conn, intervals) in &slow_by_conn {
        let times = by_conn.get(conn).map(Vec::as_slice).unwrap_or(&[]);
        for &(lo, hi) in intervals {
            let first = times.partition_point(|&t| t < lo);
            if times.get(first).is_some_and(|&t| t <= hi) {
                out.slow_with_drop += 1;
            }
        }
    }
    for d in drops {
        match slow_by_conn.get(&d.conn) {
            Some(intervals) => {
                if intervals
                    .iter()
                    .any(|&(lo, hi)| lo <= d.ts_ns && d.ts_ns <= hi)
                {
                    out.drops_in_slow += 1;
                }
            }
            None => out.drops_other_connections += 1,
        }
    }
    out
}

/// Parses an address as the probes show it (`192.0.2.1`, `::ffff:192.0.2.1`, `2001:db8::1`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(a: &str, b: &str) -> Connection {
        Connection::new(a.parse().unwrap(), b.parse().unwrap())
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn either_direction_is_the_same_connection() {
        assert_eq!(
            conn("192.0.2.1:4000", "192.0.2.2:80"),
            conn("192.0.2.2:80", "192.0.2.1:4000")
        );
    }

    #[test]
    fn drops_match_slow_transactions_of_their_own_connection_only() {
        let a = conn("192.0.2.1:4000", "192.0.2.2:80");
        let b = conn("192.0.2.1:4001", "192.0.2.2:80");
        let other = conn("192.0.2.1:5000", "192.0.2.2:22");
        let slow = [
            // a: one 400 ms transaction with two drops
            SlowTransaction {
                start_ns: 1000 * MS,
                end_ns: 1400 * MS,
                conn: a,
            },
            // b: a slow transaction whose drop happened on a, not b
            SlowTransaction {
                start_ns: 2000 * MS,
                end_ns: 2200 * MS,
                conn: b,
            },
        ];
        let drops = [
            Drop {
                ts_ns: 1000 * MS + 50_000,
                conn: a,
            },
            Drop {
                ts_ns: 1200 * MS,
                conn: a,
            },
            Drop {
                ts_ns: 2100 * MS,
                conn: a,
            },
            Drop {
                ts_ns: 2100 * MS,
                conn: other,
            },
        ];
        let m = correlate(&drops, &slow);
        assert_eq!(
            m,
            Correlation {
                slow: 2,
                slow_with_drop: 1,
                drops: 4,
                drops_in_slow: 2,
                drops_other_connections: 1,
            }
        );
    }

    #[test]
    fn ipv4_mapped_addresses_compare_as_ipv4() {
        assert_eq!(parse_ip("::ffff:192.0.2.1"), parse_ip("192.0.2.1"));
        assert!(parse_ip("2001:db8::1").unwrap().is_ipv6());
        assert!(parse_ip("nonsense").is_none());
    }
}
