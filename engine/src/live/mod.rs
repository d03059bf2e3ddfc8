//! A live session: the state machine that `vprobe run` and the REPL share.
//!
//! [`Live`] owns the [`Session`] (the attached instances), the ring buffers of
//! `on_event` instances, the armed `every()` timers and the `on_end`
//! callbacks, and carries out what the script asks of it ([`Action`]s). A
//! driver applies plans with [`Live::apply`] (once for a script file, once per
//! line in the REPL, see [`Live::eval`]), awaits [`Live::step`] in its own
//! `select!` beside its own sources (the stop signal and the deadline for
//! `run`, typed lines for the REPL), and ends with [`Live::finish`], which
//! writes the summary.
//!
//! Inside [`Live::step`], each event source is one arm of a `select!` that
//! names a `Wake`, and `handle` carries each out synchronously: `step` is
//! cancel-safe (a source that is not chosen keeps its state), so drivers can
//! put it beside anything. A new source — a workload thread reporting
//! results over a channel, triggers checked on each tick — is one more arm
//! and one more match arm.

mod priority;
mod queries;
mod requires;

pub use priority::READER_NICE;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::agg::AggSnapshot;
use crate::events::{Record, Rings};
use crate::loss::{LossWatch, Tally};
use crate::message::with_causes;
use crate::metrics::{ScriptInfo, Source};
use crate::output::pcap::PcapFile;
use crate::output::{
    About, CaptureInfo, DeliveryInfo, Lost, Output, ProbeInfo, StartInfo, Summary,
};
use crate::plan::{CallbackId, Consumer, MetricDesc};
use crate::script::{Action, Plan, Script, ScriptError, StopRequests};
use crate::session::{InstanceId, Session, SessionOptions};
use crate::symbols::Symbols;
use crate::trigger::{Metric, Trigger, TriggerAction, View, WorkloadStat};
use crate::workload::{LabPath, Running, WorkloadProgress};
use crate::Result;
use priority::ReaderPriority;
use queries::LiveHost;
use vprobe_lab::Lab;
use vprobe_probes::abi::Packet;
use vprobe_probes::ProbeDef;
use vprobe_time::monotonic_ns;

/// How often triggers are checked.
const CHECK_PERIOD: Duration = Duration::from_millis(100);
/// Distinct callback errors printed before the rest are only counted (a
/// message seen before is only counted, always).
const MAX_SHOWN_ERRORS: usize = 20;
/// Ring-buffer drain period (events arrive at most this late when the ring is quiet).
const DRAIN_PERIOD: Duration = Duration::from_millis(100);
/// How long one step hands events to callbacks before it returns, so that
/// timers, triggers and the driver's stop and deadline stay responsive when
/// callbacks are slower than the events (what is left waits in the ring).
const DRAIN_SLICE: Duration = Duration::from_millis(50);
/// How long the end hands the events still waiting to their callbacks; what
/// it cannot is counted as undelivered.
const END_DRAIN: Duration = Duration::from_millis(250);
/// How long the `on_end` callbacks may take together before they are cut short.
const END_CALLBACKS: Duration = Duration::from_secs(2);
/// How often losses are looked at, and reported when they grew.
const LOSS_PERIOD: Duration = Duration::from_secs(1);
/// How often running workloads are looked at (to collect the ones that ended).
const WORKLOAD_POLL: Duration = Duration::from_millis(100);

/// Identifies an `every()` timer within a [`Live`] session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// An armed `every()` timer.
#[derive(Clone, Debug)]
pub struct ArmedTimer {
    /// How often it fires.
    pub period: Duration,
    /// The script callback.
    pub callback: CallbackId,
    /// When it fires next.
    next: tokio::time::Instant,
}

/// What one [`Live::apply`] added, to show it or take it back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Instances attached.
    pub instances: Vec<InstanceId>,
    /// Timers armed.
    pub timers: Vec<TimerId>,
    /// `on_end` callbacks registered.
    pub on_end: usize,
    /// Triggers added.
    pub triggers: usize,
    /// Workloads declared (started, if they start with the session).
    pub workloads: Vec<String>,
}

/// Where an emitting instance's records go (what it was handed is in the
/// [`Tally`]).
#[derive(Clone, Copy, Debug)]
enum Sink {
    /// An `on_event` callback.
    Callback(CallbackId),
    /// A capture file (an index into `Live::captures`).
    Capture(usize),
}

/// An emitting instance, as the delivery loop needs it: resolved once at
/// attach, so that handing over a record looks nothing else up.
#[derive(Clone, Copy)]
struct Feed {
    probe: &'static ProbeDef,
    sink: Sink,
}

/// What woke [`Live::step`].
enum Wake {
    /// Some timer is due.
    Timers,
    /// Some ring buffer has events past its wakeup threshold.
    Rings,
    /// The periodic drain (a quiet ring's few events).
    Tick,
    /// Time to check the triggers.
    Check,
    /// Time to look at the running workloads.
    Workloads,
    /// Time to look for new losses.
    Loss,
}

