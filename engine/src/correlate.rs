//! Matching drops to retransmissions segment by segment, and both to slow
//! transactions (docs/DESIGN.md, "The lab and the seed-case accounting").
//!
//! Totals do not match one for one: a drop of a pure ACK needs no resend, a
//! lost segment is often sent again twice (a tail-loss probe that is dropped
//! too, then the timeout), and the peer of a lost segment often resends its
//! own last segment although it arrived (a spurious loss probe). So each
//! dropped data segment is matched with the first retransmission of the same
//! flow and sequence after it, and each retransmission is classified:
//!
//! - **repairing**: the first retransmission of a segment that was seen dropped;
//! - **spurious**: its original had arrived: the receiver dropped the copy as
//!   old data (`TCP_OLD_DATA`, `TCP_OLD_SEQUENCE`);
//! - **unexplained**: neither (a drop vprobe did not watch, or none).
//!
//! Drops are classified by what they hit: connection **setup** (a SYN or
//! SYN-ACK), the **workload**'s own connections, **teardown** (a FIN or RST:
//! a connection closing), or **other** traffic; and a
//! slow transaction is **explained** when a drop on its connection fell
//! inside it and a retransmission of that segment came just before it ended
//! (the transaction waited for it). The control does the same with every
//! drop moved by ±500 ms: it explains almost nothing when the match is real.

use std::collections::{BTreeMap, HashMap};
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

    /// Whether `addr` is one of its ends.
    pub fn has(&self, addr: SocketAddr) -> bool {
        self.0 == addr || self.1 == addr
    }
}

/// TCP flag bits.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// A TCP segment as a probe saw it, one direction of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// CLOCK_MONOTONIC ns (the probe's `ts_ns`).
    pub ts_ns: u64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// First sequence number.
    pub seq: u32,
    /// Payload bytes.
    pub len: u32,
    /// TCP flags.
    pub flags: u8,
}

impl Segment {
    /// Sequence numbers it takes: its payload, and one each for SYN and FIN.
    fn span(&self) -> u32 {
        self.len + u32::from(self.flags & SYN != 0) + u32::from(self.flags & FIN != 0)
    }

    /// Whether it needs a retransmission when lost (a pure ACK does not).
    pub fn is_data(&self) -> bool {
        self.span() > 0
    }

    /// Whether `other` (same direction) carries its first sequence number.
    fn covered_by(&self, other: &Segment) -> bool {
        self.src == other.src
            && self.dst == other.dst
            && self.seq.wrapping_sub(other.seq) < other.span().max(1)
    }

    fn conn(&self) -> Connection {
        Connection::new(self.src, self.dst)
    }
}

/// A dropped packet, with the layer that dropped it (`tap`, `tcp`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedSegment {
    /// The packet.
    pub seg: Segment,
    /// Where it was dropped.
    pub layer: String,
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

/// What [`correlate`] matches.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// Dropped packets (any layer).
    pub drops: Vec<DroppedSegment>,
    /// TCP retransmissions.
    pub retransmits: Vec<Retransmit>,
    /// Copies a receiver dropped as old data (the original had arrived).
    pub duplicates: Vec<Segment>,
    /// The workload's slow transactions.
    pub slow: Vec<SlowTransaction>,
    /// The workload's server (`ip:port`): its connections are the workload's.
    pub server: Option<SocketAddr>,
}

/// Drops and retransmissions, segment by segment (`reports.segments`):
/// `repairing + spurious + unexplained = retransmits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Segments {
    /// Dropped packets that carried data (or SYN/FIN): each needs a retransmission.
    pub data_drops: u64,
    /// Dropped pure ACKs: no retransmission follows.
    pub ack_drops: u64,
    /// Data drops a later retransmission of the same flow and sequence repaired.
    pub repaired: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// The first retransmission of a dropped segment.
    pub repairing: u64,
    /// Retransmissions whose original had arrived.
    pub spurious: u64,
    /// Neither.
    pub unexplained: u64,
}

/// Drops by what they hit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DropClasses {
    /// SYN and SYN-ACK drops: connections being set up.
    pub setup: u64,
    /// Drops on the workload's own connections, once set up.
    pub workload: u64,
    /// FIN and RST drops: connections closing (not in the segment counts).
    pub teardown: u64,
    /// Drops of other traffic (other connections, not TCP: not in the segment counts).
    pub other: u64,
}

