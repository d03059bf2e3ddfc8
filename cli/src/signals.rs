//! The signals the binary handles. The engine installs none: `vprobe run`
//! hands it [`Stop`] as the run's stop signal, `vprobe serve` and `vprobe rr`
//! wait on it, and the REPL, where SIGINT means something else, takes each
//! signal with [`handle`].
//!
//! A handler is installed before the work it guards starts, so a signal that
//! comes meanwhile is kept for it rather than killing the process half-way.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A handler for `kind` (called `name` in errors); from now on the signal no
/// longer does its default action. Needs a tokio runtime with signals enabled.
pub fn handle(kind: SignalKind, name: &str) -> anyhow::Result<Signal> {
    signal(kind).with_context(|| format!("cannot handle {name}"))
}

/// SIGINT, SIGTERM or SIGHUP (the terminal went away): what ends `vprobe
/// run`, `vprobe rr` and `vprobe serve`, each with its summary.
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Stop {
    /// Installs the handlers of the three signals.
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: handle(SignalKind::interrupt(), "SIGINT")?,
            terminate: handle(SignalKind::terminate(), "SIGTERM")?,
            hangup: handle(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Completes on the next SIGINT, SIGTERM or SIGHUP (one that came since
    /// [`Stop::install`] counts), or at once when no signal can come any more
    /// (the runtime is going away). Cancel-safe.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = self.hangup.recv() => {}
        }
    }
}
