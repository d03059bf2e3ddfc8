//! What a script asks of the running session: `print`, `print_delta`,
//! `clear`, `exit`, `verdict`, `report`, `emit`. Each records an [`Action`]
//! that the runner carries out after the call.

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext};

use super::convert::{self, agg_name, describe, want_string};
use super::errors::{fail, OrFail, Res};
use super::state::{Action, State};

fn push(st: &Rc<RefCell<State>>, a: Action) {
    st.borrow_mut().actions.push(a);
}

/// The statuses a script may end with: 0, 1 (its check failed) and 10–125
/// (its own meanings). 2–9 are vprobe's own (usage, script error, missing
/// privilege or kernel feature, failed run), 126 and up the shell's.
pub(super) const SCRIPT_EXIT_CODES: &str = "0, 1 or 10-125";

/// `code` if a script may end with it, else why not.
pub(super) fn exit_code(code: i64) -> Result<i32, String> {
    match code {
        0 | 1 | 10..=125 => Ok(code as i32),
        2..=9 => Err(format!(
            "exit: {code} is one of vprobe's own exit statuses (2-9: usage, script error, missing privilege or kernel feature, failed run); a script exits with {SCRIPT_EXIT_CODES}"
        )),
        _ => Err(format!(
            "exit: {code} is not an exit status a script can use: {SCRIPT_EXIT_CODES}"
        )),
    }
}

fn exit_now(ctx: &NativeCallContext) -> Box<EvalAltResult> {
    // stop the running evaluation like Rhai's own `exit`; the caller maps it to Ok
    Box::new(EvalAltResult::Exit(Dynamic::UNIT, ctx.call_position()))
}

/// Registers the session's actions on `engine`, and redirects Rhai's `print`
/// and `debug` to them.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    // Rhai's `print` hands over its argument as text (an aggregation handle
    // as its name); whether that names an aggregation is decided here, once
    let s = st.clone();
    engine.on_print(move |text| {
        let action = s.borrow().print(text);
        push(&s, action)
    });
    let s = st.clone();
    engine.on_debug(move |text, source, pos| {
        let at = match (source, pos.line(), pos.position()) {
            (src, Some(l), Some(c)) => format!("{}:{l}:{c}: ", src.unwrap_or("<script>")),
            _ => String::new(),
        };
        push(&s, Action::PrintText(format!("{at}{text}")))
    });

    let s = st.clone();
    engine.register_fn(
        "print_delta",
        move |ctx: NativeCallContext, name: Dynamic| -> Res<()> {
            let name = agg_name(&name).or_fail(&ctx)?;
            push(&s, Action::PrintDelta(name));
            Ok(())
        },
    );
    let s = st.clone();
    let clear = move |ctx: NativeCallContext, name: Dynamic| -> Res<()> {
        let name = agg_name(&name).or_fail(&ctx)?;
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
            let code = code.flatten_clone().as_int().map_err(|_| {
                fail(
                    &ctx,
                    format!("exit: the code must be an integer, got {}", describe(&code)),
                )
            })?;
            let code = exit_code(code).map_err(|m| fail(&ctx, m))?;
            push(&s, Action::Exit(code));
            Err(exit_now(&ctx))
        },
    );

    let s = st.clone();
    engine.register_fn(
        "verdict",
        move |ctx: NativeCallContext, ok: Dynamic| -> Res<()> {
            let ok = ok.flatten_clone().as_bool().map_err(|_| {
                fail(
                    &ctx,
                    format!("verdict: expects true or false, got {}", describe(&ok)),
                )
            })?;
            push(&s, Action::Verdict(ok));
            Ok(())
        },
    );

    let s = st.clone();
    engine.register_fn(
        "report",
        move |ctx: NativeCallContext, key: Dynamic, value: Dynamic| -> Res<()> {
            let key = want_string(&key, "the report key").or_fail(&ctx)?;
            let value = convert::to_json(&value).or_fail(&ctx)?;
            push(&s, Action::Report(key, value));
            Ok(())
        },
    );

    let s = st.clone();
    engine.register_fn(
        "emit",
        move |ctx: NativeCallContext, event: Dynamic| -> Res<()> {
            let Some(map) = convert::as_map(&event) else {
                return Err(fail(
                    &ctx,
                    format!("emit: expects an event or a map, got {}", describe(&event)),
                ));
            };
            let emitted = convert::emit_fields(&map).or_fail(&ctx)?;
            push(&s, Action::Emit(emitted));
            Ok(())
        },
    );
}
