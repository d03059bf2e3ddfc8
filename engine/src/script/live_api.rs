//! The script functions that reach past the kernel probes: workloads
//! (`tcp_rr`, `exec`), triggers (`trigger("drops > 0").exit(3)`), and live
//! queries answered by the run loop (`total`, `entries`, `workload`,
//! `dev_stat`, `lab`).
//!
//! Declarations record into the shared [`State`] like `probe(..)` does; queries
//! go through the [`Host`] the run loop installs. Without one (`vprobe check`)
//! queries return `()`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, Engine, FnPtr, Map, NativeCallContext, INT};
use vprobe_load::exec::ExecOptions;

use super::api::{callback, fail, Res, State};
use super::convert::{describe, want_string};
use crate::correlate::{correlate, parse_ip, Connection, Correlation, Drop, SlowTransaction};
use crate::plan::{RrSpec, WorkloadKind, WorkloadSpec};
use crate::trigger::{Condition, Trigger, TriggerAction};

/// What a script can ask the running session, implemented by the run loop.
pub trait Host {
    /// Sum of the aggregation's counts, `None` when there is no such aggregation.
    fn agg_total(&self, name: &str) -> Option<u64>;
    /// The aggregation in the JSON summary's shape.
    fn agg_entries(&self, name: &str) -> Option<serde_json::Value>;
    /// A workload's result when it ended, else its live statistics.
    fn workload(&self, name: &str) -> Option<serde_json::Value>;
    /// A network device's statistic (`rx_dropped`, ...), looked up in the lab's
    /// namespaces first when there is a lab.
    fn dev_stat(&self, dev: &str, stat: &str) -> Result<u64, String>;
    /// The lab, when the run has one.
    fn lab(&self) -> Option<serde_json::Value>;
    /// Network devices whose name matches `pattern` (a name, or a prefix
    /// glob `macvtap*`): the lab's when there is a lab, else this namespace's.
    fn devices(&self, pattern: &str) -> Vec<String>;
}

/// A trigger being configured; every method adds an action and returns the handle.
#[derive(Clone, Debug)]
pub struct TriggerHandle {
    index: usize,
}

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

fn opt_str(m: &Map, key: &str) -> Result<Option<String>, String> {
    m.get(key)
        .map(|v| want_string(v, &format!("`{key}`")))
        .transpose()
}

fn opt_uint(m: &Map, key: &str) -> Result<Option<u64>, String> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "`{key}` must be a non-negative integer, got {}",
                    describe(v)
                )
            }),
    }
}

fn opt_bool(m: &Map, key: &str) -> Result<Option<bool>, String> {
    match m.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .map_err(|_| format!("`{key}` must be true or false, got {}", describe(v))),
    }
}

fn opt_duration(m: &Map, key: &str) -> Result<Option<Duration>, String> {
    match m.get(key) {
        None => Ok(None),
        Some(v) if v.is_string() => vprobe_time::duration::parse(&v.to_string())
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
        Some(v) => match v.as_int() {
            Ok(n) if n >= 0 => Ok(Some(Duration::from_secs(n as u64))),
            _ => Err(format!(
                "`{key}` must be a duration like \"10s\", got {}",
                describe(v)
            )),
        },
    }
}

fn check_keys(m: &Map, what: &str, allowed: &[&str]) -> Result<(), String> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "{what}: unknown option `{k}` (options: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

const RR_OPTIONS: [&str; 10] = [
    "name",
    "target",
    "streams",
    "request_size",
    "response_size",
    "duration",
    "warmup",
    "thresholds",
    "start",
    "serve",
];

