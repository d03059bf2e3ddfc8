//! The Rhai scripting API (DESIGN.md §6).
//!
//! A script runs once, top to bottom, to build its [`Plan`]: the probe requests
//! (`probe("skb.drop").filter(..).count(..)`), timers (`every`) and end
//! callbacks (`on_end`). Callbacks run later, when the runner calls
//! [`Script::call`] / [`Script::call_event`]; whatever they ask of the session
//! (print an aggregation, exit, report) comes back as [`Action`]s, so the
//! script never holds a reference to the session.
//!
//! HELPER CONTRACT (written before the implementation; keep the signatures):
//! - `Script::compile(name, text, symbols, options)` parses; syntax errors are
//!   located `ScriptError`s.
//! - `Script::plan()` evaluates the top level with the sandbox limits; every
//!   API misuse (unknown probe with "did you mean", unknown field, field not
//!   filterable / not a key, wrong value type — validated with
//!   `crate::filter::validate`) is a located `ScriptError`.
//! - `print(x)`: a string pushes `Action::Print(s)` (the runner prints the
//!   aggregation of that name if one exists, else the text); any other value is
//!   printed as text. `print_delta(name)`, `clear(name)`, `exit()` / `exit(code)`,
//!   `report(key, value)`, `emit(event)`.
#![allow(missing_docs)]

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
