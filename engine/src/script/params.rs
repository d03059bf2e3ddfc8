//! Script parameters: `-p key=value` on the command line over the
//! `//! param:` defaults, read with `param(name)`, `param(name, default)` and
//! `params.key`.
//!
//! A script with a header ([`Meta::is_contract`]) declares its parameters:
//! `-p` values are checked against the declarations (name, type, choices)
//! when the script compiles, before anything attaches, and reading an
//! undeclared parameter is an error. A script without one (`-e`, a quick
//! file) takes any `-p`, typed like the default its `param(..)` gives.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, INT};
use vprobe_probes::suggest;

use super::convert::want_string;
use super::errors::{fail, OrFail, Res, ScriptError};
use super::state::State;
use crate::meta::{is_duration, list_items, Meta, Param, ParamKind};
use crate::plan::Origin;

/// A `-p` value the script's header refuses, or a parameter the script
/// reads without declaring it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// `-p stream=4` for a script whose parameter is `streams`.
    #[error("-p {name}={value}: {}", match (suggestion, known.as_slice()) {
        (Some(s), _) => format!("no parameter `{name}`; did you mean `{s}`?"),
        (None, []) => format!("no parameter `{name}`: the script takes none"),
        (None, k) => format!("no parameter `{name}` (the parameters are {})", k.join(", ")),
    })]
    Unknown {
        /// As given.
        name: String,
        /// As given.
        value: String,
        /// The closest declared name.
        suggestion: Option<String>,
        /// Every declared name.
        known: Vec<String>,
    },
    /// `-p dev=`.
    #[error("-p {name}=: empty value; `{name}` expects {expected}")]
    Empty {
        /// The parameter.
        name: String,
        /// What it takes.
        expected: &'static str,
    },
    /// `-p streams=many`.
    #[error("{}parameter `{name}` expects {expected}, got `{value}`", from_cli.then(|| format!("-p {name}={value}: ")).unwrap_or_default())]
    Type {
        /// The parameter.
        name: String,
        /// What it takes.
        expected: &'static str,
        /// As given.
        value: String,
        /// Whether the value came from `-p` (rather than a script's default).
        from_cli: bool,
    },
    /// `-p layer=tpa` where the header lists the choices.
    #[error("-p {name}={value}: `{name}` is one of {}{}", choices.join(", "), suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Choice {
        /// The parameter.
        name: String,
        /// As given.
        value: String,
        /// What the header allows.
        choices: Vec<String>,
        /// The closest choice.
        suggestion: Option<String>,
    },
    /// `param("x")` of a parameter with no default and no `-p`.
    #[error("parameter `{0}` is required: pass -p {0}=VALUE")]
    Required(String),
    /// `param("x", ..)` in a script whose header does not declare `x`.
    #[error("parameter `{name}` is not declared in the header{}", match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!(": add `//! param: {name}=DEFAULT  what it is`"),
    })]
    Undeclared {
        /// As read.
        name: String,
        /// The closest declared name.
        suggestion: Option<String>,
    },
}

/// A parameter error at the header line it concerns, as a script error.
pub(super) fn located(source: &str, (e, line): (ParamError, usize)) -> ScriptError {
    ScriptError {
        origin: Origin {
            source: source.to_string(),
            line,
            col: 1,
        },
        message: e.to_string(),
    }
}

/// The `params` map a script starts with: the command line's values over
/// the header's defaults, shared so that `param(name, default)` can add
/// its default later. With a header, every `-p` is checked here; the error
/// comes with the header line it concerns (the declaration, or the first
/// one for an unknown name).
pub(super) fn initial(
    meta: &Meta,
    given: &BTreeMap<String, String>,
) -> Result<Dynamic, (ParamError, usize)> {
    let mut params = Map::new();
    if !meta.is_contract() {
        for (k, v) in given {
            params.insert(k.into(), Dynamic::from(v.clone()));
        }
        return Ok(Dynamic::from_map(params).into_shared());
    }
    let first_line = meta.params.first().map_or(1, |p| p.line);
    for (k, v) in given {
        let Some(p) = meta.param(k) else {
            let known: Vec<String> = meta.params.iter().map(|p| p.name.clone()).collect();
            let suggestion = suggest(k, known.iter().map(String::as_str)).map(String::from);
            let line = suggestion
                .as_deref()
                .and_then(|s| meta.param(s))
                .map_or(first_line, |p| p.line);
            return Err((
                ParamError::Unknown {
                    name: k.clone(),
                    value: v.clone(),
                    suggestion,
                    known,
                },
                line,
            ));
        };
        let value = typed(p, v, true).map_err(|e| (e, p.line))?;
        params.insert(k.into(), value);
    }
    for p in &meta.params {
        if params.contains_key(p.name.as_str()) {
            continue;
        }
        if let Some(d) = &p.default {
            let value = typed(p, d, false).map_err(|e| (e, p.line))?;
            params.insert(p.name.as_str().into(), value);
        }
    }
    Ok(Dynamic::from_map(params).into_shared())
}

