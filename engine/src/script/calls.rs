//! Calling a script's callbacks: once per event on a busy host, so a call
//! must cost as little as Rhai allows.
//!
//! Rhai's public way to call a function pointer (`FnPtr::call_raw`) clones
//! the whole runtime state and starts an empty resolution cache on every call:
//! about half of what delivering an event to `|e| { n += 1; }` cost, and
//! every field read (`e.len`) was looked up again on the next event. A
//! callback defined by the script itself (a `fn` or a closure: its function is
//! in the script's library) is called here through an evaluation context
//! instead: on the script's own runtime state, with a resolution cache, a
//! callee scope and an argument list kept from call to call. Anything else (a
//! native function named by `Fn("..")`) takes Rhai's general road.

use std::mem;

use rhai::{
    Caches, Dynamic, Engine, EvalAltResult, EvalContext, FnArgsVec, FnPtr, GlobalRuntimeState,
    NativeCallContext, Position, Scope,
};

/// What calls keep between them.
#[derive(Default)]
pub(super) struct Calls {
    /// Function resolutions made inside callbacks (`e.len`'s getter, `+=`):
    /// valid while the script's functions and imports stay as they are.
    caches: Caches,
    /// Where the callee's parameters and locals live during a call; empty
    /// between calls (Rhai rewinds it), its capacity kept.
    scope: Scope<'static>,
    /// Captured variables, then the runner's arguments.
    args: Vec<Dynamic>,
}

/// A callback, as a call needs it.
pub(super) struct Callee<'a> {
    pub fn_ptr: &'a FnPtr,
    /// Its function is one of the script's own (the fast road applies).
    pub scripted: bool,
    /// For errors that lose their own position.
    pub pos: Position,
}

impl Calls {
    /// Forgets the resolutions: the script's functions or imports changed.
    pub fn forget(&mut self) {
        self.caches = Caches::new();
    }

    /// Calls `callee` with `args` (taken: they are `()` afterwards) on the
    /// script's runtime state.
    pub fn call(
        &mut self,
        engine: &Engine,
        global: &mut GlobalRuntimeState,
        callee: Callee,
        args: &mut [Dynamic],
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        if !callee.scripted {
            let ctx = NativeCallContext::new_with_all_fields(
                engine,
                callee.fn_ptr.fn_name(),
                None,
                global,
                callee.pos,
            );
            return callee.fn_ptr.call_raw(&ctx, None, args);
        }
        self.args.clear();
        self.args.extend(callee.fn_ptr.curry().iter().cloned());
        self.args.extend(args.iter_mut().map(mem::take));
        let result =
            {
                let mut refs: FnArgsVec<&mut Dynamic> = self.args.iter_mut().collect();
                EvalContext::new(engine, global, &mut self.caches, &mut self.scope, None)
                    .call_fn_raw(callee.fn_ptr.fn_name(), false, false, &mut refs)
            };
        // captured values are shared: drop this call's handles to them now
        self.args.clear();
        result
    }
}
