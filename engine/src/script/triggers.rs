//! Triggers: `trigger("drops > 0")` and the actions it takes when its
//! condition becomes true (`.log(..)`, `.snapshot(..)`, `.start(..)`,
//! `.stop(..)`, `.exit(..)`, `.call(..)`, `.once()`). The run loop checks them
//! (see [`crate::trigger`]).

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext, INT};

use super::callbacks::callback;
use super::convert::want_string;
use super::errors::{fail, OrFail, Res};
use super::state::State;
use crate::plan::AggName;
use crate::trigger::{Condition, Trigger, TriggerAction};

/// A trigger being configured; every method adds an action and returns the handle.
#[derive(Clone, Debug)]
pub struct TriggerHandle {
    index: usize,
}

fn add_action(st: &Rc<RefCell<State>>, h: &TriggerHandle, a: TriggerAction) -> TriggerHandle {
    st.borrow_mut().triggers[h.index].actions.push(a);
    h.clone()
}

/// Registers `trigger` and its methods on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    engine.register_type_with_name::<TriggerHandle>("Trigger");
    let s = st.clone();
    engine.register_fn(
        "trigger",
        move |ctx: NativeCallContext, cond: Dynamic| -> Res<TriggerHandle> {
            let text = want_string(&cond, "the trigger condition").or_fail(&ctx)?;
            let c = Condition::parse(&text).or_fail(&ctx)?;
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
            add_action(&s, h, TriggerAction::Snapshot(agg.into()))
        },
    );
    let s = st.clone();
    engine.register_fn(
        "snapshot",
        move |h: &mut TriggerHandle, agg: AggName| -> TriggerHandle {
            add_action(&s, h, TriggerAction::Snapshot(agg))
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
            let code = super::actions::exit_code(code).map_err(|m| fail(&ctx, m))?;
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
}
