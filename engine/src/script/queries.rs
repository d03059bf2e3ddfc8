//! Live queries, answered by the running session through the [`Host`] the run
//! loop installs: `total`, `entries`, `workload`, `dev_stat`, `devices`,
//! `lab`; and `correlate`, which matches drops with slow transactions. Without
//! a host (`vprobe check`) the queries return `()`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, NativeCallContext, INT};

use super::convert::{as_map, describe};
use super::errors::{fail, Res};
use super::host::Host;
use super::state::{Action, State};
use crate::correlate::{correlate, parse_ip, Connection, Correlation, Drop, SlowTransaction};
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

/// Why `correlate(drops, slow)` cannot read its arguments.
#[derive(Debug, thiserror::Error)]
enum CorrelateError {
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

/// `correlate(drops, slow)`: drop events (maps with `ts_ns`, `saddr`, `sport`,
/// `daddr`, `dport`) against slow transactions (maps with `start_ns`, `end_ns`,
/// `local`, `remote`), matched per connection and time.
fn correlate_maps(drops: &Dynamic, slow: &Dynamic) -> Result<Correlation, CorrelateError> {
    let drops = items(drops, "drops", |m| {
        Ok(Drop {
            ts_ns: uint_field(m, "ts_ns")?,
            conn: Connection::new(
                endpoint(m, "saddr", "sport")?,
                endpoint(m, "daddr", "dport")?,
            ),
        })
    })?;
    let slow = items(slow, "slow", |m| {
        Ok(SlowTransaction {
            start_ns: uint_field(m, "start_ns")?,
            end_ns: uint_field(m, "end_ns")?,
            conn: Connection::new(socket_addr(m, "local")?, socket_addr(m, "remote")?),
        })
    })?;
    Ok(correlate(&drops, &slow))
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
        let l = h.lost();
        let int = |v: u64| Dynamic::from_int(INT::try_from(v).unwrap_or(INT::MAX));
        let m: Map = [
            ("events", l.events),
            ("map_full", l.map_full),
            ("callback_errors", l.callback_errors),
            ("undelivered", l.undelivered),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), int(v)))
        .collect();
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
        |ctx: NativeCallContext, drops: Dynamic, slow: Dynamic| -> Res<Dynamic> {
            let c = correlate_maps(&drops, &slow)
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
        let drop = map(&[
            ("ts_ns", Dynamic::from_int(1_100_000_000)),
            ("saddr", Dynamic::from("::ffff:192.0.2.2")),
            ("sport", Dynamic::from_int(12865)),
            ("daddr", Dynamic::from("192.0.2.1")),
            ("dport", Dynamic::from_int(40000)),
        ]);
        let slow = map(&[
            ("start_ns", Dynamic::from_int(1_000_000_000)),
            ("end_ns", Dynamic::from_int(1_210_000_000)),
            ("local", Dynamic::from("192.0.2.1:40000")),
            ("remote", Dynamic::from("192.0.2.2:12865")),
        ]);
        let c = correlate_maps(
            &Dynamic::from_array(vec![Dynamic::from_map(drop.clone())]),
            &Dynamic::from_array(vec![Dynamic::from_map(slow)]),
        )
        .unwrap();
        assert_eq!((c.slow_with_drop, c.drops_in_slow), (1, 1));
        let mut bad = drop;
        bad.remove("sport");
        let e = correlate_maps(
            &Dynamic::from_array(vec![Dynamic::from_map(bad)]),
            &Dynamic::from_array(vec![]),
        )
        .unwrap_err();
        assert_eq!(with_causes(&e), "drops[0]: missing `sport`");
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