fn rr_spec(m: &Map) -> Result<(String, bool, RrSpec), String> {
    check_keys(m, "tcp_rr", &RR_OPTIONS)?;
    let mut spec = RrSpec {
        target: opt_str(m, "target")?,
        serve: opt_bool(m, "serve")?.unwrap_or(false),
        ..RrSpec::default()
    };
    let o = &mut spec.options;
    for (key, slot) in [
        ("streams", &mut o.streams),
        ("request_size", &mut o.request_size),
        ("response_size", &mut o.response_size),
    ] {
        if let Some(n) = opt_uint(m, key)? {
            // beyond usize is beyond the limits too
            *slot = usize::try_from(n).unwrap_or(usize::MAX);
        }
    }
    o.duration = opt_duration(m, "duration")?.or(o.duration);
    o.warmup = opt_duration(m, "warmup")?.unwrap_or(o.warmup);
    if let Some(t) = m.get("thresholds") {
        let items = t
            .clone()
            .into_array()
            .map_err(|_| "tcp_rr: `thresholds` must be an array of durations".to_string())?;
        o.thresholds = items
            .iter()
            .map(|d| {
                vprobe_time::duration::parse(&d.to_string()).map_err(|e| format!("tcp_rr: {e}"))
            })
            .collect::<Result<_, _>>()?;
    }
    // the limits of `vprobe rr` and of the server
    o.validate().map_err(|e| format!("tcp_rr: {e}"))?;
    let name = opt_str(m, "name")?.unwrap_or_else(|| "rr".into());
    let start = opt_bool(m, "start")?.unwrap_or(true);
    Ok((name, start, spec))
}

fn exec_spec(m: &Map) -> Result<(String, bool, ExecOptions), String> {
    check_keys(m, "exec", &["name", "cmd", "timeout", "start"])?;
    let cmd = m
        .get("cmd")
        .ok_or("exec: `cmd` is required: the command and its arguments as an array")?;
    let argv: Vec<String> = cmd
        .clone()
        .into_array()
        .map_err(|_| {
            format!(
                "exec: `cmd` must be an array of strings, got {}",
                describe(cmd)
            )
        })?
        .iter()
        .map(|a| want_string(a, "an argument of `cmd`"))
        .collect::<Result<_, _>>()?;
    if argv.is_empty() {
        return Err("exec: `cmd` is empty".into());
    }
    let name = opt_str(m, "name")?.unwrap_or_else(|| argv[0].clone());
    let start = opt_bool(m, "start")?.unwrap_or(true);
    let mut opts = ExecOptions::new(&argv[0], &argv[1..]);
    opts.timeout = opt_duration(m, "timeout")?;
    Ok((name, start, opts))
}

fn declare(
    st: &Rc<RefCell<State>>,
    ctx: &NativeCallContext,
    name: String,
    start: bool,
    kind: WorkloadKind,
) -> Res<String> {
    let mut s = st.borrow_mut();
    if s.workloads.iter().any(|w| w.name == name) {
        return Err(fail(
            ctx,
            format!("a workload named `{name}` already exists; give this one another `name`"),
        ));
    }
    if let WorkloadKind::Exec(_) = &kind {
        if !s.allow_exec {
            return Err(fail(
                ctx,
                "exec: running external commands is not allowed; pass --allow exec",
            ));
        }
    }
    let origin = s.origin(ctx);
    s.workloads.push(WorkloadSpec {
        name: name.clone(),
        kind,
        start,
        origin,
    });
    Ok(name)
}

fn map_arg(ctx: &NativeCallContext, v: &Dynamic, what: &str) -> Res<Map> {
    v.clone().try_cast::<Map>().ok_or_else(|| {
        fail(
            ctx,
            format!(
                "{what}: expects an options map like #{{streams: 16}}, got {}",
                describe(v)
            ),
        )
    })
}

fn add_action(st: &Rc<RefCell<State>>, h: &TriggerHandle, a: TriggerAction) -> TriggerHandle {
    st.borrow_mut().triggers[h.index].actions.push(a);
    h.clone()
}

fn host(st: &Rc<RefCell<State>>) -> Option<Rc<dyn Host>> {
    st.borrow().host.clone()
}

fn map_field<'m>(m: &'m Map, key: &str) -> Result<&'m Dynamic, String> {
    m.get(key).ok_or_else(|| format!("missing `{key}`"))
}

fn uint_field(m: &Map, key: &str) -> Result<u64, String> {
    let v = map_field(m, key)?;
    v.as_int()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "`{key}` must be a non-negative integer, got {}",
                describe(v)
            )
        })
}

fn endpoint(m: &Map, addr: &str, port: &str) -> Result<SocketAddr, String> {
    let a = map_field(m, addr)?.to_string();
    let ip = parse_ip(&a).ok_or_else(|| format!("`{addr}` is not an IP address: {a}"))?;
    let port =
        u16::try_from(uint_field(m, port)?).map_err(|_| format!("`{port}` is not a port"))?;
    Ok(SocketAddr::new(ip, port))
}

