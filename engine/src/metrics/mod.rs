//! `--metrics ADDR:PORT`: the live session as Prometheus metrics.
//!
//! A scrape of `/metrics` reads the kernel's per-CPU maps at that moment
//! ([`Source`]), turns them into metric families ([`collect`]) and writes
//! them in the format the scraper asked for ([`exposition`]): nothing is
//! done per event. The HTTP server ([`server`]) runs on the session's own
//! current-thread runtime, driven beside it by the run loop, so it reads the
//! session through shared handles instead of a copy.

pub mod collect;
pub mod exposition;
mod server;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

pub use collect::{Collector, Reading, ScriptInfo};
pub use exposition::Format;
pub use server::{MetricsError, MetricsOptions, MetricsServer, DEFAULT_SERIES_LIMIT};

use crate::output::ProbeInfo;
use crate::plan::MetricDesc;
use crate::session::{Session, SessionError};
use crate::symbols::Symbols;
use crate::workload::Running;

/// What a scrape reads: handles to the live session's state (shared with
/// [`crate::live::Live`], which goes on changing it).
pub struct Source {
    pub(crate) session: Rc<RefCell<Session>>,
    pub(crate) symbols: Rc<Symbols>,
    pub(crate) workloads: Rc<RefCell<Running>>,
    pub(crate) callback_errors: Rc<Cell<u64>>,
    pub(crate) reports: Rc<RefCell<serde_json::Map<String, serde_json::Value>>>,
    pub(crate) descriptions: Rc<RefCell<BTreeMap<String, MetricDesc>>>,
    pub(crate) script: ScriptInfo,
}

impl Source {
    /// One scrape: every family, encoded in `format`, appended to `out`.
    pub fn scrape(
        &self,
        collector: &mut Collector,
        format: Format,
        out: &mut String,
    ) -> Result<(), SessionError> {
        let session = self.session.borrow();
        let aggregations = session.snapshots(&self.symbols)?;
        // events still in a ring while the run goes on are not lost
        let lost = crate::output::Lost {
            undelivered: 0,
            ..crate::loss::lost(
                &session,
                &crate::loss::Tally::default(),
                self.callback_errors.get(),
            )
        };
        let probes: Vec<ProbeInfo> = session.instances().map(|(_, i)| i.info()).collect();
        drop(session);
        let workloads = self.workloads.borrow().counters();
        let reports = self.reports.borrow();
        let descriptions = self.descriptions.borrow();
        let families = collector.families(&Reading {
            aggregations: &aggregations,
            lost,
            probes: &probes,
            reports: &reports,
            script: &self.script,
            descriptions: &descriptions,
            workloads: &workloads,
        });
        exposition::encode(&families, format, out);
        Ok(())
    }
}
