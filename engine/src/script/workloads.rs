//! Workloads a script declares: `tcp_rr(#{..})` and `exec(#{..})`. They
//! start with the session (or when a trigger starts them) and make the
//! traffic the probes watch.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::convert::{describe, want_string};
use super::errors::{fail, Res};
use super::state::State;
use vprobe_load::exec::ExecOptions;

use crate::plan::{RrSpec, WorkloadKind, WorkloadSpec};

// The option parsers below return their message as a String: each is one
// sentence for the script's author, made into a located error by `fail`.

fn opt_str(m: &Map, key: &str) -> Result<Option<String>, String> {
    m.get(key)
        .map(|v| want_string(v, &format!("`{key}`")).map_err(|e| e.to_string()))
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
        .map(|a| want_string(a, "an argument of `cmd`").map_err(|e| e.to_string()))
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

/// A `--load` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--load {spec}: {why}")]
pub struct LoadSpecError {
    /// As given.
    pub spec: String,
    /// What is wrong with it (one sentence, as for the script function).
    pub why: String,
}

/// A workload given on the command line rather than by the script:
/// `tcp_rr` or `tcp_rr:streams=16,duration=5s`, with the options of
/// `tcp_rr(#{..})` (in a lab, it runs between the lab's guests).
///
/// ```
/// let w = vprobe_engine::script::load_spec("tcp_rr:streams=4,duration=2s").unwrap();
/// assert_eq!(w.name, "rr");
/// ```
pub fn load_spec(spec: &str) -> Result<WorkloadSpec, LoadSpecError> {
    let err = |why: String| LoadSpecError {
        spec: spec.to_string(),
        why,
    };
    let (kind, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if kind != "tcp_rr" {
        return Err(err(format!(
            "unknown workload `{kind}`: `--load` takes `tcp_rr[:OPTION=VALUE,..]`"
        )));
    }
    let mut m = Map::new();
    for kv in opts.split(',').map(str::trim).filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| err(format!("expected OPTION=VALUE, got `{kv}`")))?;
        let v = v.trim();
        let value = if let Ok(n) = v.parse::<rhai::INT>() {
            Dynamic::from_int(n)
        } else if let Ok(b) = v.parse::<bool>() {
            Dynamic::from_bool(b)
        } else if k == "thresholds" {
            Dynamic::from_array(v.split(';').map(|t| Dynamic::from(t.to_string())).collect())
        } else {
            Dynamic::from(v.to_string())
        };
        m.insert(k.trim().into(), value);
    }
    let (name, start, rr) = rr_spec(&m).map_err(err)?;
    Ok(WorkloadSpec {
        name,
        kind: WorkloadKind::TcpRr(rr),
        start,
        origin: crate::plan::Origin {
            source: "--load".into(),
            line: 0,
            col: 0,
        },
    })
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

/// Registers `tcp_rr` and `exec` on `engine`.
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
    fn a_load_from_the_command_line_takes_tcp_rr_options() {
        let w = load_spec("tcp_rr:streams=4,duration=2s,name=bg,thresholds=1ms;200ms").unwrap();
        let WorkloadKind::TcpRr(rr) = &w.kind else {
            panic!("not tcp_rr")
        };
        assert_eq!((w.name.as_str(), rr.options.streams), ("bg", 4));
        assert_eq!(rr.options.duration, Some(Duration::from_secs(2)));
        assert_eq!(rr.options.thresholds.len(), 2);
        assert_eq!(load_spec("tcp_rr").unwrap().name, "rr");
        let e = load_spec("tcp_rr:stremas=4").unwrap_err().to_string();
        assert!(
            e.starts_with("--load tcp_rr:stremas=4: tcp_rr: unknown option `stremas`"),
            "{e}"
        );
        assert!(load_spec("udp:x=1")
            .unwrap_err()
            .to_string()
            .contains("unknown workload `udp`"));
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
}
