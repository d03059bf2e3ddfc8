//! Errors across the Rhai boundary: a typed error becomes Rhai's at the call
//! that failed ([`OrFail`], [`fail`]), and Rhai's become [`ScriptError`]s with
//! a file:line:col and a lowercase message.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, NativeCallContext, ParseError, Position};

use super::functions;
use super::sandbox::MAX_OPERATIONS;
use crate::message::with_causes;
use crate::plan::Origin;

/// A script error with its location.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ScriptError {
    /// Where.
    pub origin: Origin,
    /// What.
    pub message: String,
}

impl ScriptError {
    /// The name the message suggests: house style writes every suggestion
    /// as "did you mean `NAME`?", so this is that `NAME`.
    pub fn suggestion(&self) -> Option<&str> {
        crate::message::suggestion(&self.message)
    }
}

/// What a function registered with Rhai returns.
pub(super) type Res<T> = Result<T, Box<EvalAltResult>>;

/// A runtime error at the call's position, carrying the message the
/// [`ScriptError`] will show.
pub(super) fn fail(ctx: &NativeCallContext, message: impl fmt::Display) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.to_string()),
        ctx.call_position(),
    ))
}

/// A typed error becomes a runtime error at the call that failed, its causes
/// joined into the message.
pub(super) trait OrFail<T> {
    /// [`fail`] with the error and its causes.
    fn or_fail(self, ctx: &NativeCallContext) -> Res<T>;
}

impl<T, E: std::error::Error> OrFail<T> for Result<T, E> {
    fn or_fail(self, ctx: &NativeCallContext) -> Res<T> {
        self.map_err(|e| fail(ctx, with_causes(&e)))
    }
}

fn origin(source: &str, pos: Position) -> Origin {
    Origin {
        source: source.to_string(),
        line: pos.line().unwrap_or(0),
        col: pos.position().unwrap_or(0),
    }
}

/// Lowercases the first letter and drops a final period: Rhai's messages are
/// written "Variable not found: x."-style, ours "variable not found: x".
fn house_style(s: &str) -> String {
    let s = s.trim().trim_end_matches('.');
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A syntax error from compiling `source`.
pub fn parse_error(source: &str, e: &ParseError) -> ScriptError {
    ScriptError {
        origin: origin(source, e.position()),
        message: format!("syntax error: {}", house_style(&e.err_type().to_string())),
    }
}

/// A located error for `err`, raised while running code from `source`.
///
/// Errors inside function calls are unwrapped to the innermost one, whose
/// position is in the innermost function's source. An error that lost its
/// position (Rhai resets the position of "too many operations" to each call
/// site on its way out) takes `fallback`: where the callback was registered.
pub fn eval_error(err: EvalAltResult, source: &str, fallback: Position) -> ScriptError {
    let mut src = source.to_string();
    // the last known (source, position) on the way in, for errors without one
    let mut known = (!fallback.is_none()).then(|| (source.to_string(), fallback));
    let mut err = err;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(_, fn_src, inner, pos) => {
                if !pos.is_none() {
                    known = Some((src.clone(), pos));
                }
                if !fn_src.is_empty() {
                    src = fn_src;
                }
                err = *inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if !pos.is_none() {
                    known = Some((src.clone(), pos));
                }
                if !path.is_empty() {
                    src = path;
                }
                err = *inner;
            }
            _ => break,
        }
    }
    let pos = err.position();
    let (src, pos) = if pos.is_none() {
        known.unwrap_or((src, pos))
    } else {
        (src, pos)
    };
    ScriptError {
        origin: origin(&src, pos),
        message: message(err),
    }
}

