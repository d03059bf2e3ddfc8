//! What a script has asked for so far: the [`State`] every registered
//! function records into, and what the runner gets from it ([`Plan`]s and
//! [`Action`]s).

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, FnPtr, NativeCallContext, Position};
use vprobe_probes::FieldKind;

use super::host::Host;
use crate::meta::Meta;
use crate::output::Emitted;
use crate::plan::{AggName, CallbackId, HistKind, MetricDesc, Origin, ProbeRequest, WorkloadSpec};
use crate::symbols::Symbols;
use crate::trigger::Trigger;

/// A callback to run every `period`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer {
    /// How often.
    pub period: Duration,
    /// The callback, for [`super::Script::call`].
    pub callback: CallbackId,
}

/// What the top level (or one REPL line) asked for.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Program instances to load and attach.
    pub requests: Vec<ProbeRequest>,
    /// `every(..)` timers.
    pub timers: Vec<Timer>,
    /// `on_end(..)` callbacks, in order.
    pub on_end: Vec<CallbackId>,
    /// Workloads declared with `tcp_rr(..)` / `exec(..)`.
    pub workloads: Vec<WorkloadSpec>,
    /// `trigger(..)`s with their actions.
    pub triggers: Vec<Trigger>,
    /// `metric(name, #{..})`: how aggregations and reports are presented as metrics.
    pub metrics: Vec<(String, MetricDesc)>,
}

/// Something a script asked the session to do, drained with
/// [`super::Script::take_actions`].
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// `print(x)` where `x` names an aggregation the script declared (or is
    /// the handle `.count(..)` returned): print the aggregation.
    PrintAggregation(AggName),
    /// `print(x)` of anything else, and `debug(x)`: a line of text.
    PrintText(String),
    /// `print_delta(name)`: what changed in an aggregation since it was last printed.
    PrintDelta(AggName),
    /// `clear(name)`: empty an aggregation.
    Clear(AggName),
    /// `exit()` / `exit(code)`: end the session with this status.
    Exit(i32),
    /// `verdict(ok)`: the script's check passed or failed; a failed one
    /// makes the session's status 1 unless `exit(code)` says otherwise.
    Verdict(bool),
    /// `report(key, value)`: add to the summary's `reports`.
    Report(String, serde_json::Value),
    /// Something the script should know but that is not an error of its
    /// own (`total()` of an aggregation whose map is full), located.
    Warn(String),
    /// `emit(e)`: write an event line.
    Emit(Emitted),
}

/// What the script has asked for so far, shared by the registered functions.
pub(super) struct State {
    pub symbols: Rc<Symbols>,
    /// Source of the evaluation running now (script name or `<repl>`).
    pub source: String,
    /// `-p key=value` from the command line.
    pub given: BTreeMap<String, String>,
    /// The `params` map seen by the script (shared, so `param()` can add defaults).
    pub params: Dynamic,
    /// The header, when the script has one: then it declares every parameter.
    pub contract: Option<Meta>,
    pub requests: Vec<ProbeRequest>,
    pub timers: Vec<Timer>,
    pub on_end: Vec<CallbackId>,
    /// Shared: a call per event takes a reference, not a copy of the closure.
    pub callbacks: Vec<Rc<Callback>>,
    pub actions: Vec<Action>,
    pub aggs: Vec<Agg>,
    pub workloads: Vec<WorkloadSpec>,
    pub triggers: Vec<Trigger>,
    pub metrics: Vec<(String, MetricDesc)>,
    /// Answers live queries (`total`, `workload`, ...) while the session runs.
    pub host: Option<Rc<dyn Host>>,
    /// `--allow exec`.
    pub allow_exec: bool,
    /// Aggregations whose full map `total()` already warned about (once each).
    pub warned_full: std::collections::BTreeSet<String>,
}

/// Lengths of what [`State`] has recorded, to tell one evaluation's additions.
pub(super) struct Marks {
    pub requests: usize,
    pub timers: usize,
    pub on_end: usize,
    pub callbacks: usize,
    pub aggs: usize,
    pub workloads: usize,
    pub triggers: usize,
    pub metrics: usize,
    pub actions: usize,
}

/// A script function the runner calls later.
#[derive(Clone)]
pub(super) struct Callback {
    pub fn_ptr: FnPtr,
    /// Arguments the runner passes (1 for events, 0 for timers and `on_end`).
    pub arity: usize,
    /// Where it was registered (errors inside it that lose their position land here);
    /// shared, so that a call per event does not copy it.
    pub source: rhai::ImmutableString,
    pub pos: Position,
    /// `every`, `on_end`, `on_event`: for messages.
    pub kind: &'static str,
}

