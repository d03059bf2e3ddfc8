//! The functions a script calls: `probe(..)` and its builder methods,
//! `every`, `on_end`, `print`, `report`, `param`, ...
//!
//! Every function records into the shared [`State`]; nothing here touches the
//! kernel or the terminal. Misuse is an `ErrorRuntime` at the call's position,
//! with a message saying what was expected.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext,
    Position, INT,
};
use vprobe_probes::{suggest, FieldDef, FieldKind, ProbeDef, CATALOG, GENERIC};

use super::convert::{self, describe, want_string};
use super::live_api::Host;
use super::{Action, Plan, Timer};
use crate::filter;
use crate::generic;
use crate::plan::{Consumer, Filter, HistKind, Origin, ProbeRequest, WorkloadSpec};
use crate::symbols::Symbols;
use crate::trigger::Trigger;

/// Shortest `every()` period.
pub const MIN_PERIOD: Duration = Duration::from_millis(10);

pub(super) type Res<T> = Result<T, Box<EvalAltResult>>;

/// What the script has asked for so far, shared by the registered functions.
pub(super) struct State {
    pub symbols: Rc<Symbols>,
    /// Source of the evaluation running now (script name or `<repl>`).
    pub source: String,
    /// `-p key=value` from the command line.
    pub given: BTreeMap<String, String>,
    /// The `params` map seen by the script (shared, so `param()` can add defaults).
    pub params: Dynamic,
    pub requests: Vec<ProbeRequest>,
    pub timers: Vec<Timer>,
    pub on_end: Vec<usize>,
    pub callbacks: Vec<Callback>,
    pub actions: Vec<Action>,
    pub aggs: Vec<Agg>,
    pub workloads: Vec<WorkloadSpec>,
    pub triggers: Vec<Trigger>,
    /// Answers live queries (`total`, `workload`, ...) while the session runs.
    pub host: Option<Rc<dyn Host>>,
    /// `--allow exec`.
    pub allow_exec: bool,
}

/// Lengths of what [`State`] has recorded, to tell one evaluation's additions.
pub(super) struct Marks {
    pub requests: usize,
    pub timers: usize,
    pub on_end: usize,
    pub callbacks: usize,
    pub aggs: usize,
    pub workloads: usize,
    pub triggers: usize,
    pub actions: usize,
}

/// A script function the runner calls later.
#[derive(Clone)]
pub(super) struct Callback {
    pub fn_ptr: FnPtr,
    /// Arguments the runner passes (1 for events, 0 for timers and `on_end`).
    pub arity: usize,
    /// Where it was registered (errors inside it that lose their position land here).
    pub source: String,
    pub pos: Position,
    /// `every`, `on_end`, `on_event`: for messages.
    pub kind: &'static str,
}

/// An aggregation declared by a consumer; a second consumer with the same name
/// must have the same shape (then the runner merges them).
pub(super) struct Agg {
    pub name: String,
    pub shape: Shape,
    pub origin: Origin,
}

/// What an aggregation holds: what the runner needs to merge two of them.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    Count {
        keys: Vec<(&'static str, FieldKind)>,
    },
    Hist {
        field: &'static str,
        kind: HistKind,
        keys: Vec<(&'static str, FieldKind)>,
    },
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys =
            |k: &[(&str, FieldKind)]| k.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        match self {
            Shape::Count { keys: k } => write!(f, "a count by [{}]", keys(k)),
            Shape::Hist {
                field,
                kind: HistKind::Log2,
                keys: k,
            } => {
                write!(f, "a log2 histogram of `{field}` by [{}]", keys(k))
            }
            Shape::Hist {
                field,
                kind: HistKind::Linear { step },
                keys: k,
            } => {
                write!(
                    f,
                    "a linear histogram (step {step}) of `{field}` by [{}]",
                    keys(k)
                )
            }
        }
    }
}

