//! The Rhai scripting API (why it is shaped so: docs/DESIGN.md, "Scripts").
//!
//! A script runs once, top to bottom, to build its [`Plan`]: the probe requests
//! (`probe("skb.drop").filter(..).count(..)`), timers (`every`) and end
//! callbacks (`on_end`). Callbacks run later, when the runner calls
//! [`Script::call`] / [`Script::call_event`] with their [`CallbackId`]s;
//! whatever they ask of the session (print an aggregation, exit, report)
//! comes back as [`Action`]s, so the script never holds a reference to the session.
//!
//! HELPER CONTRACT (written before the implementation; keep the signatures):
//! - `Script::compile(name, text, symbols, options)` parses; syntax errors are
//!   located `ScriptError`s.
//! - `Script::plan()` evaluates the top level with the sandbox limits; every
//!   API misuse (unknown probe with "did you mean", unknown field, field not
//!   filterable / not a key, wrong value type — validated with
//!   `crate::filter::validate`) is a located `ScriptError`.
//! - `print(x)`: `Action::PrintAggregation` when `x` names an aggregation the
//!   script declared (a name, or the handle `.count(..)` returned), else
//!   `Action::PrintText` of `x` as text. `print_delta(name)`, `clear(name)`,
//!   `exit()` / `exit(code)`, `report(key, value)`, `emit(event)`.
//!
//! The whole script shares one Rhai scope and one runtime state: top-level
//! variables, `fn` definitions and `import`ed modules stay visible to callbacks
//! (closures capture the variables they use) and to later [`Script::eval_line`]s.
//!
//! One module per part of the API, each registering its functions on the
//! engine and recording into the shared state (`state.rs`): `probes.rs`
//! (`probe(..)` and its builders), `callbacks.rs` (`every`, `on_end`),
//! `actions.rs` (`print`, `clear`, `exit`, ...), `params.rs`, `workloads.rs`,
//! `triggers.rs` and `queries.rs` (answered by the [`Host`]).

mod actions;
mod callbacks;
mod calls;
mod convert;
mod cutoff;
mod errors;
mod event;
mod functions;
mod host;
mod imports;
mod lint;
mod metrics;
mod params;
mod probes;
mod queries;
mod sandbox;
mod source;
mod state;
#[cfg(test)]
mod tests;
mod triggers;
mod workloads;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use rhai::{Caches, Dynamic, Engine, EvalAltResult, GlobalRuntimeState, Scope, AST};
use vprobe_probes::abi::Event as RawEvent;
use vprobe_probes::ProbeDef;

pub use crate::meta::{
    parse_meta, version_at_least, Meta, Param, ParamKind, Problem, Requirement, KEYS,
};
pub use callbacks::MIN_PERIOD;
pub use cutoff::{Cut, StopRequests};
pub use errors::ScriptError;
use event::EventSlot;
pub use event::{Event, NoSuchField};
pub use functions::{ApiFunction, API};
pub use host::{AggTotal, DevStatError, Host};
pub use lint::{Diagnostic, Severity};
pub use params::ParamError;
pub use probes::ProbeHandle;
pub use sandbox::{harden, MAX_OPERATIONS};
pub use source::{check_shape, ShapeError, MAX_LINES, MAX_LINE_CHARS};
pub use state::{Action, Plan, Timer};
pub use triggers::TriggerHandle;
pub use workloads::{load_spec, LoadSpecError};

use crate::library::SearchPath;
use crate::plan::{AggName, CallbackId, Carried, Consumer, Origin};
use crate::symbols::Symbols;
use calls::{Callee, Calls};
use cutoff::Cutoff;
use state::{Marks, State};

/// Source name of code given to [`Script::eval_line`].
pub const REPL_SOURCE: &str = "<repl>";

/// How a script is run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `-p key=value` from the command line, read with `param(key, default)`
    /// and `params.key`.
    pub params: BTreeMap<String, String>,
    /// `--allow exec`: the script may run external commands (`exec(..)`).
    pub allow_exec: bool,
    /// Where `import` finds modules (after the script's own folder); the
    /// default has only the built-in ones.
    pub search: SearchPath,
    /// The script's folder, whose `lib/` `import` looks in first; by default
    /// the folder of a source name that is a path.
    pub folder: Option<PathBuf>,
}

