//! Live queries, answered by the running session through the [`Host`] the run
//! loop installs: `total`, `entries`, `workload`, `dev_stat`, `devices`,
//! `lab`; and `correlate`, which matches drops with retransmissions segment by
//! segment and both with slow transactions. Without
//! a host (`vprobe check`) the queries return `()`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, NativeCallContext, INT};

use super::convert::{as_map, describe};
use super::errors::{fail, Res};
use super::host::Host;
use super::state::{Action, State};
use crate::correlate::{
    correlate, parse_ip, Connection, Correlation, DroppedSegment, Evidence, Retransmit, Segment,
    SlowTransaction,
};
use crate::message::with_causes;
use crate::plan::AggName;

fn to_rhai(v: serde_json::Value) -> Dynamic {
    match v {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i as INT),
            None => match n.as_u64() {
                Some(u) => Dynamic::from_int(INT::try_from(u).unwrap_or(INT::MAX)),
                None => Dynamic::from_float(n.as_f64().unwrap_or(0.0)),
            },
        },
        serde_json::Value::String(s) => Dynamic::from(s),
        serde_json::Value::Array(a) => Dynamic::from_array(a.into_iter().map(to_rhai).collect()),
        serde_json::Value::Object(o) => {
            let m: Map = o.into_iter().map(|(k, v)| (k.into(), to_rhai(v))).collect();
            Dynamic::from_map(m)
        }
    }
}

/// Why `correlate(#{..})` cannot read its argument.
#[derive(Debug, thiserror::Error)]
enum CorrelateError {
    /// Not a map of lists.
    #[error("expects a map #{{drops, retransmits, duplicates, slow, server}}, got {0}")]
    NotAMapOfLists(String),
    /// An unknown key.
    #[error("unknown key `{0}` (keys: drops, retransmits, duplicates, slow, server)")]
    UnknownKey(String),
    /// `server` is not `ip:port`.
    #[error("server")]
    Server(#[source] FieldError),
    /// Not an array of maps.
    #[error("{what} must be an array of maps, got {got}")]
    NotMaps {
        /// `drops` or `slow`.
        what: &'static str,
        /// The value, described.
        got: String,
    },
    /// An item that is not a map.
    #[error("{what}[{index}] is not a map")]
    NotAMap {
        /// `drops` or `slow`.
        what: &'static str,
        /// Its index.
        index: usize,
    },
    /// A map without what it needs.
    #[error("{what}[{index}]")]
    Item {
        /// `drops` or `slow`.
        what: &'static str,
        /// Its index.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: FieldError,
    },
}

/// What is wrong with one drop or slow transaction.
#[derive(Debug, thiserror::Error)]
enum FieldError {
    #[error("missing `{0}`")]
    Missing(String),
    #[error("`{key}` must be a non-negative integer, got {got}")]
    NotUint { key: String, got: String },
    #[error("`{key}` is not an IP address: {value}")]
    NotIp { key: String, value: String },
    #[error("`{0}` is not a port")]
    NotPort(String),
    #[error("`{key}` must be ADDRESS:PORT, got {value}")]
    NotSocketAddr { key: String, value: String },
}

fn map_field<'m>(m: &'m Map, key: &str) -> Result<&'m Dynamic, FieldError> {
    m.get(key)
        .ok_or_else(|| FieldError::Missing(key.to_string()))
}

fn uint_field(m: &Map, key: &str) -> Result<u64, FieldError> {
    let v = map_field(m, key)?;
    v.as_int()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| FieldError::NotUint {
            key: key.to_string(),
            got: describe(v),
        })
}

fn endpoint(m: &Map, addr: &str, port: &str) -> Result<SocketAddr, FieldError> {
    let a = map_field(m, addr)?.to_string();
    let ip = parse_ip(&a).ok_or_else(|| FieldError::NotIp {
        key: addr.to_string(),
        value: a.clone(),
    })?;
    let port =
        u16::try_from(uint_field(m, port)?).map_err(|_| FieldError::NotPort(port.to_string()))?;
    Ok(SocketAddr::new(ip, port))
}

