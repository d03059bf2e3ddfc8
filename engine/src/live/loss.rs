//! What a live session lost, counted (docs/DESIGN.md, "Loss is data"): the
//! kernel's side from each instance's `loss` map (ring-buffer reserve
//! failures, updates a full map refused, events offered to a ring), the
//! session's own (events handed to callbacks in a [`Tally`], callbacks that
//! failed); and [`LossWatch`], which says when they grew, while it happens.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::output::{LossReport, Lost};
use crate::session::{InstanceId, Session};

/// Events handed to callbacks, counted by the session, shared with the host
/// that answers `lost()`.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Per `on_event` instance (0 from its attach on).
    pub delivered: HashMap<InstanceId, u64>,
}

/// Losses now. `undelivered` is what reached a ring but no callback: events
/// offered, less those the ring had no room for, less those delivered. While
/// the session runs they are in flight; once it has ended, never delivered.
pub(super) fn lost(session: &Session, tally: &Tally, callback_errors: u64) -> Lost {
    let mut lost = Lost {
        callback_errors,
        ..Lost::default()
    };
    for (id, inst) in session.instances() {
        let l = inst.losses();
        lost.events += l.events;
        lost.map_full += l.map_full;
        if let Some(delivered) = tally.delivered.get(&id) {
            lost.undelivered += l
                .offered
                .saturating_sub(l.events)
                .saturating_sub(*delivered);
        }
    }
    lost
}

/// Remembers what was last reported, to report only what is new.
#[derive(Debug, Default)]
pub(super) struct LossWatch {
    shown: Lost,
    /// Per aggregation, the updates its full map refused, as last reported.
    map_full_shown: BTreeMap<String, u64>,
}

impl LossWatch {
    /// A report of what was lost since the last one, if anything was; events
    /// in flight (`undelivered` while running) are not a loss yet.
    pub fn check(
        &mut self,
        session: &Session,
        tally: &Tally,
        callback_errors: u64,
        elapsed: Duration,
    ) -> Option<LossReport> {
        let total = Lost {
            undelivered: 0,
            ..lost(session, tally, callback_errors)
        };
        if total == self.shown {
            return None;
        }
        let new = Lost {
            events: total.events.saturating_sub(self.shown.events),
            map_full: total.map_full.saturating_sub(self.shown.map_full),
            callback_errors: total
                .callback_errors
                .saturating_sub(self.shown.callback_errors),
            undelivered: 0,
        };
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
