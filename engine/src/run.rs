//! The run loop: plan the script, attach, then drive timers, ring buffers,
//! signals and the deadline until the end, and write the summary.

use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};

use crate::agg::AggSnapshot;
use crate::events::Rings;
use crate::output::{Lost, Output, ProbeInfo, StartInfo, Summary, SCHEMA_VERSION};
use crate::plan::Consumer;
use crate::script::{Action, Plan, Script, ScriptError, Timer};
use crate::session::{InstanceId, Session, SessionOptions};
use crate::symbols::Symbols;
use crate::{Error, Result};

/// How a run is bounded and configured.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// End after this long (else on Ctrl-C, SIGTERM or `exit()`).
    pub duration: Option<Duration>,
    /// Session tunables.
    pub session: SessionOptions,
}

/// Callback errors printed before the rest are only counted.
const MAX_SHOWN_ERRORS: u64 = 20;
/// Ring-buffer drain period (events arrive at most this late when the ring is quiet).
const DRAIN_PERIOD: Duration = Duration::from_millis(100);
/// Events handed to callbacks per drain, so timers and signals stay responsive.
const DRAIN_BATCH: usize = 4096;

/// The state of a running session, shared by the script-facing helpers.
struct Runner<'a> {
    script: &'a mut Script,
    session: Session,
    output: &'a mut dyn Output,
    symbols: Rc<Symbols>,
    callbacks: HashMap<InstanceId, usize>,
    last_printed: HashMap<String, AggSnapshot>,
    /// Aggregations printed in full (not as deltas) since this was last cleared.
    printed: Vec<String>,
    reports: serde_json::Map<String, serde_json::Value>,
    callback_errors: u64,
    exit: Option<i32>,
}

/// Runs `script` to the end and returns the exit status the script asked for (0 by default).
pub async fn run(
    script: &mut Script,
    script_name: &str,
    output: &mut dyn Output,
    symbols: Rc<Symbols>,
    options: RunOptions,
) -> Result<i32> {
    let plan = script.plan()?;
    let mut session = Session::new(options.session.clone())?;
    let mut rings = Rings::default();
    let mut callbacks = HashMap::new();
    let mut probes = Vec::new();
    for req in plan.requests.iter().cloned() {
        let cb = match req.consumer {
            Consumer::Events { callback } => Some(callback),
            _ => None,
        };
        let id = session.attach(req, &symbols)?;
        let inst = session.instance_mut(id).expect("just attached");
        probes.push(probe_info(inst));
        if let Some(cb) = cb {
            callbacks.insert(id, cb);
            if let Some(ring) = inst.take_ring() {
                rings.add(id, ring)?;
            }
        }
    }
    let started = Instant::now();
    output.start(&StartInfo {
        schema: SCHEMA_VERSION,
        kernel: crate::session::kernel_release(),
        script: script_name.to_string(),
        duration_s: options.duration.map(|d| d.as_secs_f64()),
        probes: probes.clone(),
    })?;

    let mut r = Runner {
        script,
        session,
        output,
        symbols,
        callbacks,
        last_printed: HashMap::new(),
        printed: Vec::new(),
        reports: serde_json::Map::new(),
        callback_errors: 0,
        exit: None,
    };
    // prints and reports made by the top level itself
    r.apply_actions()?;
    let Plan {
        timers,
        on_end,
        requests,
        .. // workloads and triggers: wired in with the live session
    } = plan;

    // Nothing can happen: a script that only computes and prints ends at once.
    let idle = requests.is_empty() && timers.is_empty() && options.duration.is_none();
    if !idle && r.exit.is_none() {
        r.event_loop(&timers, &mut rings, options.duration).await?;
    }
    // last events still in flight
    r.drain(&mut rings, usize::MAX)?;
    r.printed.clear();
    for cb in on_end {
        let res = r.script.call(cb);
        r.after_call(res)?;
    }
    let (events, map_full) = r.session.lost();
    let summary = Summary {
        duration_s: started.elapsed().as_secs_f64(),
        maps: r.session.snapshots(&r.symbols)?,
        lost: Lost {
            events,
            map_full,
            callback_errors: r.callback_errors,
        },
        probes,
        printed_at_end: std::mem::take(&mut r.printed),
        reports: std::mem::take(&mut r.reports),
    };
    r.output.summary(&summary)?;
    Ok(r.exit.unwrap_or(0))
}