/// A compiled script with its engine, scope and what it asked for so far.
pub struct Script {
    engine: Engine,
    /// The top level, until [`Script::plan`] runs it.
    top: Option<AST>,
    /// Every function defined so far (script `fn`s and closures), for callbacks.
    lib: AST,
    scope: Scope<'static>,
    /// Kept across evaluations so `import`s stay visible to callbacks and later lines.
    global: GlobalRuntimeState,
    state: Rc<RefCell<State>>,
    meta: Meta,
    source: String,
    /// Warnings of the last [`Script::plan`].
    warnings: Vec<Diagnostic>,
    last_value: Option<String>,
    /// How things were before the last [`Script::eval_line`], for [`Script::undo_line`].
    before_line: Option<Checkpoint>,
    /// When running callbacks must stop; consulted as Rhai counts operations.
    cutoff: Rc<Cutoff>,
    /// What callback calls keep between them (`calls.rs`).
    calls: Calls,
    /// The event `on_event` callbacks receive, reused.
    event: EventSlot,
    /// Per callback, once known: whether its function is one of the script's
    /// own (valid while `lib` stays as it is).
    scripted: Vec<Option<bool>>,
}

/// What an evaluation can change, saved to take a REPL line back.
struct Checkpoint {
    marks: Marks,
    scope: Scope<'static>,
    lib: AST,
    imports: usize,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("source", &self.source)
            .field("meta", &self.meta)
            .field("planned", &self.top.is_none())
            .finish_non_exhaustive()
    }
}

/// An `on_event` callback of `probe`, as the checks of its text need it.
fn event_callback<'a>(
    st: &'a State,
    callback: CallbackId,
    probe: &'static ProbeDef,
) -> Option<lint::EventCallback<'a>> {
    let cb = st.callback(callback)?;
    Some(lint::EventCallback {
        function: cb.fn_ptr.fn_name(),
        curried: cb.fn_ptr.curry().len(),
        source: &cb.source,
        probe,
    })
}

/// A value as the REPL echoes it: a probe as the code that makes it. None
/// for `()`, and for the aggregation `.count(..)` returns (kept for `print`,
/// not news when the line that declared it is typed).
fn show(value: &Dynamic) -> Option<String> {
    if value.is_unit() || value.is::<AggName>() {
        return None;
    }
    Some(match value.clone().try_cast::<ProbeHandle>() {
        Some(h) => h.to_string(),
        None => value.to_string(),
    })
}

/// [`check_shape`] as a located error of the script `source_name`.
fn shape(source_name: &str, text: &str) -> Result<(), ScriptError> {
    check_shape(text).map_err(|e| {
        let (line, col) = e.position();
        ScriptError {
            origin: Origin {
                source: source_name.to_string(),
                line,
                col,
            },
            message: e.to_string(),
        }
    })
}

