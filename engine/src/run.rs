//! The run loop of `vprobe run`: plan the script, attach, then drive the
//! [`Live`] session beside the caller's stop signal and the deadline until
//! the end, and write the summary.
//!
//! Signals are the caller's: the binary turns SIGINT and SIGTERM into the
//! `stop` future [`run`] takes, so the engine installs no handler; and counts
//! them in [`RunOptions::stop_requests`], which a signal handler can do while
//! a callback runs, so that the callback is cut short instead of waited for.
//!
//! The run ends within a bounded time of its deadline, `stop` or `exit()`,
//! whatever the callbacks do: they are cut short at the deadline or at a stop
//! request, one step hands events to callbacks for at most a short slice
//! before the loop looks at `stop` and the deadline again, and the end itself
//! is bounded ([`Live::finish`]).

use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::live::Live;
use crate::metrics::{MetricsOptions, MetricsServer};
use crate::output::{Output, Summary};
use crate::plan::{CaptureTarget, Consumer, ProbeRequest, WorkloadSpec};
use crate::script::{Plan, Script, StopRequests};
use crate::session::SessionOptions;
use crate::symbols::Symbols;
use crate::workload::WorkloadError;
use crate::{Error, Result};
use vprobe_lab::Lab;
use vprobe_probes::Capture;

pub use crate::workload::WorkloadProgress;

/// Shows workload progress (a terminal's progress bars).
pub type ProgressFn = Box<dyn FnMut(&[WorkloadProgress])>;

/// Shows a warning about the script (`file:line:col: warning: ...`).
pub type WarnFn = Box<dyn FnMut(&str)>;

/// Looks at the plan before anything is attached: the caller's own
/// requirements (`--plot` needs a `tcp_rr` workload).
pub type PlanCheck = Box<dyn FnOnce(&Plan) -> Result<(), Refused>>;

/// Why a [`PlanCheck`] refused the plan.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// How a run is bounded and configured.
#[derive(Default)]
pub struct RunOptions {
    /// End after this long (else when `stop` fires, on `exit()`, or when
    /// the workloads that started with the session have ended).
    pub duration: Option<Duration>,
    /// Session tunables.
    pub session: SessionOptions,
    /// The lab the run watches (see [`Live::set_lab`]).
    pub lab: Option<Rc<Lab>>,
    /// Called twice a second while workloads run, with their progress; and
    /// once with an empty slice when the run ends.
    pub progress: Option<ProgressFn>,
    /// `--capture FILE`: also capture the events of every attach point the
    /// script uses that can capture, with the same filters.
    pub capture: Option<CaptureTarget>,
    /// Workloads to run beside the script's own (`--load`).
    pub workloads: Vec<WorkloadSpec>,
    /// Told each warning about the script (`file:line:col: warning: ...`)
    /// once it is planned, before anything attaches.
    pub warn: Option<WarnFn>,
    /// Checks the plan before it is applied.
    pub check: Option<PlanCheck>,
    /// Serve the live aggregations at `/metrics` while the run lasts.
    pub metrics: Option<MetricsOptions>,
    /// The stop requests the caller counts (its signal handlers) beside the
    /// `stop` future: one cuts a running callback short.
    pub stop_requests: Option<StopRequests>,
}

/// How often `progress` is called.
const PROGRESS_PERIOD: Duration = Duration::from_millis(500);