/// Per layer: data drops and how many were repaired, with the delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LayerRepairs {
    /// Data drops at this layer.
    pub data_drops: u64,
    /// Repaired by a retransmission.
    pub repaired: u64,
    /// Median delay from the drop to its repair, ms.
    pub delay_p50_ms: f64,
    /// Longest delay, ms.
    pub delay_max_ms: f64,
}

/// Slow transactions explained by a drop and its retransmission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SlowExplained {
    /// Slow transactions.
    pub slow: u64,
    /// With a drop on their connection inside them and a retransmission of
    /// that segment just before they ended.
    pub explained: u64,
    /// The same with every drop 500 ms earlier, and 500 ms later (the
    /// control: near 0 when the match is not by chance).
    pub control_earlier: u64,
    /// See `control_earlier`.
    pub control_later: u64,
}

/// The outcome of [`correlate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Correlation {
    /// Segment by segment.
    pub segments: Segments,
    /// Drops by what they hit.
    pub drops: DropClasses,
    /// Repairs by the layer of the drop.
    pub layers: BTreeMap<String, LayerRepairs>,
    /// Retransmissions by kind that repaired a drop (`tlp`, `timeout`, ...).
    pub repairing_kinds: BTreeMap<String, u64>,
    /// Slow transactions.
    pub transactions: SlowExplained,
}

/// A retransmission with its kind (for the per-kind counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retransmit {
    /// The segment sent again.
    pub seg: Segment,
    /// `timeout`, `tlp`, `fast`, `syn`, `synack`, `other`.
    pub kind: String,
}

/// How long after a retransmission its duplicate may be seen at the receiver.
const DUPLICATE_WINDOW_NS: u64 = 3_000_000_000;
/// Slack on both ends of a transaction (the request is timed in user space
/// just before `send`, the probes stamp in the kernel).
const SLACK_NS: u64 = 1_000_000;
/// A transaction that waited for a retransmission ends within this of it.
const RESUME_NS: u64 = 20_000_000;
/// How far the control moves every drop.
const CONTROL_SHIFT_NS: u64 = 500_000_000;

/// Matches drops with retransmissions and both with slow transactions.
///
/// ```
/// use vprobe_engine::correlate::{correlate, DroppedSegment, Evidence, Retransmit, Segment};
/// let a = "192.0.2.1:40000".parse().unwrap();
/// let b = "192.0.2.2:12866".parse().unwrap();
/// let seg = |ts_ns| Segment { ts_ns, src: a, dst: b, seq: 7, len: 1, flags: 0x18 };
/// let e = Evidence {
///     drops: vec![DroppedSegment { seg: seg(1_000), layer: "tap".into() }],
///     retransmits: vec![Retransmit { seg: seg(200_000_000), kind: "timeout".into() }],
///     ..Evidence::default()
/// };
/// let c = correlate(&e);
/// assert_eq!((c.segments.repaired, c.segments.repairing), (1, 1));
/// ```
pub fn correlate(e: &Evidence) -> Correlation {
    let mut out = Correlation::default();
    // retransmissions by connection, in time order
    let mut retx: HashMap<Connection, Vec<usize>> = HashMap::new();
    let mut order: Vec<usize> = (0..e.retransmits.len()).collect();
    order.sort_by_key(|&i| e.retransmits[i].seg.ts_ns);
    for &i in &order {
        retx.entry(e.retransmits[i].seg.conn()).or_default().push(i);
    }
    let mut repairing = vec![false; e.retransmits.len()];
    let mut delays: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // the retransmission that repaired each data drop
    let mut repair_of: Vec<Option<usize>> = vec![None; e.drops.len()];
    for (di, d) in e.drops.iter().enumerate() {
        let s = &d.seg;
        // no TCP flag: not a TCP segment (UDP, or no transport header)
        if s.flags == 0 {
            out.drops.other += 1;
            continue;
        }
        // a FIN or RST: a connection closing (an endpoint that already let
        // go of it frees what still comes); nothing the workload waits for
        if s.flags & (FIN | RST) != 0 {
            out.drops.teardown += 1;
            continue;
        }
        if s.flags & SYN != 0 {
            out.drops.setup += 1;
        } else if e.server.is_some_and(|srv| s.conn().has(srv)) {
            out.drops.workload += 1;
        } else {
            out.drops.other += 1;
        }
        let layer = out.layers.entry(d.layer.clone()).or_default();
        if !s.is_data() {
            out.segments.ack_drops += 1;
            continue;
        }
        out.segments.data_drops += 1;
        layer.data_drops += 1;
        let first = retx.get(&s.conn()).and_then(|list| {
            list.iter().copied().find(|&i| {
                e.retransmits[i].seg.ts_ns > s.ts_ns && s.covered_by(&e.retransmits[i].seg)
            })
        });
        if let Some(i) = first {
            repairing[i] = true;
            repair_of[di] = Some(i);
            out.segments.repaired += 1;
            layer.repaired += 1;
            delays
                .entry(d.layer.clone())
                .or_default()
                .push(e.retransmits[i].seg.ts_ns - s.ts_ns);
        }
    }
    for (layer, mut v) in delays {
        v.sort_unstable();
        if let Some(l) = out.layers.get_mut(&layer) {
            l.delay_p50_ms = v[v.len() / 2] as f64 / 1e6;
            l.delay_max_ms = *v.last().unwrap_or(&0) as f64 / 1e6;
        }
    }
    let mut dups: HashMap<Connection, Vec<&Segment>> = HashMap::new();
    for d in &e.duplicates {
        dups.entry(d.conn()).or_default().push(d);
    }
    out.segments.retransmits = e.retransmits.len() as u64;
    for (i, rt) in e.retransmits.iter().enumerate() {
        let r = &rt.seg;
        if repairing[i] {
            out.segments.repairing += 1;
            *out.repairing_kinds.entry(rt.kind.clone()).or_default() += 1;
            continue;
        }
        let arrived = dups.get(&r.conn()).is_some_and(|list| {
            list.iter().any(|d| {
                d.ts_ns >= r.ts_ns && d.ts_ns - r.ts_ns <= DUPLICATE_WINDOW_NS && d.covered_by(r)
            })
        });
        if arrived {
            out.segments.spurious += 1;
        } else {
            out.segments.unexplained += 1;
        }
    }
    out.transactions = explain_slow(e, &repair_of, &order);
    out
}

