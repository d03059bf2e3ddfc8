//! The run loop of `vprobe run`: plan the script, attach, then drive the
//! [`Live`] session beside signals and the deadline until the end, and write
//! the summary.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use crate::live::Live;
use crate::output::Output;
use crate::script::Script;
use crate::session::SessionOptions;
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

/// Runs `script` to the end and returns the exit status the script asked for (0 by default).
pub async fn run(
    script: &mut Script,
    script_name: &str,
    output: &mut dyn Output,
    symbols: Rc<Symbols>,
    options: RunOptions,
) -> Result<i32> {
    let plan = script.plan()?;
    let mut live = Live::new(script, output, symbols, options.session.clone())?;
    live.apply(plan)?;
    live.start(script_name, options.duration)?;
    // prints and reports made by the top level itself
    live.apply_actions()?;

    // Nothing can happen: a script that only computes and prints ends at once.
    let idle = live.is_idle() && options.duration.is_none();
    if !idle && live.exit_code().is_none() {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let deadline = options.duration.map(|d| tokio::time::Instant::now() + d);
        while live.exit_code().is_none() {
            tokio::select! {
                // the deadline wins over a timer due at the same moment
                biased;
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                _ = sleep_until(deadline) => break,
                r = live.step() => r?,
            }
        }
    }
    live.finish()
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