impl Script {
    /// Parses `text` (named `source_name` in errors; a path's folder is searched
    /// first by `import`). Syntax errors are located.
    ///
    /// ```no_run
    /// use std::rc::Rc;
    /// use vprobe_engine::script::{Options, Script};
    /// use vprobe_engine::symbols::Symbols;
    ///
    /// let text = r#"probe("skb.drop").count("drops", ["reason"]);"#;
    /// let mut s = Script::compile("<expr>", text, Rc::new(Symbols::load(false)), Options::default())?;
    /// let plan = s.plan()?;
    /// assert_eq!(plan.requests.len(), 1);
    /// # Ok::<(), vprobe_engine::script::ScriptError>(())
    /// ```
    pub fn compile(
        source_name: &str,
        text: &str,
        symbols: Rc<Symbols>,
        options: Options,
    ) -> Result<Script, ScriptError> {
        shape(source_name, text)?;
        let meta = parse_meta(text);
        // `-p` against the header, before anything else happens
        let params =
            params::initial(&meta, &options.params).map_err(|e| params::located(source_name, e))?;
        let folder = options
            .folder
            .clone()
            .or_else(|| script_folder(source_name).map(Path::to_path_buf));

        let state = Rc::new(RefCell::new(State::new(
            symbols,
            source_name,
            options.params,
            params.clone(),
        )));
        {
            let mut st = state.borrow_mut();
            st.allow_exec = options.allow_exec;
            st.contract = meta.is_contract().then(|| meta.clone());
        }
        let mut engine = Engine::new();
        sandbox::harden(&mut engine);
        let cutoff = Rc::new(Cutoff::default());
        let check = cutoff.clone();
        engine.on_progress(move |ops| {
            if ops % cutoff::CHECK_EVERY != 0 {
                return None;
            }
            check.reached().map(|cut| Dynamic::from(cut.message()))
        });
        engine.set_module_resolver(imports::Imports::new(options.search, folder));
        event::register(&mut engine);
        probes::register(&mut engine, &state);
        callbacks::register(&mut engine, &state);
        actions::register(&mut engine, &state);
        params::register(&mut engine, &state);
        workloads::register(&mut engine, &state);
        triggers::register(&mut engine, &state);
        queries::register(&mut engine, &state);
        metrics::register(&mut engine, &state);

        let mut ast = engine
            .compile(text)
            .map_err(|e| errors::parse_error(source_name, &e))?;
        ast.set_source(source_name);
        let mut scope = Scope::new();
        scope.push_constant_dynamic("params", params);
        let global = engine.new_global_runtime_state();
        Ok(Script {
            engine,
            lib: ast.clone_functions_only(),
            top: Some(ast),
            scope,
            global,
            state,
            meta,
            source: source_name.to_string(),
            warnings: Vec::new(),
            last_value: None,
            before_line: None,
            cutoff,
            calls: Calls::default(),
            event: EventSlot::default(),
            scripted: Vec::new(),
        })
    }

    /// From now on a stop request cuts running callbacks short (those that
    /// came before are being answered by the caller already).
    pub fn set_stop_requests(&mut self, requests: StopRequests) {
        self.cutoff.set_requests(requests);
    }

    /// The stop requests so far are answered (the run is ending because of
    /// them): only a further one cuts callbacks short, e.g. `on_end`.
    pub fn answer_stop_requests(&self) {
        self.cutoff.answer();
    }