/// Slow transactions with a drop inside them whose segment was sent again
/// just before they ended; and the same with the drops moved (the control).
fn explain_slow(e: &Evidence, repair_of: &[Option<usize>], order: &[usize]) -> SlowExplained {
    // (drop time, sequence, direction) of the data drops, by connection
    let mut drops: HashMap<Connection, Vec<&Segment>> = HashMap::new();
    for (d, r) in e.drops.iter().zip(repair_of) {
        if d.seg.is_data() && r.is_some() {
            drops.entry(d.seg.conn()).or_default().push(&d.seg);
        }
    }
    let mut retx: HashMap<Connection, Vec<&Segment>> = HashMap::new();
    for &i in order {
        let r = &e.retransmits[i].seg;
        retx.entry(r.conn()).or_default().push(r);
    }
    let explained = |shift: i64| -> u64 {
        e.slow
            .iter()
            .filter(|t| {
                let lo = t.start_ns.saturating_sub(SLACK_NS);
                let hi = t.end_ns + SLACK_NS;
                let (Some(ds), Some(rs)) = (drops.get(&t.conn), retx.get(&t.conn)) else {
                    return false;
                };
                ds.iter().any(|d| {
                    let at = d.ts_ns.saturating_add_signed(shift);
                    at >= lo
                        && at <= hi
                        && rs.iter().any(|r| {
                            r.ts_ns > at
                                && r.ts_ns <= hi
                                && hi - r.ts_ns <= RESUME_NS
                                && d.covered_by(r)
                        })
                })
            })
            .count() as u64
    };
    SlowExplained {
        slow: e.slow.len() as u64,
        explained: explained(0),
        control_earlier: explained(-(CONTROL_SHIFT_NS as i64)),
        control_later: explained(CONTROL_SHIFT_NS as i64),
    }
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

    const MS: u64 = 1_000_000;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn seg(ts_ns: u64, src: &str, dst: &str, seq: u32, len: u32) -> Segment {
        Segment {
            ts_ns,
            src: addr(src),
            dst: addr(dst),
            seq,
            len,
            flags: 0x18,
        }
    }

    fn retx(seg: Segment, kind: &str) -> Retransmit {
        Retransmit {
            seg,
            kind: kind.into(),
        }
    }

    const C: &str = "192.0.2.1:40000";
    const S: &str = "192.0.2.2:12866";

    #[test]
    fn either_direction_is_the_same_connection() {
        assert_eq!(
            Connection::new(addr(C), addr(S)),
            Connection::new(addr(S), addr(C))
        );
    }

    /// The seed case's pattern: a request dropped, its tail-loss probe
    /// dropped too, the timeout repairs it; the server's loss probe of its
    /// last response arrives twice (spurious); a pure ACK dropped; a
    /// retransmission with nothing seen.
    #[test]
    fn drops_match_retransmissions_of_the_same_sequence() {
        let drop = |s: Segment| DroppedSegment {
            seg: s,
            layer: "tap".into(),
        };
        let mut ack = seg(5 * MS, S, C, 900, 0);
        ack.flags = 0x10;
        let e = Evidence {
            drops: vec![
                drop(seg(1000 * MS, C, S, 100, 1)),
                drop(seg(1012 * MS, C, S, 100, 1)),
                drop(ack),
                // a different sequence: no retransmission of it follows
                drop(seg(3000 * MS, C, S, 500, 1)),
            ],
            retransmits: vec![
                retx(seg(1012 * MS, C, S, 100, 1), "tlp"), // dropped (the second drop)
                retx(seg(1215 * MS, C, S, 100, 1), "timeout"), // repairs it
                retx(seg(1013 * MS, S, C, 50, 1), "tlp"),  // its original had arrived
                retx(seg(2000 * MS, S, C, 70, 1), "timeout"), // nothing seen
            ],
            duplicates: vec![seg(1013 * MS + 50_000, S, C, 50, 1)],
            slow: vec![SlowTransaction {
                start_ns: 999 * MS,
                end_ns: 1216 * MS,
                conn: Connection::new(addr(C), addr(S)),
            }],
            server: Some(addr(S)),
        };
        // the first drop sorts before the tlp that re-sends it (same ms: ts differ)
        let mut e = e;
        e.drops[1].seg.ts_ns += 1;
        let c = correlate(&e);
        assert_eq!(
            c.segments,
            Segments {
                data_drops: 3,
                ack_drops: 1,
                repaired: 2,
                retransmits: 4,
                repairing: 2,
                spurious: 1,
                unexplained: 1,
            }
        );
        assert_eq!(
            c.segments.repairing + c.segments.spurious + c.segments.unexplained,
            c.segments.retransmits
        );
        assert_eq!(c.drops.workload, 4);
        assert_eq!(c.layers["tap"].repaired, 2);
        assert!((c.layers["tap"].delay_max_ms - 203.0).abs() < 0.01);
        assert_eq!(c.repairing_kinds["timeout"], 1);
        assert_eq!(c.transactions.explained, 1);
        assert_eq!(
            (c.transactions.control_earlier, c.transactions.control_later),
            (0, 0)
        );
    }

    #[test]
    fn syn_drops_are_setup_and_other_flows_are_other() {
        let mut syn = seg(1, C, S, 1000, 0);
        syn.flags = SYN;
        let e = Evidence {
            drops: vec![
                DroppedSegment {
                    seg: syn,
                    layer: "tap".into(),
                },
                DroppedSegment {
                    seg: seg(2, "192.0.2.1:5000", "192.0.2.2:22", 1, 1),
                    layer: "ip".into(),
                },
            ],
            retransmits: vec![retx(
                Segment {
                    ts_ns: 1_000_000_001,
                    ..syn
                },
                "syn",
            )],
            server: Some(addr(S)),
            ..Evidence::default()
        };
        let c = correlate(&e);
        assert_eq!(
            c.drops,
            DropClasses {
                setup: 1,
                workload: 0,
                teardown: 0,
                other: 1
            }
        );
        // a SYN takes a sequence number: its drop is repaired by the SYN sent again
        assert_eq!((c.segments.data_drops, c.segments.repaired), (2, 1));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let d = seg(1, C, S, 2, 1);
        let r = seg(2, C, S, u32::MAX - 1, 10);
        assert!(d.covered_by(&r));
        assert!(!seg(1, C, S, 9, 1).covered_by(&r));
    }

    #[test]
    fn ipv4_mapped_addresses_compare_as_ipv4() {
        assert_eq!(parse_ip("::ffff:192.0.2.1"), parse_ip("192.0.2.1"));
        assert!(parse_ip("2001:db8::1").unwrap().is_ipv6());
        assert!(parse_ip("nonsense").is_none());
    }
}