fn socket_addr(m: &Map, key: &str) -> Result<SocketAddr, FieldError> {
    let s = map_field(m, key)?.to_string();
    let bad = || FieldError::NotSocketAddr {
        key: key.to_string(),
        value: s.clone(),
    };
    let (ip, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let ip = parse_ip(ip.trim_matches(|c| c == '[' || c == ']')).ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}

fn maps(v: &Dynamic, what: &'static str) -> Result<Vec<Map>, CorrelateError> {
    let items = v
        .clone()
        .into_array()
        .map_err(|_| CorrelateError::NotMaps {
            what,
            got: describe(v),
        })?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, m)| as_map(&m).ok_or(CorrelateError::NotAMap { what, index }))
        .collect()
}

/// Reads each map of `v` (`drops` or `slow`) with `read`.
fn items<T>(
    v: &Dynamic,
    what: &'static str,
    read: impl Fn(&Map) -> Result<T, FieldError>,
) -> Result<Vec<T>, CorrelateError> {
    maps(v, what)?
        .iter()
        .enumerate()
        .map(|(index, m)| {
            read(m).map_err(|source| CorrelateError::Item {
                what,
                index,
                source,
            })
        })
        .collect()
}

/// A TCP segment from a probe event: its flow, sequence, length and flags
/// (`len_key` is `tcp_len` for drop events, `len` for `tcp.retransmit`).
fn segment(m: &Map, len_key: &str) -> Result<Segment, FieldError> {
    let flags = match map_field(m, "tcp_flags")? {
        v if v.is_string() => {
            crate::value::parse_tcp_flags(&v.to_string()).ok_or_else(|| FieldError::NotUint {
                key: "tcp_flags".into(),
                got: describe(v),
            })?
        }
        _ => uint_field(m, "tcp_flags")?,
    };
    Ok(Segment {
        ts_ns: uint_field(m, "ts_ns")?,
        src: endpoint(m, "saddr", "sport")?,
        dst: endpoint(m, "daddr", "dport")?,
        seq: uint_field(m, "seq")? as u32,
        len: uint_field(m, len_key)? as u32,
        flags: flags as u8,
    })
}

/// `correlate(#{drops, retransmits, duplicates, slow, server})`: drop events
/// (`macvtap.drop`, `skb.drop`: `ts_ns`, the flow, `seq`, `tcp_len`,
/// `tcp_flags`, and `layer` or else the probe), `tcp.retransmit` events,
/// `skb.drop` events of copies the receiver dropped as old data, the
/// workload's slow transactions (`start_ns`, `end_ns`, `local`, `remote`) and
/// its server (`ip:port`). Every key may be left out.
fn correlate_map(arg: &Dynamic) -> Result<Correlation, CorrelateError> {
    let Some(m) = arg.clone().try_cast::<Map>() else {
        return Err(CorrelateError::NotAMapOfLists(describe(arg)));
    };
    let empty = Dynamic::from_array(vec![]);
    for k in m.keys() {
        if !["drops", "retransmits", "duplicates", "slow", "server"].contains(&k.as_str()) {
            return Err(CorrelateError::UnknownKey(k.to_string()));
        }
    }
    let list = |k: &str| m.get(k).cloned().unwrap_or_else(|| empty.clone());
    let drops = items(&list("drops"), "drops", |m| {
        let layer = match m.get("layer") {
            Some(l) => l.to_string(),
            None => m.get("probe").map(ToString::to_string).unwrap_or_default(),
        };
        Ok(DroppedSegment {
            seg: segment(m, "tcp_len")?,
            layer,
        })
    })?;
    let retransmits = items(&list("retransmits"), "retransmits", |m| {
        Ok(Retransmit {
            seg: segment(m, "len")?,
            kind: m.get("kind").map(ToString::to_string).unwrap_or_default(),
        })
    })?;
    let duplicates = items(&list("duplicates"), "duplicates", |m| segment(m, "tcp_len"))?;
    let slow = items(&list("slow"), "slow", |m| {
        Ok(SlowTransaction {
            start_ns: uint_field(m, "start_ns")?,
            end_ns: uint_field(m, "end_ns")?,
            conn: Connection::new(socket_addr(m, "local")?, socket_addr(m, "remote")?),
        })
    })?;
    let server = match m.get("server") {
        Some(v) if !v.is_unit() => {
            let mut one = Map::new();
            one.insert("server".into(), v.clone());
            Some(socket_addr(&one, "server").map_err(CorrelateError::Server)?)
        }
        _ => None,
    };
    Ok(correlate(&Evidence {
        drops,
        retransmits,
        duplicates,
        slow,
        server,
    }))
}