fn message(mut err: EvalAltResult) -> String {
    match &err {
        EvalAltResult::ErrorRuntime(v, _) if v.is_string() => v.to_string(),
        EvalAltResult::ErrorRuntime(v, _) if v.is_unit() => "runtime error".into(),
        EvalAltResult::ErrorRuntime(v, _) => format!("runtime error: {v}"),
        EvalAltResult::ErrorParsing(p, _) => {
            format!("syntax error: {}", house_style(&p.to_string()))
        }
        // the library's resolver says where it looked; this is Rhai's own
        EvalAltResult::ErrorModuleNotFound(path, _) => format!("module `{path}` not found"),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => function_not_found(sig),
        // the message of a cut (cutoff.rs), as the progress callback gave it
        EvalAltResult::ErrorTerminated(v, _) if v.is_string() => v.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("too many operations (more than {MAX_OPERATIONS}); is there an endless loop?")
        }
        _ => {
            err.clear_position();
            house_style(&err.to_string())
        }
    }
}

/// "function not found" in a script's words: the arguments by the types a
/// script knows (`string`, not `&str | ImmutableString | String`), how the
/// function is called when it exists, the closest one when it does not.
fn function_not_found(sig: &str) -> String {
    let (name, args) = match sig.split_once(" (") {
        Some((n, a)) => (n, a.strip_suffix(')').unwrap_or(a)),
        None => (sig, ""),
    };
    let method = name.starts_with('.');
    let name = name.trim_start_matches('.');
    let mut types: Vec<String> = split_types(args).into_iter().map(script_type).collect();
    let call = if method && !types.is_empty() {
        let on = types.remove(0);
        format!("{on}.{name}({})", types.join(", "))
    } else {
        format!("{name}({})", types.join(", "))
    };
    if let Some(u) = functions::usage(name) {
        return format!("`{call}`: no `{name}` takes these arguments; use {u}");
    }
    match vprobe_probes::suggest(name, functions::API.iter().map(|f| f.name)) {
        Some(close) => format!("no function `{call}`; did you mean `{close}`?"),
        None => format!("no function `{call}`"),
    }
}

/// The argument types of a Rhai signature, split at the top-level commas.
fn split_types(args: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in args.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !args[start..].trim().is_empty() {
        out.push(args[start..].trim());
    }
    out
}

/// A Rhai type name as a script writer knows it.
fn script_type(t: &str) -> String {
    let t = t.trim().trim_start_matches('&').trim_start_matches("mut ");
    if t.contains("ImmutableString") || t == "str" || t == "String" {
        return "string".into();
    }
    let last = t.rsplit("::").next().unwrap_or(t);
    match last {
        "i64" | "i32" | "INT" => "integer",
        "f64" | "f32" | "FLOAT" => "float",
        "bool" => "bool",
        "char" => "char",
        "()" => "()",
        "Array" | "Vec<Dynamic>" => "array",
        "Map" | "BTreeMap<SmartString, Dynamic>" => "map",
        "FnPtr" | "Fn" => "function",
        "Dynamic" => "any",
        "ProbeHandle" => "probe",
        "TriggerHandle" => "trigger",
        other => return other.to_string(),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: `prnt("x")` said `function not found: prnt (&str |
    // ImmutableString | String)`, Rhai's internal types and no suggestion.
    #[test]
    fn function_not_found_speaks_the_script_s_types() {
        assert_eq!(
            function_not_found("prnt (&str | ImmutableString | String)"),
            "no function `prnt(string)`; did you mean `print`?"
        );
        assert_eq!(
            function_not_found("probe (i64, rhai::Map)"),
            "`probe(integer, map)`: no `probe` takes these arguments; use probe(\"skb.drop\")"
        );
        assert_eq!(
            function_not_found(".cont (vprobe_engine::script::probes::ProbeHandle, &str | ImmutableString | String)"),
            "no function `probe.cont(string)`; did you mean `count`?"
        );
        assert_eq!(function_not_found("zzzzzz ()"), "no function `zzzzzz()`");
    }

    #[test]
    fn messages_follow_house_style() {
        assert_eq!(
            house_style("Variable not found: x."),
            "variable not found: x"
        );
        assert_eq!(house_style(""), "");
    }
}