/// Adds the parameters a loaded file's header declares (their `-p` value,
/// else their default) to a session's `params`, leaving those it has.
pub(super) fn declare_more(
    params: &Dynamic,
    meta: &Meta,
    given: &BTreeMap<String, String>,
) -> Result<(), (ParamError, usize)> {
    let mut more = Vec::new();
    {
        let Some(have) = params.read_lock::<Map>() else {
            return Ok(());
        };
        for p in &meta.params {
            if have.contains_key(p.name.as_str()) {
                continue;
            }
            let value = match (given.get(&p.name), &p.default) {
                (Some(v), _) => typed(p, v, true),
                (None, Some(d)) => typed(p, d, false),
                (None, None) => continue,
            };
            more.push((p.name.clone(), value.map_err(|e| (e, p.line))?));
        }
    }
    // a clone of a shared value is the same cell
    let mut params = params.clone();
    if let Some(mut m) = params.write_lock::<Map>() {
        for (k, v) in more {
            m.insert(k.into(), v);
        }
    }
    Ok(())
}

/// `text` read as the declared parameter's type and checked against its choices.
fn typed(p: &Param, text: &str, from_cli: bool) -> Result<Dynamic, ParamError> {
    let name = p.name.clone();
    if from_cli && text.trim().is_empty() {
        return Err(ParamError::Empty {
            name,
            expected: p.kind.expected(),
        });
    }
    let bad = || ParamError::Type {
        name: p.name.clone(),
        expected: p.kind.expected(),
        value: text.to_string(),
        from_cli,
    };
    let t = text.trim();
    let value = match p.kind {
        ParamKind::Integer => Dynamic::from_int(t.parse::<INT>().map_err(|_| bad())?),
        ParamKind::Duration if is_duration(t) || t.parse::<f64>().is_ok() => {
            vprobe_time::duration::parse(t).map_err(|_| bad())?;
            Dynamic::from(t.to_string())
        }
        ParamKind::Duration => return Err(bad()),
        ParamKind::Bool => Dynamic::from_bool(parse_bool(t).ok_or_else(bad)?),
        ParamKind::IntegerList => {
            let items = list_items(t);
            if items.iter().any(|i| i.is_empty()) {
                return Err(bad());
            }
            let items: Array = items
                .into_iter()
                .map(|i| i.parse::<INT>().map(Dynamic::from_int))
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            Dynamic::from_array(items)
        }
        ParamKind::StringList => {
            let items = list_items(t);
            if items.iter().any(|i| i.is_empty()) {
                return Err(bad());
            }
            Dynamic::from_array(
                items
                    .into_iter()
                    .map(|i| Dynamic::from(i.to_string()))
                    .collect(),
            )
        }
        ParamKind::String => Dynamic::from(text.to_string()),
    };
    if !p.choices.is_empty() && !p.choices.iter().any(|c| c == t) {
        return Err(ParamError::Choice {
            name,
            value: text.to_string(),
            choices: p.choices.clone(),
            suggestion: suggest(t, p.choices.iter().map(String::as_str)).map(String::from),
        });
    }
    Ok(value)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A `-p` value of a script without a header, read like the default
/// `param(name, default)` gives: an integer default wants an integer.
fn untyped_value(
    name: &str,
    given: Option<&String>,
    default: Dynamic,
) -> Result<Dynamic, ParamError> {
    let Some(given) = given else {
        return Ok(default);
    };
    let bad = |expected: &'static str| ParamError::Type {
        name: name.to_string(),
        expected,
        value: given.clone(),
        from_cli: false,
    };
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
        parse_bool(given.trim())
            .map(Dynamic::from_bool)
            .ok_or_else(|| bad("true or false"))
    } else {
        Ok(Dynamic::from(given.clone()))
    }
}

fn set_param(st: &Rc<RefCell<State>>, name: &str, v: Dynamic) {
    // a clone of a shared value is the same cell
    let mut params = st.borrow().params.clone();
    if let Some(mut m) = params.write_lock::<Map>() {
        m.insert(name.into(), v);
    };
}

