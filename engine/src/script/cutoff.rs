//! When a callback must stop although it has not finished: the run was asked
//! to end (a signal: [`StopRequests`]) or its time is up (a deadline the run
//! loop sets). Rhai checks [`Cutoff::reached`] as it counts operations, so a
//! callback stuck in a loop, or one of many queued behind a flood of events,
//! does not hold the run past its end (docs/DESIGN.md, "Reliability").

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Operations between two looks at the clock and the stop requests: a few
/// microseconds of script, so a cut comes promptly and costs nothing.
pub(super) const CHECK_EVERY: u64 = 512;

/// Requests to end a run, counted. [`StopRequests::request`] only adds to an
/// atomic counter, so a signal handler may call it.
#[derive(Clone, Debug, Default)]
pub struct StopRequests(Arc<AtomicU32>);

impl StopRequests {
    /// A counter no one has added to yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to end; async-signal-safe (one atomic add).
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests came so far.
    pub fn count(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why callbacks are being cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// A stop request came that the run has not answered yet.
    StopRequested,
    /// The deadline passed.
    Deadline,
}

impl Cut {
    /// The message of a callback cut short for this reason.
    pub fn message(self) -> &'static str {
        match self {
            Cut::StopRequested => "cut short: the run was asked to end",
            Cut::Deadline => "cut short: the run's time is up",
        }
    }
}

/// What the operations check of one script consults; shared with the engine's
/// progress callback.
#[derive(Debug, Default)]
pub(super) struct Cutoff {
    requests: RefCell<StopRequests>,
    /// Requests the run has answered (it is ending because of them): only a
    /// later one cuts callbacks short.
    answered: Cell<u32>,
    deadline: Cell<Option<Instant>>,
}

impl Cutoff {
    pub(super) fn set_requests(&self, requests: StopRequests) {
        self.answered.set(requests.count());
        *self.requests.borrow_mut() = requests;
    }

    /// The requests so far are being answered: the run ends because of them,
    /// and what it still runs (`on_end`) is cut only by a further one.
    pub(super) fn answer(&self) {
        self.answered.set(self.requests.borrow().count());
    }

    pub(super) fn set_deadline(&self, at: Option<Instant>) {
        self.deadline.set(at);
    }

    /// Whether callbacks must stop now, and why.
    pub(super) fn reached(&self) -> Option<Cut> {
        if self.requests.borrow().count() > self.answered.get() {
            return Some(Cut::StopRequested);
        }
        match self.deadline.get() {
            Some(d) if Instant::now() >= d => Some(Cut::Deadline),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_cuts_until_answered_and_a_later_one_cuts_again() {
        let c = Cutoff::default();
        let r = StopRequests::new();
        c.set_requests(r.clone());
        assert_eq!(c.reached(), None);
        r.request();
        assert_eq!(c.reached(), Some(Cut::StopRequested));
        c.answer();
        assert_eq!(c.reached(), None);
        r.request();
        assert_eq!(c.reached(), Some(Cut::StopRequested));
    }

    #[test]
    fn a_past_deadline_cuts() {
        let c = Cutoff::default();
        c.set_deadline(Some(Instant::now() + Duration::from_secs(60)));
        assert_eq!(c.reached(), None);
        c.set_deadline(Some(Instant::now()));
        assert_eq!(c.reached(), Some(Cut::Deadline));
        c.set_deadline(None);
        assert_eq!(c.reached(), None);
    }
}