impl State {
    pub fn new(
        symbols: Rc<Symbols>,
        source: &str,
        given: BTreeMap<String, String>,
        params: Dynamic,
    ) -> Self {
        Self {
            symbols,
            source: source.to_string(),
            given,
            params,
            requests: Vec::new(),
            timers: Vec::new(),
            on_end: Vec::new(),
            callbacks: Vec::new(),
            actions: Vec::new(),
            aggs: Vec::new(),
            workloads: Vec::new(),
            triggers: Vec::new(),
            host: None,
            allow_exec: false,
        }
    }

    /// How much has been asked for so far.
    pub fn marks(&self) -> Marks {
        Marks {
            requests: self.requests.len(),
            timers: self.timers.len(),
            on_end: self.on_end.len(),
            callbacks: self.callbacks.len(),
            aggs: self.aggs.len(),
            workloads: self.workloads.len(),
            triggers: self.triggers.len(),
            actions: self.actions.len(),
        }
    }

    /// What was asked for since `m`.
    pub fn plan_since(&self, m: &Marks) -> Plan {
        Plan {
            requests: self.requests[m.requests..].to_vec(),
            timers: self.timers[m.timers..].to_vec(),
            on_end: self.on_end[m.on_end..].to_vec(),
            workloads: self.workloads[m.workloads..].to_vec(),
            triggers: self.triggers[m.triggers..].to_vec(),
        }
    }

    /// Forgets what was asked for since `m` (an evaluation that failed),
    /// including the actions it asked for and that were not taken yet.
    pub fn rewind(&mut self, m: &Marks) {
        self.actions.truncate(m.actions);
        self.requests.truncate(m.requests);
        self.timers.truncate(m.timers);
        self.on_end.truncate(m.on_end);
        self.callbacks.truncate(m.callbacks);
        self.aggs.truncate(m.aggs);
        self.workloads.truncate(m.workloads);
        self.triggers.truncate(m.triggers);
    }

    pub(super) fn origin(&self, ctx: &NativeCallContext) -> Origin {
        let pos = ctx.call_position();
        Origin {
            source: ctx.call_source().unwrap_or(&self.source).to_string(),
            line: pos.line().unwrap_or(0),
            col: pos.position().unwrap_or(0),
        }
    }
}

/// A probe being configured: `probe("skb.drop").filter("dev", "mvt0")`.
/// Immutable: each `.filter()` returns a new handle, so a base handle can be
/// reused for several consumers.
#[derive(Clone, Debug)]
pub struct ProbeHandle {
    probe: &'static ProbeDef,
    filters: Vec<Filter>,
    origin: Origin,
}

impl ProbeHandle {
    /// The attach point.
    pub fn probe(&self) -> &'static ProbeDef {
        self.probe
    }
}

impl fmt::Display for ProbeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probe(\"{}\")", self.probe.name)?;
        for flt in &self.filters {
            let vals: Vec<String> = flt.values.iter().map(ToString::to_string).collect();
            match vals.as_slice() {
                [one] => write!(f, ".filter(\"{}\", {one})", flt.field.name)?,
                many => write!(f, ".filter(\"{}\", [{}])", flt.field.name, many.join(", "))?,
            }
        }
        Ok(())
    }
}

pub(super) fn fail(ctx: &NativeCallContext, msg: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(msg.into()),
        ctx.call_position(),
    ))
}

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The attach point called `name` — a catalog entry, or a generic one
/// (`tracepoint:CAT:NAME`, `kprobe:FUNC`, `fentry:FUNC`, `uprobe:PATH:SYMBOL`) —
/// or a message with the closest name.
pub fn find_probe(name: &str) -> Result<&'static ProbeDef, String> {
    if let Some(def) = generic::resolve(name)? {
        return Ok(def);
    }
    if let Some(def) = vprobe_probes::find(name) {
        return Ok(def);
    }
    let generic = || quoted_list(GENERIC.iter().map(|g| g.usage));
    if let Some((kind, rest)) = name.split_once(':') {
        return Err(match suggest(kind, GENERIC.iter().map(|g| g.kind)) {
            Some(k) => format!("unknown probe kind `{kind}`; did you mean `{k}:{rest}`?"),
            None => format!(
                "unknown probe kind `{kind}`; generic probes are {}",
                generic()
            ),
        });
    }
    Err(match suggest(name, CATALOG.iter().map(|p| p.name)) {
        Some(s) => format!("unknown probe `{name}`; did you mean `{s}`?"),
        None => format!(
            "unknown probe `{name}`; the probes are {}, and the generic {}",
            quoted_list(CATALOG.iter().map(|p| p.name)),
            generic()
        ),
    })
}