fn get_param(st: &Rc<RefCell<State>>, name: &str) -> Option<Dynamic> {
    let params = st.borrow().params.clone();
    let m = params.read_lock::<Map>()?;
    m.get(name).cloned()
}

/// With a header: the declared parameter's value, or why there is none.
fn declared(st: &Rc<RefCell<State>>, name: &str) -> Option<Result<Dynamic, ParamError>> {
    let s = st.borrow();
    let meta = s.contract.as_ref()?;
    if meta.param(name).is_none() {
        return Some(Err(ParamError::Undeclared {
            name: name.to_string(),
            suggestion: suggest(name, meta.params.iter().map(|p| p.name.as_str()))
                .map(String::from),
        }));
    }
    drop(s);
    Some(get_param(st, name).ok_or_else(|| ParamError::Required(name.to_string())))
}

/// Registers `param` on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic, default: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").or_fail(&ctx)?;
            // the header's declaration is the contract; the default here only documents
            if let Some(v) = declared(&s, &name) {
                return v.or_fail(&ctx);
            }
            let given = s.borrow().given.get(&name).cloned();
            let v = untyped_value(&name, given.as_ref(), default).or_fail(&ctx)?;
            set_param(&s, &name, v.clone());
            Ok(v)
        },
    );
    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").or_fail(&ctx)?;
            if let Some(v) = declared(&s, &name) {
                return v.or_fail(&ctx);
            }
            get_param(&s, &name).ok_or_else(|| fail(&ctx, ParamError::Required(name.clone())))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse_meta;

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const HEADER: &str = "//! name: t\n//! param: dev=macvtap*  devices\n//! param: streams=16  streams\n\
                          //! param: every=5s  period\n//! param: verbose=false  more\n\
                          //! param: ports=[80, 443]  ports\n//! param: layer=tap|tun|bridge  layer\n";

    fn err(pairs: &[(&str, &str)]) -> (String, usize) {
        let (e, line) = initial(&parse_meta(HEADER), &given(pairs)).unwrap_err();
        (e.to_string(), line)
    }

    #[test]
    fn values_take_the_declared_types() {
        let p = initial(
            &parse_meta(HEADER),
            &given(&[("streams", "4"), ("ports", "1,2"), ("verbose", "yes")]),
        )
        .unwrap();
        let m = p.read_lock::<Map>().unwrap().clone();
        assert_eq!(m["streams"].as_int().unwrap(), 4);
        assert_eq!(m["every"].clone().into_string().unwrap(), "5s");
        assert!(m["verbose"].as_bool().unwrap());
        let ports = m["ports"].clone().into_array().unwrap();
        assert_eq!(ports[1].as_int().unwrap(), 2);
        assert_eq!(m["layer"].clone().into_string().unwrap(), "tap");
    }

    #[test]
    fn refused_values_are_located_at_their_declaration() {
        assert_eq!(
            err(&[("stream", "4")]),
            (
                "-p stream=4: no parameter `stream`; did you mean `streams`?".into(),
                3
            )
        );
        let (m, line) = err(&[("zzz", "4")]);
        assert!(m.contains("the parameters are dev, streams"), "{m}");
        assert_eq!(line, 2);
        assert_eq!(
            err(&[("dev", "")]),
            ("-p dev=: empty value; `dev` expects a string".into(), 2)
        );
        assert_eq!(
            err(&[("streams", "many")]).0,
            "-p streams=many: parameter `streams` expects an integer, got `many`"
        );
        assert!(err(&[("every", "soon")]).0.contains("a duration"));
        // a bare number of seconds is a duration, as `--duration 5` is
        assert!(initial(&parse_meta(HEADER), &given(&[("every", "5")])).is_ok());
        assert!(err(&[("ports", "80,x")]).0.contains("list of integers"));
        assert!(err(&[("verbose", "maybe")]).0.contains("true or false"));
        assert_eq!(
            err(&[("layer", "tpa")]).0,
            "-p layer=tpa: `layer` is one of tap, tun, bridge; did you mean `tap`?"
        );
        let (e, _) = initial(&parse_meta("//! name: n\n"), &given(&[("x", "1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "-p x=1: no parameter `x`: the script takes none"
        );
    }

    #[test]
    fn without_a_header_anything_goes() {
        let p = initial(&Meta::default(), &given(&[("x", "1")])).unwrap();
        assert_eq!(
            p.read_lock::<Map>().unwrap()["x"]
                .clone()
                .into_string()
                .unwrap(),
            "1"
        );
    }
}