/// An aggregation declared by a consumer; a second consumer with the same name
/// must have the same shape (then the runner merges them).
pub(super) struct Agg {
    pub name: AggName,
    pub shape: Shape,
    pub origin: Origin,
}

/// What an aggregation holds: what the runner needs to merge two of them.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Shape {
    Count {
        keys: Vec<(&'static str, FieldKind)>,
    },
    Hist {
        field: &'static str,
        kind: HistKind,
        keys: Vec<(&'static str, FieldKind)>,
    },
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys =
            |k: &[(&str, FieldKind)]| k.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        match self {
            Shape::Count { keys: k } => write!(f, "a count by [{}]", keys(k)),
            Shape::Hist {
                field,
                kind: HistKind::Log2,
                keys: k,
            } => {
                write!(f, "a log2 histogram of `{field}` by [{}]", keys(k))
            }
            Shape::Hist {
                field,
                kind: HistKind::Linear { step },
                keys: k,
            } => {
                write!(
                    f,
                    "a linear histogram (step {step}) of `{field}` by [{}]",
                    keys(k)
                )
            }
        }
    }
}

impl State {
    pub fn new(
        symbols: Rc<Symbols>,
        source: &str,
        given: BTreeMap<String, String>,
        params: Dynamic,
    ) -> Self {
        Self {
            symbols,
            source: source.to_string(),
            given,
            params,
            contract: None,
            requests: Vec::new(),
            timers: Vec::new(),
            on_end: Vec::new(),
            callbacks: Vec::new(),
            actions: Vec::new(),
            aggs: Vec::new(),
            workloads: Vec::new(),
            triggers: Vec::new(),
            metrics: Vec::new(),
            host: None,
            allow_exec: false,
            warned_full: Default::default(),
        }
    }

    /// How much has been asked for so far.
    pub fn marks(&self) -> Marks {
        Marks {
            requests: self.requests.len(),
            timers: self.timers.len(),
            on_end: self.on_end.len(),
            callbacks: self.callbacks.len(),
            aggs: self.aggs.len(),
            workloads: self.workloads.len(),
            triggers: self.triggers.len(),
            metrics: self.metrics.len(),
            actions: self.actions.len(),
        }
    }

    /// What was asked for since `m`.
    pub fn plan_since(&self, m: &Marks) -> Plan {
        Plan {
            requests: self.requests[m.requests..].to_vec(),
            timers: self.timers[m.timers..].to_vec(),
            on_end: self.on_end[m.on_end..].to_vec(),
            workloads: self.workloads[m.workloads..].to_vec(),
            triggers: self.triggers[m.triggers..].to_vec(),
            metrics: self.metrics[m.metrics..].to_vec(),
        }
    }

    /// Forgets what was asked for since `m` (an evaluation that failed),
    /// including the actions it asked for and that were not taken yet.
    pub fn rewind(&mut self, m: &Marks) {
        self.actions.truncate(m.actions);
        self.requests.truncate(m.requests);
        self.timers.truncate(m.timers);
        self.on_end.truncate(m.on_end);
        self.callbacks.truncate(m.callbacks);
        self.aggs.truncate(m.aggs);
        self.workloads.truncate(m.workloads);
        self.triggers.truncate(m.triggers);
        self.metrics.truncate(m.metrics);
    }

    /// Where the running call is.
    pub fn origin(&self, ctx: &NativeCallContext) -> Origin {
        let pos = ctx.call_position();
        Origin {
            source: ctx.call_source().unwrap_or(&self.source).to_string(),
            line: pos.line().unwrap_or(0),
            col: pos.position().unwrap_or(0),
        }
    }

    /// Keeps a callback for the runner to call later.
    pub fn add_callback(&mut self, cb: Callback) -> CallbackId {
        self.callbacks.push(Rc::new(cb));
        CallbackId(self.callbacks.len() - 1)
    }

    /// The callback `id`, if this script registered it.
    pub fn callback(&self, id: CallbackId) -> Option<&Rc<Callback>> {
        self.callbacks.get(id.0)
    }

    /// What `print(text)` asks for: the aggregation `text` when the script
    /// declared one of that name (in any evaluation so far), else the text.
    pub fn print(&self, text: &str) -> Action {
        match self.aggs.iter().find(|a| a.name == *text) {
            Some(a) => Action::PrintAggregation(a.name.clone()),
            None => Action::PrintText(text.to_string()),
        }
    }
}