/// A function probe's function must exist, when /proc/kallsyms can say.
fn check_function(probe: &ProbeDef, symbols: &Symbols) -> Result<(), String> {
    let Some(f) = generic::function_of(probe) else {
        return Ok(());
    };
    if symbols.has_kallsyms() && symbols.symbol_range(f).is_none() {
        return Err(format!(
            "`{}`: unknown kernel function `{f}` (not in /proc/kallsyms)",
            probe.name
        ));
    }
    Ok(())
}

/// The field `name` of `probe`, or a message with the closest name.
pub fn find_field(probe: &ProbeDef, name: &str) -> Result<&'static FieldDef, String> {
    probe.field(name).ok_or_else(|| {
        let names = || probe.fields.iter().map(|f| f.name);
        match suggest(name, names()) {
            Some(s) => format!(
                "probe `{}` has no field `{name}`; did you mean `{s}`?",
                probe.name
            ),
            None => format!(
                "probe `{}` has no field `{name}`; its fields are {}",
                probe.name,
                quoted_list(names())
            ),
        }
    })
}

fn agg_name(v: &Dynamic) -> Result<String, String> {
    let name = want_string(v, "an aggregation name")?;
    if name.trim().is_empty() {
        return Err("an aggregation name cannot be empty".into());
    }
    Ok(name)
}

fn key_fields(probe: &ProbeDef, keys: &Dynamic) -> Result<Vec<&'static FieldDef>, String> {
    let keys = keys.flatten_clone();
    let items: Array = if keys.is_array() {
        keys.cast::<Array>()
    } else if keys.is_string() {
        // `.count("drops", "dev")`: one key
        vec![keys]
    } else {
        return Err(format!(
            "aggregation keys must be a list of field names, got {}",
            describe(&keys)
        ));
    };
    let mut out: Vec<&'static FieldDef> = Vec::new();
    for k in &items {
        let name = want_string(k, "an aggregation key")?;
        let f = find_field(probe, &name)?;
        if !f.key {
            return Err(format!(
                "field `{name}` of `{}` cannot be an aggregation key",
                probe.name
            ));
        }
        if out.iter().any(|o| o.name == f.name) {
            return Err(format!("aggregation key `{name}` is given twice"));
        }
        out.push(f);
    }
    Ok(out)
}

fn quantity(probe: &ProbeDef, field: &Dynamic) -> Result<&'static FieldDef, String> {
    let name = want_string(field, "the histogram field")?;
    let f = find_field(probe, &name)?;
    if !f.kind.is_quantity() {
        let nums: Vec<&str> = probe
            .fields
            .iter()
            .filter(|f| f.kind.is_quantity())
            .map(|f| f.name)
            .collect();
        let hint = match nums.as_slice() {
            [] => format!("`{}` has no numeric field", probe.name),
            _ => format!(
                "numeric fields of `{}`: {}",
                probe.name,
                quoted_list(nums.into_iter())
            ),
        };
        return Err(format!("cannot histogram `{name}`: not a number ({hint})"));
    }
    Ok(f)
}

