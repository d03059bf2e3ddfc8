//! `probe(..)` and its builder methods: `.filter(..)`, and the consumers
//! `.count(..)`, `.hist(..)`, `.lhist(..)` (which return the aggregation they
//! feed) and `.on_event(..)`.
//!
//! Every call records into the shared [`State`]; nothing here touches the
//! kernel. Misuse is an error at the call's position, saying what was expected.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, NativeCallContext};
use vprobe_probes::{suggest, Capture, FieldDef, FieldKind, ProbeDef, CATALOG, GENERIC};

use super::callbacks::callback;
use super::convert::{self, agg_name, describe, want_string, ConvertError};
use super::errors::{fail, OrFail, Res};
use super::state::{Agg, Shape, State};
use crate::filter;
use crate::generic::{self, GenericError};
use crate::output::pcap;
use crate::plan::{
    AggName, CaptureTarget, Carried, Consumer, Filter, HistKind, Origin, ProbeRequest, RateLimit,
    DEFAULT_SNAPLEN,
};
use crate::symbols::Symbols;

/// Why a probe, a field or aggregation keys are refused.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A generic attach point that cannot be named or narrowed.
    #[error(transparent)]
    Generic(#[from] GenericError),
    /// An argument of the wrong type.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// `kprobez:tcp_sendmsg`.
    #[error("unknown probe kind `{kind}`; {}", match suggestion {
        Some(k) => format!("did you mean `{k}:{rest}`?"),
        None => format!("generic probes are {}", quoted_list(GENERIC.iter().map(|g| g.usage))),
    })]
    UnknownKind {
        /// As written.
        kind: String,
        /// What followed the kind.
        rest: String,
        /// The closest kind.
        suggestion: Option<&'static str>,
    },
    /// `skb.dorp`.
    #[error("unknown probe `{name}`; {}", match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "the probes are {}, and the generic {}",
            quoted_list(CATALOG.iter().map(|p| p.name)),
            quoted_list(GENERIC.iter().map(|g| g.usage))
        ),
    })]
    UnknownProbe {
        /// As written.
        name: String,
        /// The closest name.
        suggestion: Option<&'static str>,
    },
    /// A function probe on a function the kernel does not have.
    #[error("`{probe}`: unknown kernel function `{function}` (not in /proc/kallsyms)")]
    UnknownFunction {
        /// The attach point.
        probe: &'static str,
        /// The function.
        function: &'static str,
    },
    /// A field the probe does not have.
    #[error("probe `{}` has no field `{field}`; {}", probe.name, match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("its fields are {}", quoted_list(probe.fields.iter().map(|f| f.name))),
    })]
    NoField {
        /// The attach point.
        probe: &'static ProbeDef,
        /// As written.
        field: String,
        /// The closest field.
        suggestion: Option<&'static str>,
    },
    /// Keys that are not a list of names.
    #[error("aggregation keys must be a list of field names, got {0}")]
    KeysNotAList(String),
    /// A field that cannot key an aggregation.
    #[error("field `{field}` of `{probe}` cannot be an aggregation key")]
    NotAKey {
        /// The attach point.
        probe: &'static str,
        /// The field.
        field: String,
    },
    /// `["dev", "dev"]`.
    #[error("aggregation key `{0}` is given twice")]
    KeyTwice(String),
    /// A histogram of a field that is not a number.
    #[error("cannot histogram `{field}`: not a number ({})", match numeric.as_slice() {
        [] => format!("`{}` has no numeric field", probe.name),
        nums => format!("numeric fields of `{}`: {}", probe.name, quoted_list(nums.iter().copied())),
    })]
    NotAQuantity {
        /// The attach point.
        probe: &'static ProbeDef,
        /// As written.
        field: String,
        /// The fields that are numbers.
        numeric: Vec<&'static str>,
    },
}

