//! Script functions the runner calls later: `every(period, || ..)`,
//! `on_end(|| ..)`, and how any callback (also `on_event` and a trigger's
//! `.call`) is taken from the script.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, Engine, FnPtr, NativeCallContext};

use super::convert::describe;
use super::errors::{fail, OrFail, Res};
use super::state::{Callback, State, Timer};
use crate::plan::CallbackId;

/// Shortest `every()` period.
pub const MIN_PERIOD: Duration = Duration::from_millis(10);

/// Why an `every()` period is refused.
#[derive(Debug, thiserror::Error)]
enum PeriodError {
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] vprobe_time::DurationError),
    /// Not something a duration is written as.
    #[error("every: the period must be a duration like \"500ms\" or \"1s\", got {0}")]
    NotADuration(String),
    /// Shorter than [`MIN_PERIOD`].
    #[error("every: period {} is shorter than the minimum of 10ms", vprobe_time::duration::format(*.0))]
    TooShort(Duration),
}

/// Takes `f` (a closure, a function pointer, or a function's name) as a
/// callback the runner will call with `arity` arguments.
pub(super) fn callback(
    st: &Rc<RefCell<State>>,
    ctx: &NativeCallContext,
    f: &Dynamic,
    kind: &'static str,
    arity: usize,
) -> Res<CallbackId> {
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
    let source = ctx.call_source().unwrap_or(&s.source).into();
    Ok(s.add_callback(Callback {
        fn_ptr,
        arity,
        source,
        pos: ctx.call_position(),
        kind,
    }))
}

fn period(v: &Dynamic) -> Result<Duration, PeriodError> {
    let v = v.flatten_clone();
    let d = if let Ok(n) = v.as_int() {
        vprobe_time::duration::parse(&n.to_string())?
    } else if let Ok(x) = v.as_float() {
        vprobe_time::duration::parse(&x.to_string())?
    } else if v.is_string() {
        vprobe_time::duration::parse(&v.to_string())?
    } else {
        return Err(PeriodError::NotADuration(describe(&v)));
    };
    if d < MIN_PERIOD {
        return Err(PeriodError::TooShort(d));
    }
    Ok(d)
}

/// Registers `every` and `on_end` on `engine`.
pub(super) fn register(engine: &mut Engine, st: &Rc<RefCell<State>>) {
    let s = st.clone();
    engine.register_fn(
        "every",
        move |ctx: NativeCallContext, p: Dynamic, f: Dynamic| -> Res<()> {
            let period = period(&p).or_fail(&ctx)?;
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
}