fn host(st: &Rc<RefCell<State>>) -> Option<Rc<dyn Host>> {
    st.borrow().host.clone()
}

/// Registers the live queries and `correlate` on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    let total = move |ctx: &NativeCallContext, name: AggName| -> Res<Dynamic> {
        let Some(h) = host(&s) else {
            return Ok(Dynamic::UNIT);
        };
        let t = h
            .agg_total(&name)
            .ok_or_else(|| fail(ctx, format!("total: no aggregation named `{name}`")))?;
        if t.refused > 0 && s.borrow_mut().warned_full.insert(name.to_string()) {
            let mut st = s.borrow_mut();
            let origin = st.origin(ctx);
            st.actions.push(Action::Warn(format!(
                "{origin}: total(\"{name}\") is low: the map of `{name}` is full and refused {} updates \
                 (new keys are not counted); key it by fewer fields or filter more",
                t.refused
            )));
        }
        Ok(Dynamic::from_int(
            INT::try_from(t.total).unwrap_or(INT::MAX),
        ))
    };
    let t = total.clone();
    engine.register_fn(
        "total",
        move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> { t(&ctx, name.into()) },
    );
    engine.register_fn(
        "total",
        move |ctx: NativeCallContext, name: AggName| -> Res<Dynamic> { total(&ctx, name) },
    );
    let s = st.clone();
    engine.register_fn("lost", move || -> Dynamic {
        let Some(h) = host(&s) else {
            return Dynamic::UNIT;
        };
        let mut m = lost_map(&h.lost());
        let probes: Map = h
            .lost_by_probe()
            .iter()
            .map(|(name, l)| (name.into(), Dynamic::from_map(lost_map(l))))
            .collect();
        m.insert("probes".into(), Dynamic::from_map(probes));
        Dynamic::from_map(m)
    });
    let s = st.clone();
    let entries = move |ctx: &NativeCallContext, name: AggName| -> Res<Dynamic> {
        let Some(h) = host(&s) else {
            return Ok(Dynamic::UNIT);
        };
        h.agg_entries(&name)
            .map(to_rhai)
            .ok_or_else(|| fail(ctx, format!("entries: no aggregation named `{name}`")))
    };
    let e = entries.clone();
    engine.register_fn(
        "entries",
        move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> { e(&ctx, name.into()) },
    );
    engine.register_fn(
        "entries",
        move |ctx: NativeCallContext, name: AggName| -> Res<Dynamic> { entries(&ctx, name) },
    );
    let s = st.clone();
    engine.register_fn(
        "workload",
        move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> {
            let Some(h) = host(&s) else {
                return Ok(Dynamic::UNIT);
            };
            h.workload(name)
                .map(to_rhai)
                .ok_or_else(|| fail(&ctx, format!("workload: no workload named `{name}`")))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "dev_stat",
        move |ctx: NativeCallContext, dev: &str, stat: &str| -> Res<Dynamic> {
            let Some(h) = host(&s) else {
                return Ok(Dynamic::UNIT);
            };
            h.dev_stat(dev, stat)
                .map(|v| Dynamic::from_int(INT::try_from(v).unwrap_or(INT::MAX)))
                .map_err(|e| fail(&ctx, format!("dev_stat: {}", with_causes(&e))))
        },
    );
    let s = st.clone();
    engine.register_fn("devices", move |pattern: &str| -> Dynamic {
        match host(&s) {
            Some(h) => {
                Dynamic::from_array(h.devices(pattern).into_iter().map(Dynamic::from).collect())
            }
            None => Dynamic::UNIT,
        }
    });
    engine.register_fn(
        "correlate",
        |ctx: NativeCallContext, evidence: Dynamic| -> Res<Dynamic> {
            let c = correlate_map(&evidence)
                .map_err(|e| fail(&ctx, format!("correlate: {}", with_causes(&e))))?;
            Ok(to_rhai(serde_json::to_value(c).unwrap_or_default()))
        },
    );
    let s = st.clone();
    engine.register_fn("lab", move || -> Dynamic {
        host(&s)
            .and_then(|h| h.lab())
            .map(to_rhai)
            .unwrap_or(Dynamic::UNIT)
    });
}