fn socket_addr(m: &Map, key: &str) -> Result<SocketAddr, String> {
    let s = map_field(m, key)?.to_string();
    let (ip, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{key}` must be ADDRESS:PORT, got {s}"))?;
    let ip = parse_ip(ip.trim_matches(|c| c == '[' || c == ']'))
        .ok_or_else(|| format!("`{key}` must be ADDRESS:PORT, got {s}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("`{key}` must be ADDRESS:PORT, got {s}"))?;
    Ok(SocketAddr::new(ip, port))
}

fn maps(v: &Dynamic, what: &str) -> Result<Vec<Map>, String> {
    let items = v
        .clone()
        .into_array()
        .map_err(|_| format!("{what} must be an array of maps, got {}", describe(v)))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            m.try_cast::<Map>()
                .ok_or_else(|| format!("{what}[{i}] is not a map"))
        })
        .collect()
}

/// `correlate(drops, slow)`: drop events (maps with `ts_ns`, `saddr`, `sport`,
/// `daddr`, `dport`) against slow transactions (maps with `start_ns`, `end_ns`,
/// `local`, `remote`), matched per connection and time.
fn correlate_maps(drops: &Dynamic, slow: &Dynamic) -> Result<Correlation, String> {
    let drops = maps(drops, "drops")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (|| {
                Ok(Drop {
                    ts_ns: uint_field(m, "ts_ns")?,
                    conn: Connection::new(
                        endpoint(m, "saddr", "sport")?,
                        endpoint(m, "daddr", "dport")?,
                    ),
                })
            })()
            .map_err(|e: String| format!("drops[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let slow = maps(slow, "slow")?
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (|| {
                Ok(SlowTransaction {
                    start_ns: uint_field(m, "start_ns")?,
                    end_ns: uint_field(m, "end_ns")?,
                    conn: Connection::new(socket_addr(m, "local")?, socket_addr(m, "remote")?),
                })
            })()
            .map_err(|e: String| format!("slow[{i}]: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(correlate(&drops, &slow))
}

/// Registers workloads, triggers and live queries on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    engine.register_fn(
        "tcp_rr",
        move |ctx: NativeCallContext, opts: Dynamic| -> Res<String> {
            let m = map_arg(&ctx, &opts, "tcp_rr")?;
            let (name, start, spec) = rr_spec(&m).map_err(|e| fail(&ctx, e))?;
            declare(&s, &ctx, name, start, WorkloadKind::TcpRr(spec))
        },
    );
    let s = st.clone();
    engine.register_fn("tcp_rr", move |ctx: NativeCallContext| -> Res<String> {
        let (name, start, spec) = rr_spec(&Map::new()).map_err(|e| fail(&ctx, e))?;
        declare(&s, &ctx, name, start, WorkloadKind::TcpRr(spec))
    });
    let s = st.clone();
    engine.register_fn(
        "exec",
        move |ctx: NativeCallContext, opts: Dynamic| -> Res<String> {
            let m = map_arg(&ctx, &opts, "exec")?;
            let (name, start, spec) = exec_spec(&m).map_err(|e| fail(&ctx, e))?;
            declare(&s, &ctx, name, start, WorkloadKind::Exec(spec))
        },
    );

    engine.register_type_with_name::<TriggerHandle>("Trigger");
    let s = st.clone();
    engine.register_fn(
        "trigger",
        move |ctx: NativeCallContext, cond: Dynamic| -> Res<TriggerHandle> {
            let text = want_string(&cond, "the trigger condition").map_err(|e| fail(&ctx, e))?;
            let c = Condition::parse(&text).map_err(|e| fail(&ctx, e.to_string()))?;
            let mut st = s.borrow_mut();
            let origin = st.origin(&ctx);
            st.triggers.push(Trigger::new(c, origin));
            Ok(TriggerHandle {
                index: st.triggers.len() - 1,
            })
        },
    );
    let s = st.clone();
    // `print` is a Rhai keyword, so the printing action is `.log(text)`
    engine.register_fn(
        "log",
        move |h: &mut TriggerHandle, text: &str| -> TriggerHandle {
            add_action(&s, h, TriggerAction::Print(text.to_string()))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "snapshot",
        move |h: &mut TriggerHandle, agg: &str| -> TriggerHandle {
            add_action(&s, h, TriggerAction::Snapshot(agg.to_string()))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "start",
        move |h: &mut TriggerHandle, w: &str| -> TriggerHandle {
            add_action(&s, h, TriggerAction::Start(w.to_string()))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "stop",
        move |h: &mut TriggerHandle, w: &str| -> TriggerHandle {
            add_action(&s, h, TriggerAction::Stop(w.to_string()))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "exit",
        move |ctx: NativeCallContext, h: &mut TriggerHandle, code: INT| -> Res<TriggerHandle> {
            let code = i32::try_from(code)
                .map_err(|_| fail(&ctx, format!("exit: code {code} is out of range")))?;
            Ok(add_action(&s, h, TriggerAction::Exit(code)))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "call",
        move |ctx: NativeCallContext, h: &mut TriggerHandle, f: FnPtr| -> Res<TriggerHandle> {
            let cb = callback(&s, &ctx, &Dynamic::from(f), "trigger call", 0)?;
            Ok(add_action(&s, h, TriggerAction::Call(cb)))
        },
    );
    let s = st.clone();
    engine.register_fn("once", move |h: &mut TriggerHandle| -> TriggerHandle {
        s.borrow_mut().triggers[h.index].once = true;
        h.clone()
    });

    let s = st.clone();
    engine.register_fn(
        "total",
        move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> {
            let Some(h) = host(&s) else {
                return Ok(Dynamic::UNIT);
            };
            h.agg_total(name)
                .map(|t| Dynamic::from_int(INT::try_from(t).unwrap_or(INT::MAX)))
                .ok_or_else(|| fail(&ctx, format!("total: no aggregation named `{name}`")))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "entries",
        move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> {
            let Some(h) = host(&s) else {
                return Ok(Dynamic::UNIT);
            };
            h.agg_entries(name)
                .map(to_rhai)
                .ok_or_else(|| fail(&ctx, format!("entries: no aggregation named `{name}`")))
        },
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
                .map_err(|e| fail(&ctx, format!("dev_stat: {e}")))
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
            let c =
                correlate_maps(&drops, &slow).map_err(|e| fail(&ctx, format!("correlate: {e}")))?;
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
    fn rr_options_are_checked() {
        let (name, start, spec) = rr_spec(&map(&[
            ("streams", Dynamic::from_int(16)),
            ("duration", Dynamic::from("5s")),
            ("thresholds", Dynamic::from_array(vec!["100ms".into()])),
        ]))
        .unwrap();
        let o = &spec.options;
        assert_eq!((name.as_str(), start, o.streams), ("rr", true, 16));
        assert_eq!(o.duration, Some(Duration::from_secs(5)));
        assert_eq!(o.thresholds, vec![Duration::from_millis(100)]);
        // the protocol's limits, as `vprobe rr` and the server have them
        let (_, _, max) = rr_spec(&map(&[
            ("streams", Dynamic::from_int(4096)),
            ("response_size", Dynamic::from_int(16 << 20)),
        ]))
        .unwrap();
        assert_eq!(
            (max.options.streams, max.options.response_size),
            (4096, 16 << 20)
        );
        for (opts, why) in [
            (
                map(&[("streams", Dynamic::from_int(0))]),
                "tcp_rr: streams must be 1 to 4096, not 0",
            ),
            (
                map(&[("streams", Dynamic::from_int(4097))]),
                "streams must be 1 to 4096, not 4097",
            ),
            (
                map(&[("request_size", Dynamic::from_int((16 << 20) + 1))]),
                "request size must be 1 to 16777216 bytes",
            ),
            (
                map(&[("stremas", Dynamic::from_int(1))]),
                "unknown option `stremas`",
            ),
            (map(&[("duration", Dynamic::from("soon"))]), "`duration`"),
            (map(&[("start", Dynamic::from_int(1))]), "true or false"),
        ] {
            let e = rr_spec(&opts).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn exec_needs_a_command() {
        assert!(exec_spec(&Map::new())
            .unwrap_err()
            .contains("`cmd` is required"));
        let (name, _, spec) =
            exec_spec(&map(&[("cmd", Dynamic::from_array(vec!["true".into()]))])).unwrap();
        assert_eq!((name.as_str(), spec.args.len()), ("true", 0));
        assert_eq!(spec.program, "true");
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
        assert_eq!(e, "drops[0]: missing `sport`");
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