/// A running session: attached probes, timers and callbacks, and what they printed.
pub struct Live<'a> {
    script: &'a mut Script,
    output: &'a mut dyn Output,
    symbols: Rc<Symbols>,
    /// Shared with the [`LiveHost`] that answers the script's queries.
    session: Rc<RefCell<Session>>,
    rings: Rings,
    /// The delivering thread's weight, raised while there are rings.
    priority: ReaderPriority,
    /// Raising it was refused (said once).
    priority_refused: bool,
    feeds: BTreeMap<InstanceId, Feed>,
    /// Open capture files, by path.
    captures: Vec<PcapFile>,
    timers: BTreeMap<TimerId, ArmedTimer>,
    next_timer: u64,
    on_end: Vec<CallbackId>,
    /// Created on the first [`Live::step`], inside the runtime.
    drain: Option<tokio::time::Interval>,
    /// Every instance ever attached (detached ones too), for `start` and the summary.
    probes: Vec<(InstanceId, ProbeInfo)>,
    last_printed: HashMap<String, AggSnapshot>,
    /// Aggregations printed in full (not as deltas) since this was last cleared.
    printed: Vec<String>,
    /// `report()`s so far; shared with the metrics endpoint.
    reports: Rc<RefCell<serde_json::Map<String, serde_json::Value>>>,
    /// Events handed to callbacks; shared with the [`LiveHost`] (`lost()`).
    tally: Rc<RefCell<Tally>>,
    /// Failed callbacks; shared with the metrics endpoint and the [`LiveHost`].
    callback_errors: Rc<Cell<u64>>,
    /// The callback errors printed so far (each message once).
    shown_errors: HashSet<String>,
    /// `metric()` descriptions; shared with the metrics endpoint.
    descriptions: Rc<RefCell<BTreeMap<String, MetricDesc>>>,
    /// Where `--metrics` serves, for the `start` line.
    metrics_url: Option<String>,
    /// Host, kernel and script, for `start` and `summary`.
    about: About,
    exit: Option<i32>,
    /// `verdict(ok)` so far: false once any check failed.
    verdict: Option<bool>,
    /// `on_end` callbacks are running.
    ending: bool,
    /// `on_end` callbacks printed lines of their own.
    narrated: bool,
    started: Instant,
    /// CLOCK_MONOTONIC at `started` (the clock of events' `ts_ns`).
    monotonic_start_ns: u64,
    triggers: Vec<Trigger>,
    /// Created with the first trigger.
    check: Option<tokio::time::Interval>,
    /// Declared workloads; shared with the [`LiveHost`].
    workloads: Rc<RefCell<Running>>,
    /// Created on the first [`Live::step`].
    workload_poll: Option<tokio::time::Interval>,
    /// The lab the session watches, if any; shared with the [`LiveHost`].
    lab: Rc<RefCell<Option<Rc<Lab>>>>,
    /// Created on the first [`Live::step`].
    loss_check: Option<tokio::time::Interval>,
    /// What the last loss line reported.
    loss_watch: LossWatch,
    /// Records handed to callbacks and capture files, and the time that took
    /// (decoding, the callbacks, their actions): the user-space cost per event.
    delivery: Delivery,
}

impl<'a> Live<'a> {
    /// Opens a session (privileges, BTF) for `script`, writing to `output`.
    /// Nothing is attached until [`Live::apply`].
    pub fn new(
        script: &'a mut Script,
        output: &'a mut dyn Output,
        symbols: Rc<Symbols>,
        options: SessionOptions,
    ) -> Result<Self> {
        let priority = ReaderPriority::new(options.reader_nice);
        let session = Rc::new(RefCell::new(Session::new(options)?));
        let workloads = Rc::new(RefCell::new(Running::default()));
        let lab = Rc::new(RefCell::new(None));
        let tally = Rc::new(RefCell::new(Tally::default()));
        let callback_errors = Rc::new(Cell::new(0));
        script.set_host(Rc::new(LiveHost {
            session: session.clone(),
            symbols: symbols.clone(),
            workloads: workloads.clone(),
            lab: lab.clone(),
            tally: tally.clone(),
            callback_errors: callback_errors.clone(),
        }));
        Ok(Self {
            script,
            output,
            symbols,
            session,
            rings: Rings::default(),
            priority,
            priority_refused: false,
            feeds: BTreeMap::new(),
            captures: Vec::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            on_end: Vec::new(),
            drain: None,
            probes: Vec::new(),
            last_printed: HashMap::new(),
            printed: Vec::new(),
            reports: Rc::default(),
            tally,
            callback_errors,
            shown_errors: HashSet::new(),
            descriptions: Rc::default(),
            metrics_url: None,
            about: About::here(None, None),
            exit: None,
            verdict: None,
            ending: false,
            narrated: false,
            started: Instant::now(),
            monotonic_start_ns: monotonic_ns(),
            triggers: Vec::new(),
            check: None,
            workloads,
            workload_poll: None,
            lab,
            loss_check: None,
            loss_watch: LossWatch::default(),
            delivery: Delivery::default(),
        })
    }