/// Runs `script` to the end and returns the exit status the script asked
/// for (0 by default) and the summary it wrote.
///
/// `stop` ends the run when it completes (the binary's SIGINT and SIGTERM):
/// the session ends as at its deadline, `on_end` and the summary included.
/// It is polled only once the script's probes are attached.
pub async fn run(
    script: &mut Script,
    script_name: &str,
    output: &mut dyn Output,
    symbols: Rc<Symbols>,
    mut options: RunOptions,
    stop: impl Future<Output = ()>,
) -> Result<(i32, Summary)> {
    // The session first: the script's top level may already ask it things
    // (`lab()`, `dev_stat(..)` for a baseline).
    let mut live = Live::new(script, output, symbols, options.session.clone())?;
    // The lab's stalls and background traffic wait for the start: drops
    // while probes attach one by one would reach some counters and not others.
    let lab = options.lab.take();
    if let Some(lab) = &lab {
        lab.set_disturbed(false);
    }
    live.set_lab(lab.clone());
    let mut plan = live.plan()?;
    if let Some(target) = &options.capture {
        capture_all(&mut plan, target);
    }
    if let Some(warn) = options.warn.as_mut() {
        for w in live.script().warnings() {
            warn(&w.to_string());
        }
    }
    if let Some(w) = options
        .workloads
        .iter()
        .find(|w| plan.workloads.iter().any(|p| p.name == w.name))
    {
        return Err(WorkloadError::LoadNameTaken(w.name.clone()).into());
    }
    plan.workloads.append(&mut options.workloads);
    live.check_requirements()?;
    if let Some(check) = options.check.take() {
        check(&plan)?;
    }
    live.apply(plan)?;
    // Listening before `start`: the start line says where, and a busy port
    // fails the run before it has begun.
    let server = match &options.metrics {
        Some(m) => {
            let server = MetricsServer::bind(m, live.metrics_source(script_name))?;
            live.set_metrics_url(format!("http://{}/metrics", server.local_addr()));
            Some(server)
        }
        None => None,
    };
    let serving = async {
        match &server {
            Some(s) => s.serve().await,
            None => std::future::pending().await,
        }
    };
    live.start(script_name, options.duration)?;
    if let Some(lab) = &lab {
        lab.set_disturbed(true);
    }
    if let Some(requests) = options.stop_requests.take() {
        live.set_stop_requests(requests);
    }
    let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
    live.set_deadline(deadline.map(tokio::time::Instant::into_std));
    // prints and reports made by the top level itself
    live.apply_actions()?;

    // Nothing can happen: a script that only computes and prints ends at once.
    let idle = live.is_idle() && options.duration.is_none();
    if !idle && live.exit_code().is_none() {
        let mut stop = std::pin::pin!(stop);
        let mut serving = std::pin::pin!(serving);
        let mut progress = tokio::time::interval(PROGRESS_PERIOD);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let showing = options.progress.is_some();
        while live.exit_code().is_none() {
            tokio::select! {
                // the deadline wins over a timer due at the same moment
                biased;
                _ = &mut stop => break,
                _ = sleep_until(deadline) => break,
                _ = progress.tick(), if showing => {
                    if let Some(show) = options.progress.as_mut() {
                        show(&live.workload_progress());
                    }
                }
                r = live.step() => r?,
                // scrapes are answered between the session's steps
                _ = &mut serving => {}
            }
            // a run that is only bounded by its workloads ends with them
            if options.duration.is_none() && live.workloads_done() {
                break;
            }
        }
    }
    if let Some(show) = options.progress.as_mut() {
        show(&[]);
    }
    // and end with the measurement: `on_end` reads counters that stand still
    if let Some(lab) = &lab {
        lab.set_disturbed(false);
    }
    live.finish_with_summary()
}

/// Adds a capture to `target` of each attach point and filters the plan
/// asks for (once, however many consumers they feed), where it can capture.
fn capture_all(plan: &mut Plan, target: &CaptureTarget) {
    let mut seen: Vec<String> = Vec::new();
    let mut extra = Vec::new();
    for req in &plan.requests {
        if req.probe.capture == Capture::None || matches!(req.consumer, Consumer::Capture(_)) {
            continue;
        }
        let filters: Vec<String> = req
            .filters
            .iter()
            .map(|f| format!("{}={:?}", f.field.name, f.values))
            .collect();
        let key = format!("{} {}", req.probe.name, filters.join(" "));
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        extra.push(ProbeRequest {
            consumer: Consumer::Capture(target.clone()),
            rate: None,
            ..req.clone()
        });
    }
    plan.requests.extend(extra);
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