fn shape_keys(keys: &[&'static FieldDef]) -> Vec<(&'static str, FieldKind)> {
    keys.iter().map(|k| (k.name, k.kind)).collect()
}

/// Records one consumer of `h`, checking the aggregation name is used consistently.
fn consume(
    st: &Rc<RefCell<State>>,
    ctx: &NativeCallContext,
    h: &ProbeHandle,
    consumer: Consumer,
) -> Res<()> {
    let req = ProbeRequest {
        probe: h.probe,
        filters: h.filters.clone(),
        consumer,
        origin: h.origin.clone(),
    };
    // A generic tracepoint request must fit one record: say so at this line,
    // also in `vprobe check`, rather than when the session loads it.
    generic::narrow(req.clone()).map_err(|m| fail(ctx, m))?;
    let consumer = &req.consumer;
    let mut s = st.borrow_mut();
    let shape = match consumer {
        Consumer::Count { keys, .. } => Some(Shape::Count {
            keys: shape_keys(keys),
        }),
        Consumer::Hist {
            field, keys, kind, ..
        } => Some(Shape::Hist {
            field: field.name,
            kind: *kind,
            keys: shape_keys(keys),
        }),
        Consumer::Events { .. } => None,
    };
    if let (Some(name), Some(shape)) = (consumer.agg_name(), shape) {
        match s.aggs.iter().find(|a| a.name == name) {
            Some(prev) if prev.shape != shape => {
                return Err(fail(
                    ctx,
                    format!(
                        "aggregation `{name}` is already {} (at {}); here it would be {shape}: use another name",
                        prev.shape, prev.origin
                    ),
                ))
            }
            Some(_) => {}
            None => {
                let origin = s.origin(ctx);
                s.aggs.push(Agg { name: name.to_string(), shape, origin });
            }
        }
    }
    s.requests.push(req);
    Ok(())
}

pub(super) fn callback(
    st: &Rc<RefCell<State>>,
    ctx: &NativeCallContext,
    f: &Dynamic,
    kind: &'static str,
    arity: usize,
) -> Res<usize> {
    let f = f.flatten_clone();
    let fn_ptr = if f.is_fnptr() {
        f.cast::<FnPtr>()
    } else if f.is_string() {
        FnPtr::new(f.to_string()).map_err(|e| fail(ctx, format!("{kind}: {e}")))?
    } else {
        let args = if arity == 1 { "|e| ..." } else { "|| ..." };
        return Err(fail(
            ctx,
            format!(
                "{kind}: the callback must be a closure (`{args}`) or a function pointer, got {}",
                describe(&f)
            ),
        ));
    };
    let mut s = st.borrow_mut();
    let source = ctx.call_source().unwrap_or(&s.source).to_string();
    s.callbacks.push(Callback {
        fn_ptr,
        arity,
        source,
        pos: ctx.call_position(),
        kind,
    });
    Ok(s.callbacks.len() - 1)
}

fn period(ctx: &NativeCallContext, v: &Dynamic) -> Res<Duration> {
    let v = v.flatten_clone();
    let d = if let Ok(n) = v.as_int() {
        vprobe_time::duration::parse(&n.to_string()).map_err(|e| e.to_string())
    } else if let Ok(x) = v.as_float() {
        vprobe_time::duration::parse(&x.to_string()).map_err(|e| e.to_string())
    } else if v.is_string() {
        vprobe_time::duration::parse(&v.to_string()).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "every: the period must be a duration like \"500ms\" or \"1s\", got {}",
            describe(&v)
        ))
    }
    .map_err(|m| fail(ctx, m))?;
    if d < MIN_PERIOD {
        return Err(fail(
            ctx,
            format!(
                "every: period {} is shorter than the minimum of 10ms",
                vprobe_time::duration::format(d)
            ),
        ));
    }
    Ok(d)
}

/// Parses a `-p` value like the default: an integer default wants an integer.
fn param_value(name: &str, given: Option<&String>, default: Dynamic) -> Result<Dynamic, String> {
    let Some(given) = given else {
        return Ok(default);
    };
    let bad = |what: &str| format!("parameter `{name}` expects {what}, got `{given}`");
    let default = default.flatten_clone();
    if default.is_int() {
        given
            .trim()
            .parse::<INT>()
            .map(Dynamic::from_int)
            .map_err(|_| bad("an integer"))
    } else if default.is_float() {
        given
            .trim()
            .parse::<f64>()
            .map(Dynamic::from_float)
            .map_err(|_| bad("a number"))
    } else if default.is_bool() {
        match given.trim() {
            "true" | "yes" | "1" => Ok(Dynamic::TRUE),
            "false" | "no" | "0" => Ok(Dynamic::FALSE),
            _ => Err(bad("true or false")),
        }
    } else {
        Ok(Dynamic::from(given.clone()))
    }
}

