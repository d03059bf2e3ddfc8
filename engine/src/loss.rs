//! What a session lost, counted (docs/DESIGN.md, "Loss is data"): the
//! kernel's side from each instance's `loss` map (ring-buffer reserve
//! failures, updates a full map refused, records a rate limit held back,
//! records offered to a ring) and its programs' skipped runs, the session's
//! own (records handed to callbacks or capture files in a [`Tally`], capture
//! records that could not be written, callbacks that failed); and
//! [`LossWatch`], which says when they grew, while it happens.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::output::{LossReport, Lost};
use crate::plan::Consumer;
use crate::session::{Instance, InstanceId, Session};

/// Records handed on, counted by the session, shared with the host that
/// answers `lost()`.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Per `on_event` or capture instance (0 from its attach on).
    pub delivered: BTreeMap<InstanceId, u64>,
    /// Capture records that could not be written to their file.
    pub capture_failures: u64,
    /// Set as the run ends, per instance: the records its program had
    /// offered, and those its ring had no room for, when the workloads had
    /// finished. Those are what the run must deliver; records offered while
    /// its last events drain (connections closing, a lab coming down) come
    /// after its end and are not undelivered.
    pub offered_at_end: Option<BTreeMap<InstanceId, (u64, u64)>>,
}

impl Tally {
    /// Marks the run's end: what `session`'s programs offered so far.
    pub fn end(&mut self, session: &Session) {
        let offered = session
            .instances()
            .map(|(id, inst)| {
                let l = inst.losses();
                (id, (l.offered, l.events))
            })
            .collect();
        self.offered_at_end = Some(offered);
    }
}

/// Records of one instance that reached its ring and no consumer: offered,
/// less those the ring had no room for, less those delivered. A ring is
/// read in order, so once it has been read past the records offered by some
/// moment, every one of them was delivered.
fn undelivered(offered: u64, no_room: u64, delivered: u64) -> u64 {
    offered.saturating_sub(no_room).saturating_sub(delivered)
}

/// Losses now. `undelivered` is what reached a ring but no consumer: records
/// offered, less those the ring had no room for, less those delivered. While
/// the session runs they are in flight; once it has ended, never delivered
/// (of those offered by its end: [`Tally::offered_at_end`]).
pub(crate) fn lost(session: &Session, tally: &Tally, callback_errors: u64) -> Lost {
    let mut lost = Lost {
        captures: tally.capture_failures,
        callback_errors,
        ..Lost::default()
    };
    for (id, inst) in session.instances() {
        let l = instance_lost(id, inst, tally);
        lost.events += l.events;
        lost.captures += l.captures;
        lost.map_full += l.map_full;
        lost.rate_limited += l.rate_limited;
        lost.missed += l.missed;
        lost.undelivered += l.undelivered;
    }
    lost
}

/// Losses now per attach point (instances of one probe summed): which probe
/// lost events, where a script has several.
pub(crate) fn lost_by_probe(session: &Session, tally: &Tally) -> BTreeMap<String, Lost> {
    let mut out: BTreeMap<String, Lost> = BTreeMap::new();
    for (id, inst) in session.instances() {
        let l = instance_lost(id, inst, tally);
        let sum = out.entry(inst.probe().name.to_string()).or_default();
        *sum = Lost {
            events: sum.events + l.events,
            captures: sum.captures + l.captures,
            map_full: sum.map_full + l.map_full,
            rate_limited: sum.rate_limited + l.rate_limited,
            missed: sum.missed + l.missed,
            callback_errors: 0,
            undelivered: sum.undelivered + l.undelivered,
        };
    }
    out
}

/// One instance's kernel-side losses; reserve failures count as events or
/// as captures by what the instance feeds.
fn instance_lost(id: InstanceId, inst: &Instance, tally: &Tally) -> Lost {
    let l = inst.losses();
    let capture = matches!(inst.request.consumer, Consumer::Capture(_));
    let (offered, no_room) = tally
        .offered_at_end
        .as_ref()
        .and_then(|end| end.get(&id).copied())
        .unwrap_or((l.offered, l.events));
    let undelivered = tally
        .delivered
        .get(&id)
        .map_or(0, |delivered| undelivered(offered, no_room, *delivered));
    Lost {
        events: if capture { 0 } else { l.events },
        captures: if capture { l.events } else { 0 },
        map_full: l.map_full,
        rate_limited: l.rate_limited,
        missed: inst.recursion_misses(),
        callback_errors: 0,
        undelivered,
    }
}

/// Remembers what was last reported, to report only what is new.
#[derive(Debug, Default)]
pub(crate) struct LossWatch {
    shown: Lost,
    /// Per aggregation, the updates its full map refused, as last reported.
    map_full_shown: BTreeMap<String, u64>,
}

impl LossWatch {
    /// A report of what was lost since the last one, if anything was; events
    /// in flight (`undelivered` while running) are not a loss yet, and what a
    /// rate limit held back was asked for (the summary counts it).
    pub fn check(
        &mut self,
        session: &Session,
        tally: &Tally,
        callback_errors: u64,
        elapsed: Duration,
    ) -> Option<LossReport> {
        let total = Lost {
            undelivered: 0,
            rate_limited: 0,
            ..lost(session, tally, callback_errors)
        };
        if total == self.shown {
            return None;
        }
        let new = total.since(&self.shown);
        let mut full_maps = BTreeMap::new();
        if new.map_full > 0 {
            for name in session.aggregation_names() {
                let now = session.map_full(&name);
                let before = self.map_full_shown.insert(name.clone(), now).unwrap_or(0);
                if now > before {
                    full_maps.insert(name, now - before);
                }
            }
        }
        self.shown = total;
        Some(LossReport {
            elapsed_s: elapsed.as_secs_f64(),
            new,
            total,
            full_maps,
        })
    }
}