/// A probe being configured: `probe("skb.drop").filter("dev", "mvt0")`.
/// Immutable: each `.filter()` returns a new handle, so a base handle can be
/// reused for several consumers.
#[derive(Clone, Debug)]
pub struct ProbeHandle {
    probe: &'static ProbeDef,
    filters: Vec<Filter>,
    /// `.rate(..)`: for `on_event` and `capture` consumers.
    rate: Option<RateLimit>,
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
        if let Some(r) = self.rate {
            write!(f, ".rate(\"{r}\")")?;
        }
        Ok(())
    }
}

fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The attach point called `name` — a catalog entry, or a generic one
/// (`tracepoint:CAT:NAME`, `kprobe:FUNC`, `fentry:FUNC`, `uprobe:PATH:SYMBOL`) —
/// or an error with the closest name.
pub fn find_probe(name: &str) -> Result<&'static ProbeDef, ProbeError> {
    if let Some(def) = generic::resolve(name)? {
        return Ok(def);
    }
    if let Some(def) = vprobe_probes::find(name) {
        return Ok(def);
    }
    if let Some((kind, rest)) = name.split_once(':') {
        return Err(ProbeError::UnknownKind {
            kind: kind.to_string(),
            rest: rest.to_string(),
            suggestion: suggest(kind, GENERIC.iter().map(|g| g.kind)),
        });
    }
    Err(ProbeError::UnknownProbe {
        name: name.to_string(),
        suggestion: suggest(name, CATALOG.iter().map(|p| p.name)),
    })
}

/// A function probe's function must exist, when /proc/kallsyms can say.
fn check_function(probe: &'static ProbeDef, symbols: &Symbols) -> Result<(), ProbeError> {
    let Some(function) = generic::function_of(probe) else {
        return Ok(());
    };
    if symbols.has_kallsyms() && symbols.symbol_range(function).is_none() {
        return Err(ProbeError::UnknownFunction {
            probe: probe.name,
            function,
        });
    }
    Ok(())
}

/// The field `name` of `probe`, or an error with the closest name.
pub fn find_field(probe: &'static ProbeDef, name: &str) -> Result<&'static FieldDef, ProbeError> {
    probe.field(name).ok_or_else(|| ProbeError::NoField {
        probe,
        field: name.to_string(),
        suggestion: suggest(name, probe.fields.iter().map(|f| f.name)),
    })
}

fn key_fields(
    probe: &'static ProbeDef,
    keys: &Dynamic,
) -> Result<Vec<&'static FieldDef>, ProbeError> {
    let keys = keys.flatten_clone();
    let items: Array = if keys.is_array() {
        keys.cast::<Array>()
    } else if keys.is_string() {
        // `.count("drops", "dev")`: one key
        vec![keys]
    } else {
        return Err(ProbeError::KeysNotAList(describe(&keys)));
    };
    let mut out: Vec<&'static FieldDef> = Vec::new();
    for k in &items {
        let name = want_string(k, "an aggregation key")?;
        let f = find_field(probe, &name)?;
        if !f.key {
            return Err(ProbeError::NotAKey {
                probe: probe.name,
                field: name,
            });
        }
        if out.iter().any(|o| o.name == f.name) {
            return Err(ProbeError::KeyTwice(name));
        }
        out.push(f);
    }
    Ok(out)
}