/// The value a `//! param:` default stands for: an integer when it reads as one.
pub(super) fn default_value(s: &str) -> Dynamic {
    match s.parse::<INT>() {
        Ok(n) => Dynamic::from_int(n),
        Err(_) => Dynamic::from(s.to_string()),
    }
}

fn set_param(st: &Rc<RefCell<State>>, name: &str, v: Dynamic) {
    // a clone of a shared value is the same cell
    let mut params = st.borrow().params.clone();
    if let Some(mut m) = params.write_lock::<Map>() {
        m.insert(name.into(), v);
    };
}

fn push(st: &Rc<RefCell<State>>, a: Action) {
    st.borrow_mut().actions.push(a);
}

fn exit_now(ctx: &NativeCallContext) -> Box<EvalAltResult> {
    // stop the running evaluation like Rhai's own `exit`; the caller maps it to Ok
    Box::new(EvalAltResult::Exit(Dynamic::UNIT, ctx.call_position()))
}

/// Registers the vprobe API on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    engine.register_type_with_name::<ProbeHandle>("Probe");
    engine.register_fn("to_string", |h: &mut ProbeHandle| h.to_string());
    engine.register_fn("to_debug", |h: &mut ProbeHandle| h.to_string());
    engine.register_get("name", |h: &mut ProbeHandle| h.probe.name.to_string());
    engine.register_get("fields", |h: &mut ProbeHandle| -> Array {
        h.probe
            .fields
            .iter()
            .map(|f| Dynamic::from(f.name.to_string()))
            .collect()
    });

    let s = st.clone();
    engine.register_fn(
        "probe",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<ProbeHandle> {
            let name = want_string(&name, "the probe name").map_err(|m| fail(&ctx, m))?;
            let probe = find_probe(&name).map_err(|m| fail(&ctx, m))?;
            check_function(probe, &s.borrow().symbols).map_err(|m| fail(&ctx, m))?;
            Ok(ProbeHandle {
                probe,
                filters: Vec::new(),
                origin: s.borrow().origin(&ctx),
            })
        },
    );

    let s = st.clone();
    engine.register_fn(
        "filter",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, field: Dynamic, value: Dynamic| -> Res<ProbeHandle> {
            let name = want_string(&field, "the filtered field").map_err(|m| fail(&ctx, m))?;
            let f = find_field(h.probe, &name).map_err(|m| fail(&ctx, m))?;
            if !f.filter {
                return Err(fail(&ctx, format!("field `{name}` of `{}` cannot be filtered", h.probe.name)));
            }
            if h.filters.iter().any(|x| x.field.name == f.name) {
                return Err(fail(
                    &ctx,
                    format!("`{name}` is already filtered; give every accepted value in one list: .filter(\"{name}\", [a, b])"),
                ));
            }
            let values = convert::filter_values(f, &value).map_err(|m| fail(&ctx, m))?;
            filter::validate(f, &values, &s.borrow().symbols).map_err(|m| fail(&ctx, m))?;
            let mut out = h.clone();
            out.filters.push(Filter { field: f, values });
            Ok(out)
        },
    );

    let s = st.clone();
    let count = move |ctx: NativeCallContext,
                      h: &mut ProbeHandle,
                      name: Dynamic,
                      keys: Option<Dynamic>|
          -> Res<()> {
        let name = agg_name(&name).map_err(|m| fail(&ctx, m))?;
        let keys = match keys {
            Some(k) => key_fields(h.probe, &k).map_err(|m| fail(&ctx, m))?,
            None => Vec::new(),
        };
        consume(&s, &ctx, h, Consumer::Count { name, keys })
    };
    let c = count.clone();
    engine.register_fn(
        "count",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, name: Dynamic| c(ctx, h, name, None),
    );
    engine.register_fn(
        "count",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, name: Dynamic, keys: Dynamic| {
            count(ctx, h, name, Some(keys))
        },
    );

    let s = st.clone();
    let hist = move |ctx: NativeCallContext,
                     h: &mut ProbeHandle,
                     name: Dynamic,
                     field: Dynamic,
                     step: Option<Dynamic>,
                     keys: Option<Dynamic>|
          -> Res<()> {
        let name = agg_name(&name).map_err(|m| fail(&ctx, m))?;
        let field = quantity(h.probe, &field).map_err(|m| fail(&ctx, m))?;
        let kind = match step {
            None => HistKind::Log2,
            Some(step) => match step.flatten_clone().as_int() {
                Ok(n) if n > 0 => HistKind::Linear { step: n as u64 },
                _ => {
                    return Err(fail(
                        &ctx,
                        format!(
                            "lhist: the step must be a positive integer, got {}",
                            describe(&step)
                        ),
                    ))
                }
            },
        };
        let keys = match keys {
            Some(k) => key_fields(h.probe, &k).map_err(|m| fail(&ctx, m))?,
            None => Vec::new(),
        };
        consume(
            &s,
            &ctx,
            h,
            Consumer::Hist {
                name,
                field,
                keys,
                kind,
            },
        )
    };
    let f = hist.clone();
    engine.register_fn(
        "hist",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, name: Dynamic, field: Dynamic| {
            f(ctx, h, name, field, None, None)
        },
    );
    let f = hist.clone();
    engine.register_fn(
        "hist",
        move |ctx: NativeCallContext,
              h: &mut ProbeHandle,
              name: Dynamic,
              field: Dynamic,
              keys: Dynamic| { f(ctx, h, name, field, None, Some(keys)) },
    );
    let f = hist.clone();
    engine.register_fn(
        "lhist",
        move |ctx: NativeCallContext,
              h: &mut ProbeHandle,
              name: Dynamic,
              field: Dynamic,
              step: Dynamic| { f(ctx, h, name, field, Some(step), None) },
    );
    engine.register_fn(
        "lhist",
        move |ctx: NativeCallContext,
              h: &mut ProbeHandle,
              name: Dynamic,
              field: Dynamic,
              step: Dynamic,
              keys: Dynamic| { hist(ctx, h, name, field, Some(step), Some(keys)) },
    );

    let s = st.clone();
    engine.register_fn(
        "on_event",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, f: Dynamic| -> Res<()> {
            let callback = callback(&s, &ctx, &f, "on_event", 1)?;
            consume(&s, &ctx, h, Consumer::Events { callback })
        },
    );

    let s = st.clone();
    engine.register_fn(
        "every",
        move |ctx: NativeCallContext, p: Dynamic, f: Dynamic| -> Res<()> {
            let period = period(&ctx, &p)?;
            let callback = callback(&s, &ctx, &f, "every", 0)?;
            s.borrow_mut().timers.push(Timer { period, callback });
            Ok(())
        },
    );

    let s = st.clone();
    engine.register_fn(
        "on_end",
        move |ctx: NativeCallContext, f: Dynamic| -> Res<()> {
            let callback = callback(&s, &ctx, &f, "on_end", 0)?;
            s.borrow_mut().on_end.push(callback);
            Ok(())
        },
    );

    let s = st.clone();
    engine.on_print(move |text| push(&s, Action::Print(text.to_string())));
    let s = st.clone();
    engine.on_debug(move |text, source, pos| {
        let at = match (source, pos.line(), pos.position()) {
            (src, Some(l), Some(c)) => format!("{}:{l}:{c}: ", src.unwrap_or("<script>")),
            _ => String::new(),
        };
        push(&s, Action::Print(format!("{at}{text}")))
    });

    let s = st.clone();
    engine.register_fn(
        "print_delta",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<()> {
            let name = agg_name(&name).map_err(|m| fail(&ctx, m))?;
            push(&s, Action::PrintDelta(name));
            Ok(())
        },
    );
    let s = st.clone();
    let clear = move |ctx: NativeCallContext, name: Dynamic| -> Res<()> {
        let name = agg_name(&name).map_err(|m| fail(&ctx, m))?;
        push(&s, Action::Clear(name));
        Ok(())
    };
    let c = clear.clone();
    engine.register_fn("clear", move |ctx: NativeCallContext, name: Dynamic| {
        c(ctx, name)
    });
    // Rhai's own `clear(string)` (empty a string in place) would win over a
    // `Dynamic` parameter: vprobe's `clear` takes strings explicitly.
    engine.register_fn(
        "clear",
        move |ctx: NativeCallContext, name: &mut ImmutableString| {
            clear(ctx, Dynamic::from(name.clone()))
        },
    );

    let s = st.clone();
    engine.register_fn("exit", move |ctx: NativeCallContext| -> Res<()> {
        push(&s, Action::Exit(0));
        Err(exit_now(&ctx))
    });
    let s = st.clone();
    engine.register_fn(
        "exit",
        move |ctx: NativeCallContext, code: Dynamic| -> Res<()> {
            let code = code
                .flatten_clone()
                .as_int()
                .ok()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    fail(
                        &ctx,
                        format!("exit: the code must be an integer, got {}", describe(&code)),
                    )
                })?;
            push(&s, Action::Exit(code));
            Err(exit_now(&ctx))
        },
    );

    let s = st.clone();
    engine.register_fn(
        "report",
        move |ctx: NativeCallContext, key: Dynamic, value: Dynamic| -> Res<()> {
            let key = want_string(&key, "the report key").map_err(|m| fail(&ctx, m))?;
            let value = convert::to_json(&value).map_err(|m| fail(&ctx, m))?;
            push(&s, Action::Report(key, value));
            Ok(())
        },
    );

    let s = st.clone();
    engine.register_fn(
        "emit",
        move |ctx: NativeCallContext, event: Dynamic| -> Res<()> {
            let event = event.flatten_clone();
            if !event.is_map() {
                return Err(fail(
                    &ctx,
                    format!("emit: expects an event map, got {}", describe(&event)),
                ));
            }
            let (probe, fields) =
                convert::emit_fields(&event.cast::<Map>()).map_err(|m| fail(&ctx, m))?;
            push(&s, Action::Emit { probe, fields });
            Ok(())
        },
    );

    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic, default: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").map_err(|m| fail(&ctx, m))?;
            let given = s.borrow().given.get(&name).cloned();
            let v = param_value(&name, given.as_ref(), default).map_err(|m| fail(&ctx, m))?;
            set_param(&s, &name, v.clone());
            Ok(v)
        },
    );
    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").map_err(|m| fail(&ctx, m))?;
            let given = s.borrow().given.get(&name).cloned();
            match given {
                Some(v) => {
                    let v = Dynamic::from(v);
                    set_param(&s, &name, v.clone());
                    Ok(v)
                }
                None => Err(fail(
                    &ctx,
                    format!("parameter `{name}` is required: pass -p {name}=VALUE"),
                )),
            }
        },
    );
}

