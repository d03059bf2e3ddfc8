//! Script parameters: `-p key=value` on the command line over the
//! `//! param:` defaults, read with `param(name, default)`, `param(name)` and
//! `params.key`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Dynamic, Engine, Map, NativeCallContext, INT};

use super::convert::want_string;
use super::errors::{fail, OrFail, Res};
use super::meta::Meta;
use super::state::State;

/// A `-p` value that does not read as its default's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}` expects {expected}, got `{given}`")]
struct ParamError {
    name: String,
    expected: &'static str,
    given: String,
}

/// The `params` map a script starts with: the command line's values over
/// the `//! param:` defaults, shared so that `param(name, default)` can add
/// its default later.
pub(super) fn initial(meta: &Meta, given: &BTreeMap<String, String>) -> Dynamic {
    let mut params = Map::new();
    for (k, d) in &meta.params {
        if let Some(d) = d {
            params.insert(k.into(), default_value(d));
        }
    }
    for (k, v) in given {
        let typed = match params.get(k.as_str()) {
            Some(d) if d.is_int() => v
                .trim()
                .parse()
                .map(Dynamic::from_int)
                .unwrap_or_else(|_| v.into()),
            _ => Dynamic::from(v.clone()),
        };
        params.insert(k.into(), typed);
    }
    Dynamic::from_map(params).into_shared()
}

/// Parses a `-p` value like the default: an integer default wants an integer.
fn param_value(
    name: &str,
    given: Option<&String>,
    default: Dynamic,
) -> Result<Dynamic, ParamError> {
    let Some(given) = given else {
        return Ok(default);
    };
    let bad = |expected: &'static str| ParamError {
        name: name.to_string(),
        expected,
        given: given.clone(),
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
fn default_value(s: &str) -> Dynamic {
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

/// Registers `param` on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic, default: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").or_fail(&ctx)?;
            let given = s.borrow().given.get(&name).cloned();
            let v = param_value(&name, given.as_ref(), default).or_fail(&ctx)?;
            set_param(&s, &name, v.clone());
            Ok(v)
        },
    );
    let s = st.clone();
    engine.register_fn(
        "param",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<Dynamic> {
            let name = want_string(&name, "the parameter name").or_fail(&ctx)?;
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
