//! The signals the binary handles. The engine installs none: `vprobe run`
//! hands it [`Stop`] as the run's stop signal, `vprobe serve` and `vprobe rr`
//! wait on it, and the REPL, where SIGINT means something else, takes each
//! signal with [`handle`].
//!
//! A handler is installed before the work it guards starts, so a signal that
//! comes meanwhile is kept for it rather than killing the process half-way.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use vprobe_engine::script::StopRequests;

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
    requests: StopRequests,
}

impl Stop {
    /// Installs the handlers of the three signals: tokio's, which wakes
    /// [`Stop::recv`], and one that counts each signal in
    /// [`Stop::requests`] at once, even while the engine runs a callback.
    pub fn install() -> anyhow::Result<Self> {
        let requests = StopRequests::new();
        for (sig, name) in [
            (signal_hook::consts::SIGINT, "SIGINT"),
            (signal_hook::consts::SIGTERM, "SIGTERM"),
            (signal_hook::consts::SIGHUP, "SIGHUP"),
        ] {
            let r = requests.clone();
            // SAFETY: the action only adds to an atomic counter, which is
            // async-signal-safe; it allocates nothing and takes no lock.
            unsafe { signal_hook::low_level::register(sig, move || r.request()) }
                .with_context(|| format!("cannot handle {name}"))?;
        }
        Ok(Self {
            interrupt: handle(SignalKind::interrupt(), "SIGINT")?,
            terminate: handle(SignalKind::terminate(), "SIGTERM")?,
            hangup: handle(SignalKind::hangup(), "SIGHUP")?,
            requests,
        })
    }

    /// The signals counted so far, for [`vprobe_engine::run::RunOptions::stop_requests`].
    pub fn requests(&self) -> StopRequests {
        self.requests.clone()
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