/// One function of the script API, for help, completion and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiFunction {
    /// Its name.
    pub name: &'static str,
    /// A method of a probe (`probe(..).filter(..)`) rather than a free function.
    pub method: bool,
    /// How it is called.
    pub usage: &'static str,
    /// What it does, in one line.
    pub about: &'static str,
}

const fn free(name: &'static str, usage: &'static str, about: &'static str) -> ApiFunction {
    ApiFunction {
        name,
        method: false,
        usage,
        about,
    }
}

const fn method(name: &'static str, usage: &'static str, about: &'static str) -> ApiFunction {
    ApiFunction {
        name,
        method: true,
        usage,
        about,
    }
}

/// Every function [`register`] adds (keep in step: a test compares them), with
/// Rhai's `print` that vprobe redirects.
pub const API: &[ApiFunction] = &[
    free(
        "probe",
        "probe(\"skb.drop\")",
        "an attach point, to filter and consume",
    ),
    method(
        "filter",
        ".filter(field, value | [values] | lo..hi)",
        "keep only events whose field matches (in the kernel)",
    ),
    method(
        "count",
        ".count(name) or .count(name, [keys])",
        "count events per key into the aggregation `name`",
    ),
    method(
        "hist",
        ".hist(name, field) or .hist(name, field, [keys])",
        "log2 histogram of a numeric field",
    ),
    method(
        "lhist",
        ".lhist(name, field, step) or .lhist(name, field, step, [keys])",
        "linear histogram of a numeric field",
    ),
    method(
        "on_event",
        ".on_event(|e| ...)",
        "call a closure with each event (through a ring buffer)",
    ),
    free(
        "every",
        "every(\"1s\", || ...)",
        "call a closure periodically",
    ),
    free(
        "on_end",
        "on_end(|| ...)",
        "call a closure when the session ends",
    ),
    free(
        "print",
        "print(name or text)",
        "print an aggregation by name, or any text",
    ),
    free(
        "print_delta",
        "print_delta(name)",
        "print what changed in an aggregation since it was last printed",
    ),
    free("clear", "clear(name)", "empty an aggregation"),
    free("exit", "exit() or exit(code)", "end the session"),
    free(
        "report",
        "report(key, value)",
        "add a value to the summary's reports",
    ),
    free(
        "emit",
        "emit(event)",
        "write an event (from on_event) as a line",
    ),
    free(
        "param",
        "param(name, default) or param(name)",
        "a -p key=value parameter",
    ),
    // workloads, triggers and live queries (live_api.rs)
    free(
        "tcp_rr",
        "tcp_rr(#{streams: 16, duration: \"10s\", target: \"HOST:PORT\"})",
        "a TCP request/response workload (netperf TCP_RR), started with the session",
    ),
    free(
        "exec",
        "exec(#{cmd: [\"iperf3\", \"-c\", \"HOST\"], timeout: \"30s\"})",
        "an external command as a workload (needs --allow exec)",
    ),
    free(
        "trigger",
        "trigger(\"drops > 0\").log(text).snapshot(agg).start(w).stop(w).exit(code).call(|| ..).once()",
        "a condition over aggregations or workload results, and what to do when it becomes true",
    ),
    method("log", ".log(text)", "trigger action: print a line"),
    method(
        "snapshot",
        ".snapshot(aggregation)",
        "trigger action: print an aggregation",
    ),
    method("start", ".start(workload)", "trigger action: start a workload"),
    method("stop", ".stop(workload)", "trigger action: stop a workload"),
    method("call", ".call(|| ..)", "trigger action: call a closure"),
    method("once", ".once()", "fire the trigger only the first time"),
    free(
        "total",
        "total(aggregation)",
        "the sum of an aggregation's counts now",
    ),
    free(
        "entries",
        "entries(aggregation)",
        "an aggregation's keys and values now",
    ),
    free(
        "workload",
        "workload(name)",
        "a workload's result (or its progress while it runs)",
    ),
    free(
        "dev_stat",
        "dev_stat(device, \"rx_dropped\")",
        "a network device's statistic (in the lab: found in its namespaces)",
    ),
    free("lab", "lab()", "the lab of the run: guests, devices, namespaces"),
    free(
        "devices",
        "devices(\"macvtap*\")",
        "names of the network devices matching a name or prefix glob (the lab's, in a lab)",
    ),
    free(
        "correlate",
        "correlate(drop_events, workload(name).slow)",
        "match drops with slow transactions by connection and time",
    ),
];

/// How each API function is called, for "function not found" errors.
pub(super) fn usage(name: &str) -> Option<&'static str> {
    API.iter().find(|f| f.name == name).map(|f| f.usage)
}