    /// Callbacks still running at `at` are cut short (`None`: no deadline).
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.cutoff.set_deadline(at);
    }

    /// Whether callbacks are being cut short now, and why: a caller starts
    /// no further callback then.
    pub fn cut(&self) -> Option<Cut> {
        self.cutoff.reached()
    }

    /// Installs what answers the script's live queries (`total`, `workload`, ...);
    /// the run loop does this before it calls anything.
    pub fn set_host(&mut self, host: Rc<dyn Host>) {
        self.state.borrow_mut().host = Some(host);
    }

    /// The script's `//!` header: name, version, about, requires, parameters.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The name errors locate the script's own lines with (its path, or
    /// `built-in:NAME.rhai`).
    pub fn source_name(&self) -> &str {
        &self.source
    }

    /// Runs the top level once and returns what it asked for. API misuse, a
    /// header `-p` or `param(..)` cannot meet, a dropped builder result, a
    /// field an `on_event` callback reads that its events lack, and names of
    /// aggregations or workloads the script never declares are located
    /// errors (the first is returned; [`Script::diagnose`] has them all);
    /// warnings are kept for [`Script::warnings`]. A second call is an error.
    pub fn plan(&mut self) -> Result<Plan, ScriptError> {
        let (plan, found) = self.diagnose();
        let (errors, warnings): (Vec<Diagnostic>, Vec<Diagnostic>) = found
            .into_iter()
            .partition(|d| d.severity == Severity::Error);
        self.warnings = warnings;
        match (errors.into_iter().next(), plan) {
            (Some(e), _) => Err(e.into_error()),
            (None, Some(plan)) => Ok(plan),
            (None, None) => Err(self.error_at_start("the script has no plan")),
        }
    }

    /// Runs the top level once, like [`Script::plan`], and returns the plan
    /// (when the top level ran) with every finding about the script, errors
    /// and warnings, in the order of the text: what `vprobe check` reports.
    pub fn diagnose(&mut self) -> (Option<Plan>, Vec<Diagnostic>) {
        let Some(ast) = self.top.take() else {
            let e = self.error_at_start("the script has already been planned");
            return (None, vec![e.into()]);
        };
        let source = self.source.clone();
        let mut found = lint::header(&self.meta, &source);
        let before_run = lint::statements(&ast, &source, &self.meta);
        let plan = match self.run(&ast, &source) {
            Ok((_, plan)) => {
                found.extend(self.event_fields(0));
                let st = self.state.borrow();
                let declared = lint::Declared {
                    aggregations: st.aggs.iter().map(|a| a.name.as_str()).collect(),
                    workloads: st.workloads.iter().map(|w| w.name.as_str()).collect(),
                    triggers: &st.triggers,
                };
                found.extend(lint::names(&ast, &source, &declared));
                Some(plan)
            }
            Err(e) => {
                found.push(e.into());
                None
            }
        };
        // on one spot, what running found is the more precise
        found.extend(before_run);
        // the script's own findings in text order, then those in modules
        found.sort_by_key(|d| (d.origin.source != source, d.origin.line, d.origin.col));
        // running and reading the text can find the same thing
        let mut seen = std::collections::BTreeSet::new();
        found.retain(|d| seen.insert((d.origin.source.clone(), d.origin.line, d.message.clone())));
        (plan, found)
    }

    /// Warnings found by the last [`Script::plan`].
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    fn error_at_start(&self, message: &str) -> ScriptError {
        ScriptError {
            origin: Origin {
                source: self.source.clone(),
                line: 0,
                col: 0,
            },
            message: message.into(),
        }
    }

    /// Fields the `on_event` callbacks registered since `from` read that
    /// their events do not have.
    fn event_fields(&self, from: usize) -> Vec<Diagnostic> {
        let st = self.state.borrow();
        let callbacks: Vec<lint::EventCallback> = st
            .requests
            .iter()
            .filter_map(|r| match r.consumer {
                Consumer::Events { callback, .. } if callback.0 >= from => {
                    event_callback(&st, callback, r.probe)
                }
                _ => None,
            })
            .collect();
        lint::event_fields(&self.lib, &callbacks)
    }

    /// Evaluates more code (a REPL line) in the same scope as the script: its
    /// variables, functions and imports are visible. Returns only what this
    /// code asked for. Errors are located in `<repl>`; a line that fails
    /// changes nothing (variables, functions, imports, requests, actions).
    pub fn eval_line(&mut self, text: &str) -> Result<Plan, ScriptError> {
        self.eval_source(REPL_SOURCE, text)
    }

    /// [`Script::eval_line`] for code from elsewhere (a file loaded into a REPL
    /// session): errors are located in `source_name`.
    pub fn eval_source(&mut self, source_name: &str, text: &str) -> Result<Plan, ScriptError> {
        self.before_line = None;
        shape(source_name, text)?;
        let mut ast = self
            .engine
            .compile(text)
            .map_err(|e| errors::parse_error(source_name, &e))?;
        ast.set_source(source_name);
        let from_file = source_name != REPL_SOURCE;
        if from_file {
            // a file loaded into a session: its header's parameters and checks
            let meta = parse_meta(text);
            let mut found = lint::header(&meta, source_name);
            found.extend(lint::statements(&ast, source_name, &Meta::default()));
            if let Some(e) = found.into_iter().find(|d| d.severity == Severity::Error) {
                return Err(e.into_error());
            }
            let (params, given) = {
                let st = self.state.borrow();
                (st.params.clone(), st.given.clone())
            };
            params::declare_more(&params, &meta, &given)
                .map_err(|e| params::located(source_name, e))?;
        }
        let checkpoint = self.checkpoint();
        let callbacks = self.state.borrow().callbacks.len();
        let result = self.run(&ast, source_name).and_then(|r| {
            match self.event_fields(callbacks).into_iter().next() {
                Some(e) => Err(e.into_error()),
                None => Ok(r),
            }
        });
        match result {
            Ok((value, plan)) => {
                self.last_value = show(&value);
                self.before_line = Some(checkpoint);
                Ok(plan)
            }
            Err(e) => {
                self.restore(checkpoint);
                Err(e)
            }
        }
    }

    /// The variables in the script's scope, each with the attach point when
    /// it holds a probe (`let d = probe("skb.drop")`), for completion.
    pub fn variables(&self) -> Vec<(String, Option<&'static ProbeDef>)> {
        let mut out: Vec<(String, Option<&'static ProbeDef>)> = Vec::new();
        // newest first: the first of a name shadows the older ones
        for (name, _, value) in self.scope.iter_raw() {
            if out.iter().any(|(n, _)| n == name) {
                continue;
            }
            let probe = value
                .flatten_clone()
                .try_cast::<ProbeHandle>()
                .map(|h| h.probe());
            out.push((name.to_string(), probe));
        }
        out.reverse();
        out
    }

    /// Takes back the last successful [`Script::eval_line`] (its caller could
    /// not attach what it asked for): variables, functions, imports, requests,
    /// callbacks and actions are as before it. False if there is none to undo.
    pub fn undo_line(&mut self) -> bool {
        match self.before_line.take() {
            Some(c) => {
                self.restore(c);
                self.last_value = None;
                true
            }
            None => false,
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            marks: self.state.borrow().marks(),
            scope: self.scope.clone(),
            lib: self.lib.clone(),
            imports: self.global.num_imports(),
        }
    }

    fn restore(&mut self, c: Checkpoint) {
        self.state.borrow_mut().rewind(&c.marks);
        self.scope = c.scope;
        self.lib = c.lib;
        self.global.lib.clear();
        self.global.lib.push(self.lib.shared_lib().clone());
        self.global.truncate_imports(c.imports);
        self.lib_changed();
    }

    /// The value of the last [`Script::eval_line`], when it was not `()` (for
    /// the REPL to echo), taken.
    pub fn take_last_value(&mut self) -> Option<String> {
        self.last_value.take()
    }

    /// What the script asked of the session since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.state.borrow_mut().actions)
    }

    /// Runs an `every()` or `on_end()` callback, with a fresh operations budget.
    pub fn call(&mut self, callback: CallbackId) -> Result<(), ScriptError> {
        self.invoke(callback, &mut [])
    }

    /// Runs an `on_event()` callback with the [`Event`]: every catalog field
    /// of `probe` decoded (`e.dev`, `e.reason`), plus `probe`, `ts_ns`, `cpu`.
    pub fn call_event(
        &mut self,
        callback: CallbackId,
        probe: &'static ProbeDef,
        event: &RawEvent,
    ) -> Result<(), ScriptError> {
        let e = {
            let st = self.state.borrow();
            self.event.fill(probe, event, &st.symbols)
        };
        self.invoke(callback, &mut [e])
    }

    fn invoke(&mut self, id: CallbackId, args: &mut [Dynamic]) -> Result<(), ScriptError> {
        // shared: no copy of the closure (its captured variables) per event
        let cb = self.state.borrow().callback(id).cloned();
        let Some(cb) = cb else {
            return Err(ScriptError {
                origin: Origin {
                    source: self.source.clone(),
                    line: 0,
                    col: 0,
                },
                message: format!("no callback {id}"),
            });
        };
        self.global.num_operations = 0;
        if self.global.source.as_ref() != Some(&cb.source) {
            self.global.source = Some(cb.source.clone());
        }
        {
            let mut st = self.state.borrow_mut();
            if st.source != cb.source.as_str() {
                st.source = cb.source.to_string();
            }
        }
        let scripted = self.is_scripted(id, &cb.fn_ptr, args.len());
        let callee = Callee {
            fn_ptr: &cb.fn_ptr,
            scripted,
            pos: cb.pos,
        };
        match self
            .calls
            .call(&self.engine, &mut self.global, callee, args)
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(*e, EvalAltResult::Exit(..)) => Ok(()),
            Err(e) => Err(errors::eval_error(*e, &cb.source, cb.pos)),
        }
    }

    /// Whether callback `id`'s function is one of the script's own, taking
    /// `args` arguments after its captured ones; looked up once.
    fn is_scripted(&mut self, id: CallbackId, fn_ptr: &rhai::FnPtr, args: usize) -> bool {
        if let Some(Some(known)) = self.scripted.get(id.0) {
            return *known;
        }
        let params = fn_ptr.curry().len() + args;
        let known = self
            .lib
            .shared_lib()
            .get_script_fn(fn_ptr.fn_name(), params)
            .is_some();
        if self.scripted.len() <= id.0 {
            self.scripted.resize(id.0 + 1, None);
        }
        self.scripted[id.0] = Some(known);
        known
    }

    /// The script's functions or imports changed: what calls remembered of
    /// them is forgotten.
    fn lib_changed(&mut self) {
        self.calls.forget();
        self.scripted.clear();
    }

    /// Evaluates `ast`'s statements in the script's scope and runtime state;
    /// returns their value and what they asked for.
    fn run(&mut self, ast: &AST, source: &str) -> Result<(Dynamic, Plan), ScriptError> {
        let marks = self.state.borrow().marks();
        self.lib = self.lib.merge(&ast.clone_functions_only());
        self.global.lib.clear();
        self.global.lib.push(self.lib.shared_lib().clone());
        self.lib_changed();
        self.global.source = Some(source.into());
        self.global.num_operations = 0;
        self.state.borrow_mut().source = source.to_string();
        let caches = &mut Caches::new();
        // the only entry point that evaluates with a caller-owned runtime state
        #[allow(deprecated)]
        let result = self.engine.eval_statements_raw(
            &mut self.global,
            caches,
            &mut self.scope,
            ast.statements(),
        );
        let result = result
            .map_err(|e| errors::eval_error(*e, source, rhai::Position::NONE))
            .and_then(|v| self.check_callbacks(marks.callbacks).map(|_| v));
        if result.is_ok() {
            self.narrow_events(marks.requests);
        }
        match result {
            Ok(v) => Ok((v, self.state.borrow().plan_since(&marks))),
            Err(e) => {
                // a failed line adds nothing: the REPL can fix it and go on
                self.state.borrow_mut().rewind(&marks);
                Err(e)
            }
        }
    }

    /// The `on_event` requests since `from` carry only the fields their
    /// callbacks' text reads, where it says (`lint::event_reads`).
    fn narrow_events(&mut self, from: usize) {
        let mut st = self.state.borrow_mut();
        for i in from..st.requests.len() {
            let Consumer::Events { callback, .. } = st.requests[i].consumer else {
                continue;
            };
            let probe = st.requests[i].probe;
            let reads = event_callback(&st, callback, probe)
                .and_then(|cb| lint::event_reads(&self.lib, &cb));
            if let Some(reads) = reads {
                st.requests[i].consumer = Consumer::Events {
                    callback,
                    fields: Carried::Only(reads.into_iter().collect()),
                };
            }
        }
    }

    /// A callback that cannot take the arguments the runner will pass fails
    /// now, located where it was registered, rather than on every event.
    fn check_callbacks(&self, from: usize) -> Result<(), ScriptError> {
        let st = self.state.borrow();
        for cb in &st.callbacks[from..] {
            let name = cb.fn_ptr.fn_name();
            let wanted = cb.fn_ptr.curry().len() + cb.arity;
            let mut arities = self
                .lib
                .iter_functions()
                .filter(|f| f.name == name)
                .map(|f| f.params.len())
                .peekable();
            if arities.peek().is_none() {
                continue; // a native or imported function: checked when called
            }
            if !arities.any(|n| n == wanted) {
                let (what, example) = match cb.arity {
                    1 => ("one parameter (the event)", "|e| ..."),
                    _ => ("no parameters", "|| ..."),
                };
                return Err(ScriptError {
                    origin: Origin {
                        source: cb.source.to_string(),
                        line: cb.pos.line().unwrap_or(0),
                        col: cb.pos.position().unwrap_or(0),
                    },
                    message: format!("{} callbacks take {what}: `{example}`", cb.kind),
                });
            }
        }
        Ok(())
    }
}

/// The folder of a script named by a path; `None` for `<expr>`-like and
/// built-in names.
fn script_folder(source_name: &str) -> Option<&Path> {
    if source_name.starts_with('<') || source_name.starts_with("built-in:") {
        return None;
    }
    Path::new(source_name).parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    })
}