fn probe_info(inst: &crate::session::Instance) -> ProbeInfo {
    ProbeInfo {
        name: inst.probe().name.to_string(),
        mechanism: inst.mechanism.label(),
        feeds: inst
            .request
            .consumer
            .agg_name()
            .unwrap_or("events")
            .to_string(),
        fallbacks: inst.fallbacks.clone(),
    }
}

impl Runner<'_> {
    async fn event_loop(
        &mut self,
        timers: &[Timer],
        rings: &mut Rings,
        duration: Option<Duration>,
    ) -> Result<()> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let now = tokio::time::Instant::now();
        let deadline = duration.map(|d| now + d);
        let mut next_fire: Vec<tokio::time::Instant> =
            timers.iter().map(|t| now + t.period).collect();
        let mut drain = tokio::time::interval(DRAIN_PERIOD);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while self.exit.is_none() {
            let next_timer = next_fire.iter().copied().min();
            let wake = [next_timer, deadline].into_iter().flatten().min();
            tokio::select! {
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                _ = sleep_until(wake) => {
                    let t = tokio::time::Instant::now();
                    if deadline.is_some_and(|d| t >= d) {
                        break;
                    }
                    for (i, timer) in timers.iter().enumerate() {
                        if next_fire[i] <= t {
                            // no catch-up storm after a stall: next period from now
                            next_fire[i] = t + timer.period;
                            self.drain(rings, usize::MAX)?;
                            let res = self.script.call(timer.callback);
                            self.after_call(res)?;
                        }
                    }
                }
                _ = rings.readable(), if !rings.is_empty() => self.drain(rings, DRAIN_BATCH)?,
                _ = drain.tick(), if !rings.is_empty() => self.drain(rings, DRAIN_BATCH)?,
            }
        }
        Ok(())
    }

    fn drain(&mut self, rings: &mut Rings, max: usize) -> Result<()> {
        let mut batch = Vec::new();
        loop {
            batch.clear();
            rings.drain(max.min(DRAIN_BATCH), &mut batch);
            if batch.is_empty() {
                return Ok(());
            }
            for (id, ev) in &batch {
                let Some(&cb) = self.callbacks.get(id) else {
                    continue;
                };
                let Some(inst) = self.session.instance_mut(*id) else {
                    continue;
                };
                let probe = inst.probe();
                let res = self.script.call_event(cb, probe, ev);
                self.after_call(res)?;
            }
            if max != usize::MAX {
                return Ok(());
            }
        }
    }

    /// Counts and reports a failed callback (the session keeps running), then
    /// carries out what the callback asked for.
    fn after_call(&mut self, res: Result<(), ScriptError>) -> Result<()> {
        if let Err(e) = res {
            self.callback_errors += 1;
            if self.callback_errors <= MAX_SHOWN_ERRORS {
                self.output.error(&e.to_string())?;
            } else if self.callback_errors == MAX_SHOWN_ERRORS + 1 {
                self.output
                    .error("further callback errors are counted, not shown")?;
            }
        }
        self.apply_actions()
    }

    fn apply_actions(&mut self) -> Result<()> {
        for action in self.script.take_actions() {
            match action {
                Action::Print(s) => match self.session.snapshot(&s, &self.symbols)? {
                    Some(snap) => {
                        self.output.aggregation(&snap, false)?;
                        self.printed.push(s);
                    }
                    None => self.output.text(&s)?,
                },
                Action::PrintDelta(name) => match self.session.snapshot(&name, &self.symbols)? {
                    Some(snap) => {
                        let shown = match self.last_printed.get(&name) {
                            Some(prev) => snap.delta(prev),
                            None => snap.clone(),
                        };
                        self.output.aggregation(&shown, true)?;
                        self.last_printed.insert(name, snap);
                    }
                    None => self
                        .output
                        .error(&format!("print_delta: no aggregation named `{name}`"))?,
                },
                Action::Clear(name) => {
                    if self.session.clear(&name)? {
                        self.last_printed.remove(&name);
                    } else {
                        self.output
                            .error(&format!("clear: no aggregation named `{name}`"))?;
                    }
                }
                Action::Exit(code) => self.exit = Some(code),
                Action::Report(k, v) => {
                    self.reports.insert(k, v);
                }
                Action::Emit { probe, fields } => self.output.event(&probe, &fields)?,
            }
        }
        Ok(())
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Whether an error is a closed output pipe (a normal end for a CLI).
pub fn is_broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Io(io) if io.kind() == io::ErrorKind::BrokenPipe)
}