fn quantity(probe: &'static ProbeDef, field: &Dynamic) -> Result<&'static FieldDef, ProbeError> {
    let name = want_string(field, "the histogram field")?;
    let f = find_field(probe, &name)?;
    if !f.kind.is_quantity() {
        return Err(ProbeError::NotAQuantity {
            probe,
            field: name,
            numeric: probe
                .fields
                .iter()
                .filter(|f| f.kind.is_quantity())
                .map(|f| f.name)
                .collect(),
        });
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
    if h.rate.is_some() && !consumer.emits() {
        return Err(fail(
            ctx,
            format!(
                "`.rate(..)` limits the events of `on_event` and `capture`; counts and histograms see every event: take the `.rate(..)` off `{}` here",
                h.probe.name
            ),
        ));
    }
    let req = ProbeRequest {
        probe: h.probe,
        filters: h.filters.clone(),
        consumer,
        rate: h.rate,
        origin: h.origin.clone(),
    };
    // A generic tracepoint request must fit one record: say so at this line,
    // also in `vprobe check`, rather than when the session loads it.
    generic::narrow(req.clone()).or_fail(ctx)?;
    let consumer = &req.consumer;
    let mut s = st.borrow_mut();
    let (name, shape) = match consumer {
        Consumer::Count { name, keys } => (
            name,
            Shape::Count {
                keys: shape_keys(keys),
            },
        ),
        Consumer::Hist {
            name,
            field,
            keys,
            kind,
        } => (
            name,
            Shape::Hist {
                field: field.name,
                kind: *kind,
                keys: shape_keys(keys),
            },
        ),
        Consumer::Events { .. } | Consumer::Capture(_) => {
            s.requests.push(req);
            return Ok(());
        }
    };
    match s.aggs.iter().find(|a| a.name == *name) {
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
            s.aggs.push(Agg {
                name: name.clone(),
                shape,
                origin,
            });
        }
    }
    s.requests.push(req);
    Ok(())
}

/// Registers `probe(..)`, its builder methods and the aggregation handle on `engine`.
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
    // what `.count(..)` and the histograms return: printed, it is its name,
    // which `print` then finds among the declared aggregations
    engine.register_type_with_name::<AggName>("Aggregation");
    engine.register_fn("to_string", |a: &mut AggName| a.to_string());
    engine.register_fn("to_debug", |a: &mut AggName| format!("{:?}", a.as_str()));

    let s = st.clone();
    engine.register_fn(
        "probe",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<ProbeHandle> {
            let name = want_string(&name, "the probe name").or_fail(&ctx)?;
            let probe = find_probe(&name).or_fail(&ctx)?;
            check_function(probe, &s.borrow().symbols).or_fail(&ctx)?;
            Ok(ProbeHandle {
                probe,
                filters: Vec::new(),
                rate: None,
                origin: s.borrow().origin(&ctx),
            })
        },
    );

    let s = st.clone();
    engine.register_fn(
        "filter",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, field: Dynamic, value: Dynamic| -> Res<ProbeHandle> {
            let name = want_string(&field, "the filtered field").or_fail(&ctx)?;
            let f = find_field(h.probe, &name).or_fail(&ctx)?;
            if !f.filter {
                return Err(fail(&ctx, format!("field `{name}` of `{}` cannot be filtered", h.probe.name)));
            }
            if h.filters.iter().any(|x| x.field.name == f.name) {
                return Err(fail(
                    &ctx,
                    format!("`{name}` is already filtered; give every accepted value in one list: .filter(\"{name}\", [a, b])"),
                ));
            }
            let values = convert::filter_values(f, &value).or_fail(&ctx)?;
            filter::validate(f, &values, &s.borrow().symbols).or_fail(&ctx)?;
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
          -> Res<AggName> {
        let name = agg_name(&name).or_fail(&ctx)?;
        let keys = match keys {
            Some(k) => key_fields(h.probe, &k).or_fail(&ctx)?,
            None => Vec::new(),
        };
        consume(
            &s,
            &ctx,
            h,
            Consumer::Count {
                name: name.clone(),
                keys,
            },
        )?;
        Ok(name)
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
          -> Res<AggName> {
        let name = agg_name(&name).or_fail(&ctx)?;
        let field = quantity(h.probe, &field).or_fail(&ctx)?;
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
            Some(k) => key_fields(h.probe, &k).or_fail(&ctx)?,
            None => Vec::new(),
        };
        consume(
            &s,
            &ctx,
            h,
            Consumer::Hist {
                name: name.clone(),
                field,
                keys,
                kind,
            },
        )?;
        Ok(name)
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

    engine.register_fn(
        "rate",
        |ctx: NativeCallContext, h: &mut ProbeHandle, limit: Dynamic| -> Res<ProbeHandle> {
            let rate = rate_limit(&limit).map_err(|e| fail(&ctx, e))?;
            let mut out = h.clone();
            out.rate = Some(rate);
            Ok(out)
        },
    );

    let s = st.clone();
    let capture = move |ctx: NativeCallContext,
                        h: &mut ProbeHandle,
                        path: Dynamic,
                        opts: Option<Dynamic>|
          -> Res<()> {
        let path = want_string(&path, "the capture file").or_fail(&ctx)?;
        if h.probe.capture == Capture::None {
            return Err(fail(
                &ctx,
                format!(
                    "`{}` cannot capture: its program has no packet it may read (captures work on {})",
                    h.probe.name,
                    quoted_list(
                        CATALOG
                            .iter()
                            .filter(|p| p.capture != Capture::None)
                            .map(|p| p.name)
                    )
                ),
            ));
        }
        let snaplen = capture_snaplen(opts.as_ref()).map_err(|e| fail(&ctx, e))?;
        let path = pcap::check_path(&path).map_err(|e| fail(&ctx, e.to_string()))?;
        consume(
            &s,
            &ctx,
            h,
            Consumer::Capture(CaptureTarget { path, snaplen }),
        )
    };
    let c = capture.clone();
    engine.register_fn(
        "capture",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, path: Dynamic| c(ctx, h, path, None),
    );
    engine.register_fn(
        "capture",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, path: Dynamic, opts: Dynamic| {
            capture(ctx, h, path, Some(opts))
        },
    );

    let s = st.clone();
    engine.register_fn(
        "on_event",
        move |ctx: NativeCallContext, h: &mut ProbeHandle, f: Dynamic| -> Res<()> {
            let callback = callback(&s, &ctx, &f, "on_event", 1)?;
            // the fields carried are narrowed once the line has run (Script::run)
            let fields = Carried::All;
            consume(&s, &ctx, h, Consumer::Events { callback, fields })
        },
    );
}

/// `.rate(100)` (per second), `.rate("100/s")`, `.rate("10/100ms")`.
fn rate_limit(v: &Dynamic) -> Result<RateLimit, String> {
    let v = v.flatten_clone();
    let bad = || {
        format!(
            "rate: expected a positive count per second (`100`) or COUNT/PERIOD (`\"100/s\"`, `\"10/100ms\"`), got {}",
            describe(&v)
        )
    };
    let (max, period) = if let Ok(n) = v.as_int() {
        (n, std::time::Duration::from_secs(1))
    } else if v.is_string() {
        let text = v.to_string();
        let (n, p) = text.split_once('/').ok_or_else(bad)?;
        let n: i64 = n.trim().parse().map_err(|_| bad())?;
        let p = p.trim();
        // `100/s`: one of the unit
        let p = if p.starts_with(|c: char| c.is_ascii_digit()) {
            p.to_string()
        } else {
            format!("1{p}")
        };
        let period = vprobe_time::duration::parse(&p).map_err(|e| format!("rate: {e}"))?;
        (n, period)
    } else {
        return Err(bad());
    };
    let max = u32::try_from(max).ok().filter(|&m| m > 0).ok_or_else(bad)?;
    if period.is_zero() {
        return Err(bad());
    }
    Ok(RateLimit { max, period })
}

/// `#{snaplen: 128}`: bytes kept of each packet (1..=2048).
fn capture_snaplen(opts: Option<&Dynamic>) -> Result<u32, String> {
    let Some(opts) = opts else {
        return Ok(DEFAULT_SNAPLEN);
    };
    let opts = opts.flatten_clone();
    let Some(map) = opts.clone().try_cast::<rhai::Map>() else {
        return Err(format!(
            "capture: options must be a map (`#{{snaplen: 128}}`), got {}",
            describe(&opts)
        ));
    };
    let mut snaplen = DEFAULT_SNAPLEN;
    for (k, v) in &map {
        match k.as_str() {
            "snaplen" => {
                snaplen = v
                    .as_int()
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=vprobe_probes::abi::SNAP_MAX).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "capture: snaplen must be 1..={}, got {}",
                            vprobe_probes::abi::SNAP_MAX,
                            describe(v)
                        )
                    })?
            }
            other => {
                return Err(format!(
                    "capture: unknown option `{other}` (options: snaplen)"
                ))
            }
        }
    }
    Ok(snaplen)
}