    /// The lab the session watches (or none): `lab()` describes it, `dev_stat`
    /// finds devices in its namespaces, and a `tcp_rr` without a target runs
    /// across it. Set it before applying plans that use it.
    pub fn set_lab(&mut self, lab: Option<Rc<Lab>>) {
        self.workloads
            .borrow_mut()
            .set_lab(lab.as_deref().and_then(LabPath::of));
        *self.lab.borrow_mut() = lab;
    }

    /// The lab, if any.
    pub fn lab(&self) -> Option<Rc<Lab>> {
        self.lab.borrow().clone()
    }

    /// Runs the script's top level (once) and returns what it asked for.
    pub fn plan(&mut self) -> Result<Plan> {
        Ok(self.script.plan()?)
    }

    /// Attaches the plan's requests, arms its timers (first firing one period
    /// from now) and registers its `on_end` callbacks. If any request fails to
    /// attach, what this plan attached is detached again and nothing is kept.
    pub fn apply(&mut self, plan: Plan) -> Result<Applied> {
        let mut applied = Applied::default();
        if let Err(e) = self.attach_all(plan.requests, &mut applied) {
            self.take_back(&applied);
            return Err(e);
        }
        let now = tokio::time::Instant::now();
        for t in plan.timers {
            let id = TimerId(self.next_timer);
            self.next_timer += 1;
            self.timers.insert(
                id,
                ArmedTimer {
                    period: t.period,
                    callback: t.callback,
                    next: now + t.period,
                },
            );
            applied.timers.push(id);
        }
        self.descriptions.borrow_mut().extend(plan.metrics);
        applied.on_end = plan.on_end.len();
        self.on_end.extend(plan.on_end);
        if let Err(e) = self.check_triggers_refer(&plan.triggers, &plan.workloads) {
            self.take_back(&applied);
            return Err(e);
        }
        applied.triggers = plan.triggers.len();
        self.triggers.extend(plan.triggers);
        let checked = self.workloads.borrow().check(&plan.workloads);
        if let Err((spec, why)) = checked {
            self.take_back(&applied);
            return Err(ScriptError {
                origin: spec.origin.clone(),
                message: why.to_string(),
            }
            .into());
        }
        // last: starting a workload makes traffic, so only once all else is in place
        for w in plan.workloads {
            let (name, origin) = (w.name.clone(), w.origin.clone());
            let declared = self.workloads.borrow_mut().declare(w);
            if let Err(e) = declared {
                self.take_back(&applied);
                return Err(ScriptError {
                    origin,
                    message: format!("workload `{name}` cannot start: {}", with_causes(&e)),
                }
                .into());
            }
            applied.workloads.push(name);
        }
        Ok(applied)
    }