/// `lost()`'s counters as a script map.
fn lost_map(l: &crate::output::Lost) -> Map {
    let int = |v: u64| Dynamic::from_int(INT::try_from(v).unwrap_or(INT::MAX));
    [
        ("events", l.events),
        ("captures", l.captures),
        ("map_full", l.map_full),
        ("rate_limited", l.rate_limited),
        ("missed", l.missed),
        ("callback_errors", l.callback_errors),
        ("undelivered", l.undelivered),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), int(v)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn correlate_reads_probe_events_and_workload_records() {
        let event = |ts: i64, src: (&str, i64), dst: (&str, i64), len_key: &str| {
            map(&[
                ("ts_ns", Dynamic::from_int(ts)),
                ("saddr", Dynamic::from(src.0.to_string())),
                ("sport", Dynamic::from_int(src.1)),
                ("daddr", Dynamic::from(dst.0.to_string())),
                ("dport", Dynamic::from_int(dst.1)),
                ("seq", Dynamic::from_int(7)),
                (len_key, Dynamic::from_int(1)),
                ("tcp_flags", Dynamic::from("ACK|PSH")),
                ("layer", Dynamic::from("tap")),
            ])
        };
        let c = ("::ffff:192.0.2.1", 40000);
        let s = ("192.0.2.2", 12866);
        let slow = map(&[
            ("start_ns", Dynamic::from_int(1_000_000_000)),
            ("end_ns", Dynamic::from_int(1_210_000_000)),
            ("local", Dynamic::from("192.0.2.1:40000")),
            ("remote", Dynamic::from("192.0.2.2:12866")),
        ]);
        let arg = map(&[
            (
                "drops",
                Dynamic::from_array(vec![Dynamic::from_map(event(
                    1_000_100_000,
                    c,
                    s,
                    "tcp_len",
                ))]),
            ),
            (
                "retransmits",
                Dynamic::from_array(vec![Dynamic::from_map(event(1_209_000_000, c, s, "len"))]),
            ),
            ("slow", Dynamic::from_array(vec![Dynamic::from_map(slow)])),
            ("server", Dynamic::from("192.0.2.2:12866")),
        ]);
        let r = correlate_map(&Dynamic::from_map(arg.clone())).unwrap();
        assert_eq!((r.segments.repaired, r.segments.repairing), (1, 1));
        assert_eq!((r.drops.workload, r.transactions.explained), (1, 1));
        let mut bad = arg;
        bad.insert("drop".into(), Dynamic::UNIT);
        let e = correlate_map(&Dynamic::from_map(bad)).unwrap_err();
        assert!(
            with_causes(&e).contains("unknown key `drop`"),
            "{}",
            with_causes(&e)
        );
        let mut missing = event(1, c, s, "tcp_len");
        missing.remove("seq");
        let arg = map(&[(
            "drops",
            Dynamic::from_array(vec![Dynamic::from_map(missing)]),
        )]);
        let e = correlate_map(&Dynamic::from_map(arg)).unwrap_err();
        assert_eq!(with_causes(&e), "drops[0]: missing `seq`");
    }

    #[test]
    fn json_becomes_rhai_values() {
        let v = to_rhai(serde_json::json!({"a": [1, 2.5, "x", null, true]}));
        let m = v.cast::<Map>();
        let a = m["a"].clone().into_array().unwrap();
        assert_eq!(a[0].as_int().unwrap(), 1);
        assert_eq!(a[1].as_float().unwrap(), 2.5);
        assert!(a[3].is_unit());
    }
}