    /// Attaches every request (the session loads them side by side); the
    /// first failure, in the script's order, is the error, and whatever did
    /// attach is in `applied` to be taken back.
    fn attach_all(
        &mut self,
        reqs: Vec<crate::plan::ProbeRequest>,
        applied: &mut Applied,
    ) -> Result<()> {
        let sinks = reqs
            .iter()
            .map(|req| self.sink_for(req))
            .collect::<Result<Vec<_>>>()?;
        let results = self.session.borrow_mut().attach_all(reqs, &self.symbols);
        let mut attached = Vec::new();
        let mut failed = None;
        for (result, sink) in results.into_iter().zip(sinks) {
            match result {
                Ok(id) => {
                    applied.instances.push(id);
                    attached.push((id, sink));
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        for (id, sink) in attached {
            self.feed(id, sink)?;
        }
        Ok(())
    }

    /// Where the events of `req` go: its callback or its capture file (made
    /// now, shared by requests that name the same path).
    fn sink_for(&mut self, req: &crate::plan::ProbeRequest) -> Result<Option<Sink>> {
        Ok(match &req.consumer {
            Consumer::Events { callback, .. } => Some(Sink::Callback(*callback)),
            Consumer::Capture(target) => {
                let at = match self.captures.iter().position(|f| f.path() == target.path) {
                    Some(at) => at,
                    None => {
                        let file = PcapFile::create(&target.path, target.snaplen)?;
                        self.captures.push(file);
                        self.captures.len() - 1
                    }
                };
                Some(Sink::Capture(at))
            }
            _ => None,
        })
    }

    /// Records an attached instance, and with a sink registers its ring.
    fn feed(&mut self, id: crate::session::InstanceId, sink: Option<Sink>) -> Result<()> {
        let (info, ring, probe) = {
            let mut session = self.session.borrow_mut();
            let inst = session.instance_mut(id).expect("just attached");
            let ring = sink.as_ref().and_then(|_| inst.take_ring());
            // the instance's, not the request's: a generic attach point's
            // definition (its fields' slots) is made when it attaches
            (inst.info(), ring, inst.probe())
        };
        self.probes.push((id, info));
        if let Some(sink) = sink {
            self.feeds.insert(id, Feed { probe, sink });
            self.tally.borrow_mut().delivered.insert(id, 0);
            if let Some(ring) = ring {
                self.rings.add(id, ring)?;
                self.raise_priority()?;
            }
        }
        Ok(())
    }

    /// Gives the delivering thread (this one) its reader weight once a ring
    /// is read; where that is not permitted, says so once and reads at the
    /// thread's own weight.
    fn raise_priority(&mut self) -> Result<()> {
        match self.priority.raise() {
            Ok(Some(nice)) => self.delivery.nice = Some(nice),
            Ok(None) => {}
            Err(e) => {
                if !self.priority_refused {
                    self.priority_refused = true;
                    self.output.note(&format!(
                        "events are read at this thread's own priority: nice {} was refused ({e}; it needs CAP_SYS_NICE; --reader-nice 0 asks for none)",
                        self.priority.wanted()
                    ))?;
                }
            }
        }
        Ok(())
    }

    /// Undoes an [`Live::apply`] that failed part way.
    fn take_back(&mut self, applied: &Applied) {
        for id in &applied.instances {
            self.detach(*id);
            self.probes.retain(|(i, _)| i != id);
        }
        for id in &applied.timers {
            self.timers.remove(id);
        }
        let keep = self.on_end.len() - applied.on_end;
        self.on_end.truncate(keep);
        let keep = self.triggers.len() - applied.triggers;
        self.triggers.truncate(keep);
        for name in &applied.workloads {
            self.workloads.borrow_mut().remove(name);
        }
    }

    /// A trigger must name aggregations that exist (so a typo is an error, not
    /// a trigger that never fires).
    fn check_triggers_refer(
        &self,
        triggers: &[Trigger],
        declared: &[crate::plan::WorkloadSpec],
    ) -> Result<()> {
        let names = self.session.borrow().aggregation_names();
        let workloads = self.workloads.borrow();
        let is_workload = |n: &str| workloads.contains(n) || declared.iter().any(|w| w.name == n);
        for t in triggers {
            let fail = |message: String| -> Result<()> {
                Err(ScriptError {
                    origin: t.origin.clone(),
                    message,
                }
                .into())
            };
            let mut named: Vec<&str> = t
                .actions
                .iter()
                .filter_map(|a| match a {
                    TriggerAction::Start(w) | TriggerAction::Stop(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect();
            named.extend(t.condition.workload());
            if let Some(w) = named.into_iter().find(|w| !is_workload(w)) {
                return fail(format!(
                    "trigger `{}`: no workload named `{w}` (declare it with tcp_rr(#{{name: \"{w}\", ..}}) or exec(..))",
                    t.condition
                ));
            }
            if let Metric::Workload {
                name,
                stat: WorkloadStat::Slow(d),
            } = &t.condition.metric
            {
                let counted = workloads.has_threshold(name, *d).or_else(|| {
                    declared
                        .iter()
                        .find(|w| &w.name == name)
                        .map(|w| match &w.kind {
                            crate::plan::WorkloadKind::TcpRr(rr) => {
                                rr.options.thresholds.contains(d)
                            }
                            crate::plan::WorkloadKind::Exec(_) => false,
                        })
                });
                if counted == Some(false) {
                    return fail(format!(
                        "trigger `{}`: `{name}` does not count transactions ≥ {d:?}: add it to its `thresholds`",
                        t.condition
                    ));
                }
            }
            if let Some(agg) = t.condition.aggregation() {
                if !names.iter().any(|n| n == agg) {
                    let known = if names.is_empty() {
                        "none is declared".to_string()
                    } else {
                        format!("known: {}", names.join(", "))
                    };
                    return Err(ScriptError {
                        origin: t.origin.clone(),
                        message: format!(
                            "trigger `{}`: no aggregation named `{agg}` ({known})",
                            t.condition
                        ),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Evaluates more code (a REPL line) in the script's scope, attaches what
    /// it asks for and carries out what it asked (prints, clears, ...). A line
    /// that fails changes nothing: its probes are detached again, its timers,
    /// callbacks, variables and actions forgotten. Returns the line's value
    /// when it is not `()`, and what was added.
    /// `source_name` locates errors: [`crate::script::REPL_SOURCE`] for typed
    /// lines, a file name for a file loaded into the session.
    pub fn eval(&mut self, source_name: &str, text: &str) -> Result<(Option<String>, Applied)> {
        let plan = self.script.eval_source(source_name, text)?;
        let applied = match self.apply(plan) {
            Ok(a) => a,
            Err(e) => {
                self.script.undo_line();
                return Err(e);
            }
        };
        self.apply_actions()?;
        Ok((self.script.take_last_value(), applied))
    }

    /// Writes the `start` record: every probe attached so far. The session's
    /// clock (the summary's duration) starts now.
    pub fn start(&mut self, script_name: &str, duration: Option<Duration>) -> Result<()> {
        self.started = Instant::now();
        self.monotonic_start_ns = monotonic_ns();
        self.about = About::here(Some(script_name), Some(self.script.meta()));
        self.output.start(&StartInfo {
            about: self.about.clone(),
            duration_s: duration.map(|d| d.as_secs_f64()),
            probes: self.probe_infos(),
            metrics: self.metrics_url.clone(),
        })?;
        Ok(())
    }

    /// What a `/metrics` scrape reads: handles to this session's state.
    /// `script_name` names the script where its header has no `//! name:`.
    pub fn metrics_source(&self, script_name: &str) -> Source {
        let meta = self.script.meta();
        Source {
            session: self.session.clone(),
            symbols: self.symbols.clone(),
            workloads: self.workloads.clone(),
            callback_errors: self.callback_errors.clone(),
            reports: self.reports.clone(),
            descriptions: self.descriptions.clone(),
            script: ScriptInfo {
                name: meta.name.clone().unwrap_or_else(|| script_name.to_string()),
                version: meta.version.clone(),
            },
        }
    }

    /// Says in the `start` line where `--metrics` serves.
    pub fn set_metrics_url(&mut self, url: String) {
        self.metrics_url = Some(url);
    }

    fn probe_infos(&self) -> Vec<ProbeInfo> {
        self.probes.iter().map(|(_, p)| p.clone()).collect()
    }

    /// Whether nothing can happen any more by itself: no probe attached, no timer,
    /// no trigger, no workload running.
    pub fn is_idle(&self) -> bool {
        self.session.borrow().instances().next().is_none()
            && self.timers.is_empty()
            && self.triggers.is_empty()
            && !self.workloads.borrow().any_running()
    }

    /// Whether the workloads that started with the session have all ended
    /// (false when there were none): a run without a duration ends then.
    pub fn workloads_done(&self) -> bool {
        self.workloads.borrow().all_done()
    }

    /// Stops every running workload (Ctrl-C in the REPL); returns how many ran.
    pub fn stop_workloads(&mut self) -> usize {
        self.workloads.borrow_mut().stop_all()
    }

    /// Progress of each running `tcp_rr`.
    pub fn workload_progress(&self) -> Vec<WorkloadProgress> {
        self.workloads.borrow().progress()
    }

    /// The status the script asked to end with (`exit()`), once it has.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit
    }

    /// The status the session ends with: the script's `exit(code)`, else 1
    /// if a `verdict(..)` failed, else 0.
    pub fn status(&self) -> i32 {
        self.exit
            .unwrap_or(if self.verdict == Some(false) { 1 } else { 0 })
    }

    /// Waits for the next thing that is due — a timer, a ring buffer's events,
    /// the periodic drain — and handles it: callbacks run, their actions are
    /// carried out. Never returns when nothing is attached and no timer is armed.
    /// Cancel-safe.
    pub async fn step(&mut self) -> Result<()> {
        let wake = self.wait().await;
        self.handle(wake)
    }

    async fn wait(&mut self) -> Wake {
        let next_timer = self.timers.values().map(|t| t.next).min();
        let every = |period| {
            let mut i = tokio::time::interval(period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        };
        let drain = self.drain.get_or_insert_with(|| every(DRAIN_PERIOD));
        let check = self.check.get_or_insert_with(|| every(CHECK_PERIOD));
        let poll = self
            .workload_poll
            .get_or_insert_with(|| every(WORKLOAD_POLL));
        let loss = self.loss_check.get_or_insert_with(|| every(LOSS_PERIOD));
        let rings = &self.rings;
        let checking = !self.triggers.is_empty();
        let running = self.workloads.borrow().any_running();
        let attached = self.session.borrow().instances().next().is_some();
        tokio::select! {
            _ = sleep_until(next_timer) => Wake::Timers,
            _ = rings.readable(), if !rings.is_empty() => Wake::Rings,
            _ = drain.tick(), if !rings.is_empty() => Wake::Tick,
            _ = check.tick(), if checking => Wake::Check,
            _ = poll.tick(), if running => Wake::Workloads,
            _ = loss.tick(), if attached => Wake::Loss,
        }
    }

    fn handle(&mut self, wake: Wake) -> Result<()> {
        match wake {
            Wake::Timers => {
                let t = tokio::time::Instant::now();
                let due: Vec<TimerId> = self
                    .timers
                    .iter()
                    .filter(|(_, timer)| timer.next <= t)
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    let Some(timer) = self.timers.get_mut(&id) else {
                        continue;
                    };
                    // no catch-up storm after a stall: next period from now
                    timer.next = t + timer.period;
                    let callback = timer.callback;
                    // the events so far first, so that what it prints includes them
                    self.deliver(Instant::now() + DRAIN_SLICE)?;
                    if self.stopping() {
                        return Ok(());
                    }
                    let res = self.script.call(callback);
                    self.after_call(res)?;
                }
                Ok(())
            }
            Wake::Rings | Wake::Tick => self.deliver(Instant::now() + DRAIN_SLICE),
            Wake::Check => self.check_triggers(),
            Wake::Workloads => {
                let ended = self.workloads.borrow_mut().poll();
                for e in ended {
                    self.output.note(&e.line)?;
                }
                Ok(())
            }
            Wake::Loss => {
                let report = self.loss_watch.check(
                    &self.session.borrow(),
                    &self.tally.borrow(),
                    self.callback_errors.get(),
                    self.started.elapsed(),
                );
                match report {
                    Some(r) => Ok(self.output.loss(&r)?),
                    None => Ok(()),
                }
            }
        }
    }

    /// Callbacks must not start now: the script asked to exit, or the run
    /// was asked to end or reached its deadline (see [`Live::set_deadline`]).
    fn stopping(&self) -> bool {
        self.exit.is_some() || self.script.cut().is_some()
    }

    /// Checks every trigger and carries out the actions of those that fire.
    fn check_triggers(&mut self) -> Result<()> {
        let now = Instant::now();
        for i in 0..self.triggers.len() {
            let fired = {
                let session = self.session.borrow();
                let workloads = self.workloads.borrow();
                let view = SessionView {
                    session: &session,
                    symbols: &self.symbols,
                    workloads: &workloads,
                };
                self.triggers[i].check(&view, now)
            };
            if !fired {
                continue;
            }
            for action in self.triggers[i].actions.clone() {
                self.trigger_action(action)?;
            }
        }
        Ok(())
    }

    fn trigger_action(&mut self, action: TriggerAction) -> Result<()> {
        match action {
            TriggerAction::Print(text) => self.output.text(&text)?,
            TriggerAction::Snapshot(name) => match self.snapshot(name.as_str())? {
                Some(snap) => self.output.aggregation(&snap, false)?,
                None => self
                    .output
                    .error(&format!("trigger: no aggregation named `{name}`"))?,
            },
            TriggerAction::Exit(code) => self.exit = Some(code),
            TriggerAction::Call(cb) => {
                let res = self.script.call(cb);
                self.after_call(res)?;
            }
            TriggerAction::Start(name) => {
                let started = self.workloads.borrow_mut().start(&name);
                if let Err(e) = started {
                    self.output.error(&format!(
                        "trigger: workload `{name}` cannot start: {}",
                        with_causes(&e)
                    ))?;
                }
            }
            TriggerAction::Stop(name) => {
                self.workloads.borrow_mut().stop(&name);
            }
        }
        Ok(())
    }

    /// Hands waiting events to their callbacks, one at a time, until the
    /// rings are empty, `until` passes, or [`Live::stopping`]. What is not
    /// handed over stays in the kernel's rings, for the next call (or, at the
    /// end, counted as undelivered): a flood that callbacks cannot keep up
    /// with fills the rings and shows as lost events, never as a late stop.
    fn deliver(&mut self, until: Instant) -> Result<()> {
        let start = thread_cpu_time();
        let before = self.delivery.records;
        let res = self.deliver_until(until);
        // what was read is free space for the programs again
        self.rings.publish();
        // timed per call, not per record: a clock read per record costs more
        // than the small callbacks it would time; CPU time of this thread, so
        // that being preempted by a busy host's work is not counted as cost
        if self.delivery.records != before {
            self.delivery.busy += thread_cpu_time().saturating_sub(start);
        }
        res
    }

    fn deliver_until(&mut self, until: Instant) -> Result<()> {
        // the clock is read every few events: a read per event was ~8 % of the
        // cost of delivering one to a small callback
        let mut n = 0u32;
        while !self.stopping() && (!n.is_multiple_of(16) || Instant::now() < until) {
            n = n.wrapping_add(1);
            let Some((id, rec)) = self.rings.take_one() else {
                return Ok(());
            };
            // a record of an instance detached since: consumed, not delivered
            let Some(&Feed { probe, sink }) = self.feeds.get(&id) else {
                continue;
            };
            *self.tally.borrow_mut().delivered.entry(id).or_default() += 1;
            self.delivery.records += 1;
            match sink {
                Sink::Callback(cb) => {
                    let res = self.script.call_event(cb, probe, &rec.event);
                    self.after_call(res)?;
                }
                Sink::Capture(at) => self.write_capture(at, probe, &rec)?,
            }
        }
        Ok(())
    }

    /// Writes a capture record to its file; a record that cannot be written
    /// is counted (the first failure is shown, the rest only counted).
    fn write_capture(&mut self, at: usize, probe: &ProbeDef, rec: &Record) -> Result<()> {
        let (packet, bytes) = match &rec.packet {
            Some((p, b)) => (*p, b.as_slice()),
            None => (Packet::default(), &[][..]),
        };
        let Some(file) = self.captures.get_mut(at) else {
            return Ok(());
        };
        if let Err(e) = file.write(probe, &rec.event, &packet, bytes, &self.symbols) {
            let failures = {
                let mut tally = self.tally.borrow_mut();
                tally.capture_failures += 1;
                tally.capture_failures
            };
            if failures == 1 {
                self.output.error(&format!(
                    "{}; further capture errors are counted, not shown",
                    with_causes(&e)
                ))?;
            }
        }
        Ok(())
    }

    /// Counts and reports a failed callback (the session keeps running), then
    /// carries out what the callback asked for.
    fn after_call(&mut self, res: Result<(), ScriptError>) -> Result<()> {
        if let Err(e) = res {
            self.callback_errors.set(self.callback_errors.get() + 1);
            let message = e.to_string();
            if self.shown_errors.len() < MAX_SHOWN_ERRORS {
                if self.shown_errors.insert(message.clone()) {
                    self.output.error(&message)?;
                }
            } else if !self.shown_errors.contains(&message) {
                self.shown_errors.insert(message);
                if self.shown_errors.len() == MAX_SHOWN_ERRORS + 1 {
                    self.output
                        .error("further callback errors are counted, not shown")?;
                }
            }
        }
        self.apply_actions()
    }

    /// Carries out what the script asked since the last call (prints, clears,
    /// reports, `exit()`).
    pub fn apply_actions(&mut self) -> Result<()> {
        for action in self.script.take_actions() {
            match action {
                Action::PrintAggregation(name) => {
                    match self
                        .session
                        .borrow()
                        .snapshot(name.as_str(), &self.symbols)?
                    {
                        Some(snap) => {
                            self.output.aggregation(&snap, false)?;
                            self.printed.push(name.to_string());
                        }
                        // declared, but nothing attached feeds it (`:detach`):
                        // the name is printed, as before aggregations were told apart
                        None => self.output.text(name.as_str())?,
                    }
                }
                Action::PrintText(s) => {
                    self.narrated |= self.ending;
                    self.output.text(&s)?
                }
                Action::PrintDelta(name) => {
                    match self
                        .session
                        .borrow()
                        .snapshot(name.as_str(), &self.symbols)?
                    {
                        Some(snap) => {
                            let shown = match self.last_printed.get(name.as_str()) {
                                Some(prev) => snap.delta(prev),
                                None => snap.clone(),
                            };
                            self.output.aggregation(&shown, true)?;
                            self.last_printed.insert(name.to_string(), snap);
                        }
                        None => self
                            .output
                            .error(&format!("print_delta: no aggregation named `{name}`"))?,
                    }
                }
                Action::Clear(name) => {
                    if !self.clear(name.as_str())? {
                        self.output
                            .error(&format!("clear: no aggregation named `{name}`"))?;
                    }
                }
                Action::Exit(code) => self.exit = Some(code),
                Action::Verdict(ok) => self.verdict = Some(self.verdict.unwrap_or(true) && ok),
                Action::Report(k, v) => {
                    self.reports.borrow_mut().insert(k, v);
                }
                Action::Emit(e) => self.output.event(&e)?,
                Action::Warn(text) => self.output.error(&text)?,
            }
        }
        Ok(())
    }

    /// Empties the aggregation `name` (and forgets its last `print_delta`);
    /// false if nothing attached feeds it.
    pub fn clear(&mut self, name: &str) -> Result<bool> {
        let found = self.session.borrow_mut().clear(name)?;
        if found {
            self.last_printed.remove(name);
        }
        Ok(found)
    }

    /// Detaches one instance (its ring and callback go with it); false if unknown.
    pub fn detach(&mut self, id: InstanceId) -> bool {
        self.rings.remove(id);
        if self.rings.is_empty() {
            self.priority.restore();
        }
        self.feeds.remove(&id);
        self.session.borrow_mut().detach(id)
    }

    /// Stops one timer; false if unknown.
    pub fn stop_timer(&mut self, id: TimerId) -> bool {
        self.timers.remove(&id).is_some()
    }

    /// The session and its attached instances (`.instances()`), borrowed:
    /// drop the guard before the next call that changes the session.
    pub fn session(&self) -> std::cell::Ref<'_, Session> {
        self.session.borrow()
    }

    /// The armed timers.
    pub fn timers(&self) -> impl Iterator<Item = (TimerId, &ArmedTimer)> {
        self.timers.iter().map(|(k, v)| (*k, v))
    }

    /// Events handed to the callback of an `on_event` instance so far.
    pub fn events_delivered(&self, id: InstanceId) -> Option<u64> {
        self.feeds.get(&id)?;
        self.tally.borrow().delivered.get(&id).copied()
    }

    /// The mechanism and fallbacks of an attached instance, as in `start`.
    pub fn probe_info(&self, id: InstanceId) -> Option<&ProbeInfo> {
        self.probes.iter().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// The aggregation `name`, merged over every instance that feeds it.
    pub fn snapshot(&self, name: &str) -> Result<Option<AggSnapshot>> {
        Ok(self.session.borrow().snapshot(name, &self.symbols)?)
    }

    /// What one instance has counted so far, if it feeds an aggregation.
    pub fn instance_snapshot(&self, id: InstanceId) -> Result<Option<AggSnapshot>> {
        match self.session.borrow().instances().find(|(i, _)| *i == id) {
            Some((_, inst)) => Ok(inst.snapshot(&self.symbols)?),
            None => Ok(None),
        }
    }

    /// Names of the aggregations being fed, in first-attach order.
    pub fn aggregation_names(&self) -> Vec<String> {
        self.session.borrow().aggregation_names()
    }

    /// Kernel-side losses over the attached instances, failed callbacks,
    /// and the events that reached a ring but no callback (in flight while
    /// the session runs; never delivered once it has ended).
    pub fn lost(&self) -> Lost {
        crate::loss::lost(
            &self.session.borrow(),
            &self.tally.borrow(),
            self.callback_errors.get(),
        )
    }

    /// From now on a stop request (a signal the driver counts) cuts running
    /// callbacks short; see [`Script::set_stop_requests`].
    pub fn set_stop_requests(&mut self, requests: StopRequests) {
        self.script.set_stop_requests(requests);
    }

    /// Callbacks still running at `at` (the run's end) are cut short, and
    /// no more start: a driver's deadline is kept whatever callbacks do.
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.script.set_deadline(at);
    }

    /// The capture files, with the packets written to each.
    pub fn captures(&self) -> Vec<CaptureInfo> {
        self.captures
            .iter()
            .map(|f| CaptureInfo {
                path: f.path().display().to_string(),
                packets: f.packets(),
            })
            .collect()
    }

    /// Where the session writes.
    pub fn output(&mut self) -> &mut dyn Output {
        self.output
    }

    /// The script, for what a driver asks of it directly (metadata, variables).
    pub fn script(&self) -> &Script {
        self.script
    }

    /// Ends the session: hands the last events in flight to their callbacks,
    /// runs `on_end`, writes the summary, then detaches everything and lets
    /// go of the lab (whoever set it takes it down by dropping theirs).
    /// Returns the status the script asked for (0 by default).
    ///
    /// The end is bounded whatever the callbacks do: the events still
    /// waiting get [`END_DRAIN`] (the rest is counted as undelivered and
    /// said so), the `on_end` callbacks [`END_CALLBACKS`] together; a stop
    /// request that comes during the end cuts them short at once.
    pub fn finish(self) -> Result<i32> {
        self.finish_with_summary().map(|(code, _)| code)
    }

    /// [`Live::finish`], also returning the summary it wrote (for a plot).
    pub fn finish_with_summary(mut self) -> Result<(i32, Summary)> {
        // the run ends because of the requests so far; a further one cuts the end short
        self.script.answer_stop_requests();
        // an exit() ends the run, not the end's own callbacks
        let exit = self.exit.take();
        // results first: on_end callbacks read them with workload(name); and
        // the events of the workloads' last moments (their connections
        // closing) reach the callbacks before on_end runs
        let workloads = self.workloads.borrow_mut().finish();
        self.tally.borrow_mut().end(&self.session.borrow());
        let drain_end = Instant::now() + END_DRAIN;
        self.script.set_deadline(Some(drain_end));
        self.deliver(drain_end)?;
        self.printed.clear();
        self.script
            .set_deadline(Some(Instant::now() + END_CALLBACKS));
        self.ending = true;
        for cb in std::mem::take(&mut self.on_end) {
            if let Some(cut) = self.script.cut() {
                self.output.error(&format!(
                    "on_end callbacks not run: {}",
                    cut.message().trim_start_matches("cut short: ")
                ))?;
                break;
            }
            let res = self.script.call(cb);
            self.after_call(res)?;
        }
        for file in &mut self.captures {
            if let Err(e) = file.flush() {
                self.tally.borrow_mut().capture_failures += 1;
                self.output.error(&with_causes(&e))?;
            }
        }
        self.script.set_deadline(None);
        let lost = self.lost();
        if lost.undelivered > 0 {
            self.output.error(&format!(
                "{} records reached a ring buffer but not their callback or capture file before \
                 the run ended (the consumers were slower than the events); counted as undelivered",
                lost.undelivered
            ))?;
        }
        let summary = Summary {
            about: self.about.clone(),
            captures: self.captures(),
            duration_s: self.started.elapsed().as_secs_f64(),
            maps: self.session.borrow().snapshots(&self.symbols)?,
            lost,
            probes: self.probe_infos(),
            printed_at_end: std::mem::take(&mut self.printed),
            narrated: self.narrated,
            reports: std::mem::take(&mut *self.reports.borrow_mut()),
            workloads,
            monotonic_start_ns: self.monotonic_start_ns,
            delivery: self.delivery.summary(),
        };
        self.output.summary(&summary)?;
        // an exit() that ended the run counts unless on_end asked for another
        if self.exit.is_none() {
            self.exit = exit;
        }
        Ok((self.status(), summary))
    }
}

impl Drop for Live<'_> {
    /// The script outlives the session and holds its host, which shares the
    /// lab: let go of it (its namespaces too), so that whoever set it takes
    /// it down by dropping theirs, also when the session ended in an error.
    fn drop(&mut self) {
        self.set_lab(None);
    }
}

/// What a trigger sees: the session's aggregations and workloads.
struct SessionView<'a> {
    session: &'a Session,
    symbols: &'a Symbols,
    workloads: &'a Running,
}

impl View for SessionView<'_> {
    fn agg_total(&self, name: &str) -> Option<u64> {
        let snap = self.session.snapshot(name, self.symbols).ok()??;
        Some(snap.total())
    }

    fn workload_stat(&self, name: &str, stat: &WorkloadStat) -> Option<f64> {
        self.workloads.stat(name, stat)
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// CPU time this thread has used (zero if the clock is unavailable).
fn thread_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// What delivering ring-buffer records cost in user space.
#[derive(Default)]
struct Delivery {
    records: u64,
    busy: Duration,
    /// The nice value the delivering thread was given, if it was changed.
    nice: Option<i32>,
}

impl Delivery {
    /// For the summary: none when nothing was delivered.
    fn summary(&self) -> Option<DeliveryInfo> {
        (self.records > 0).then(|| DeliveryInfo {
            reader_nice: self.nice,
            ..DeliveryInfo::new(self.records, self.busy)
        })
    }
}
