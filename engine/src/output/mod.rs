//! Where results go: one [`Output`] trait, a text and a JSON Lines implementation,
//! and SVG plots ([`svg`]).
//!
//! Data and notes: what a session found (aggregations, prints, events, the
//! summary) is data; what it says about itself (what was attached, a workload
//! that ended, a failing callback) is a note. Text output can send notes to
//! another writer (a CLI's stderr) and say less or more of them
//! ([`Verbosity`]); JSON Lines keep both in one stream.
//!
//! Writers return `io::Result`; a closed pipe surfaces as `ErrorKind::BrokenPipe`
//! and the caller ends quietly.

use std::io;

use serde::Serialize;

use crate::agg::AggSnapshot;
use crate::value::Value;

mod json;
pub mod pcap;
pub mod svg;
mod text;

pub use json::JsonOutput;
pub use text::{rr_text, TextOutput};

/// How much a text output says besides its data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Data and errors only.
    Quiet,
    /// Also what was attached, once, and workloads' ends.
    #[default]
    Normal,
    /// Also why each preferred attach mechanism did not work here.
    Verbose,
}

/// Version of the JSON Lines schema (docs/schema/), written in `start` and
/// `summary`. 2: every line has `time`; `text` lines apart from `print`;
/// `lhist` with `step`; histogram `sum`; `host` and the script's name and
/// version; `emit(e)` keeps `ts_ns` and `cpu`.
pub const SCHEMA_VERSION: u32 = 2;

/// Who wrote a run's lines: repeated in `start` and `summary`, so either
/// one alone says where and what it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct About {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema: u32,
    /// The host's name.
    pub host: String,
    /// `uname -r`.
    pub kernel: String,
    /// The script as given: its path, or `<expr>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Its `//! name:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_name: Option<String>,
    /// Its `//! version:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_version: Option<String>,
}

impl About {
    /// This host and kernel, running `script` (with its header's name and version).
    pub fn here(script: Option<&str>, meta: Option<&crate::meta::Meta>) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            host: crate::kernel::hostname(),
            kernel: crate::kernel::kernel_release(),
            script: script.map(str::to_string),
            script_name: meta.and_then(|m| m.name.clone()),
            script_version: meta.and_then(|m| m.version.clone()),
        }
    }
}

/// An event a callback emitted (`emit(e)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// The event's `probe`.
    pub probe: String,
    /// CLOCK_MONOTONIC ns of the event, when the map had it.
    pub ts_ns: Option<u64>,
    /// The CPU it fired on, when the map had it.
    pub cpu: Option<u32>,
    /// Its fields: the catalog's in catalog order, then the script's own by name.
    pub fields: Vec<(String, Value)>,
}

/// An attached probe instance, as reported in `start` and `summary`.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeInfo {
    /// Attach point name.
    pub name: String,
    /// Mechanism label (`tp_btf/kfree_skb`).
    pub mechanism: String,
    /// Aggregation fed, or `events`.
    pub feeds: String,
    /// The fields an events record carries, when not every field: those its
    /// callback reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carries: Option<Vec<String>>,
    /// Why preferred mechanisms were skipped, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// The session start: printed once every probe is attached.
#[derive(Clone, Debug, Serialize)]
pub struct StartInfo {
    /// Schema, host, kernel, script.
    #[serde(flatten)]
    pub about: About,
    /// Planned duration in seconds, if bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Attached probes.
    pub probes: Vec<ProbeInfo>,
    /// `http://ADDR:PORT/metrics` when `--metrics` serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

/// What delivering events cost in user space: `records` handed over in
/// `ns_per_record` each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct DeliveryInfo {
    /// Records handed to `on_event` callbacks and capture files.
    pub records: u64,
    /// The CPU time that took in user space (decoding, callbacks and what they
    /// asked for), per record.
    pub ns_per_record: f64,
    /// The nice value the delivering thread ran at, when vprobe changed it
    /// (`--reader-nice`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_nice: Option<i32>,
}

impl DeliveryInfo {
    /// `records` delivered in `busy`.
    pub fn new(records: u64, busy: std::time::Duration) -> Self {
        Self {
            records,
            ns_per_record: if records == 0 {
                0.0
            } else {
                (busy.as_nanos() as f64 / records as f64 * 10.0).round() / 10.0
            },
            reader_nice: None,
        }
    }
}

/// Everything that was lost, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lost {
    /// Ring-buffer reserve failures in the kernel (`on_event` records).
    pub events: u64,
    /// Captured packets that did not reach their file: ring-buffer reserve
    /// failures of capture instances, and records that could not be written.
    pub captures: u64,
    /// Failed aggregation inserts (map full).
    pub map_full: u64,
    /// Events and captures held back by an in-kernel `.rate(..)` limit (by
    /// request, so not a failure; counted so that nothing is silent).
    pub rate_limited: u64,
    /// Events no program saw: the kernel skipped a program's run because it
    /// was already running on that CPU (an event nested in another; Linux
    /// 5.12+ counts them, `recursion_misses`).
    pub missed: u64,
    /// Script callbacks that failed, or were cut short at the end.
    pub callback_errors: u64,
    /// Records that reached a ring buffer but were never handed to their
    /// callback or capture file: the run ended first (callbacks slower than
    /// the events).
    pub undelivered: u64,
}

impl Lost {
    /// What grew since `before`, field by field.
    pub fn since(&self, before: &Lost) -> Lost {
        Lost {
            events: self.events.saturating_sub(before.events),
            captures: self.captures.saturating_sub(before.captures),
            map_full: self.map_full.saturating_sub(before.map_full),
            rate_limited: self.rate_limited.saturating_sub(before.rate_limited),
            missed: self.missed.saturating_sub(before.missed),
            callback_errors: self.callback_errors.saturating_sub(before.callback_errors),
            undelivered: self.undelivered.saturating_sub(before.undelivered),
        }
    }
}

/// Losses that grew while the session runs, reported as they happen (at
/// most once a second): the `loss` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossReport {
    /// Seconds since the session started.
    pub elapsed_s: f64,
    /// What was lost since the previous report.
    pub new: Lost,
    /// Everything lost so far.
    pub total: Lost,
    /// Aggregations whose map refused updates since the previous report
    /// (it is full: new keys are not counted), with how many it refused.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub full_maps: std::collections::BTreeMap<String, u64>,
}

/// A capture file a session wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaptureInfo {
    /// Its path, as the script gave it.
    pub path: String,
    /// Packets written.
    pub packets: u64,
}

/// The end of a session.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Schema, host, kernel, script (as in `start`).
    #[serde(flatten)]
    pub about: About,
    /// The capture files written, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<CaptureInfo>,
    /// Wall time from start to end.
    pub duration_s: f64,
    /// Every named aggregation, final values.
    #[serde(serialize_with = "maps_by_name")]
    pub maps: Vec<AggSnapshot>,
    /// Loss counters.
    pub lost: Lost,
    /// Probes and mechanisms used.
    pub probes: Vec<ProbeInfo>,
    /// Aggregations the script's `on_end` callbacks already printed in full;
    /// text output does not repeat them (JSON's summary always has every map).
    #[serde(skip)]
    pub printed_at_end: Vec<String>,
    /// Whether the script's `on_end` callbacks printed lines of their own:
    /// they tell the story, so text output does not list the reports again.
    #[serde(skip)]
    pub narrated: bool,
    /// Values scripts added with `report(key, value)`.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub reports: serde_json::Map<String, serde_json::Value>,
    /// Results of the workloads the session ran, by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub workloads: std::collections::BTreeMap<String, crate::workload::WorkloadResult>,
    /// CLOCK_MONOTONIC (the clock of events' `ts_ns`) when the session started.
    pub monotonic_start_ns: u64,
    /// What delivering ring-buffer records to callbacks and capture files cost
    /// in user space; absent when nothing was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryInfo>,
}

impl Summary {
    /// The summary of a run that only ran workloads (`vprobe rr`).
    pub fn of_workloads(
        duration_s: f64,
        monotonic_start_ns: u64,
        workloads: std::collections::BTreeMap<String, crate::workload::WorkloadResult>,
    ) -> Self {
        Self {
            about: About::here(None, None),
            captures: Vec::new(),
            duration_s,
            maps: Vec::new(),
            lost: Lost::default(),
            probes: Vec::new(),
            printed_at_end: Vec::new(),
            narrated: false,
            reports: serde_json::Map::new(),
            workloads,
            monotonic_start_ns,
            delivery: None,
        }
    }
}

fn maps_by_name<S: serde::Serializer>(maps: &[AggSnapshot], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(maps.len()))?;
    for a in maps {
        m.serialize_entry(&a.name, a)?;
    }
    m.end()
}

/// A sink for everything a session says.
pub trait Output {
    /// All probes are attached.
    fn start(&mut self, info: &StartInfo) -> io::Result<()>;
    /// `print(name)` / `print_delta(name)` of an aggregation.
    fn aggregation(&mut self, agg: &AggSnapshot, delta: bool) -> io::Result<()>;
    /// `print("text")` from a script.
    fn text(&mut self, text: &str) -> io::Result<()>;
    /// `emit(e)` of an event from a callback: the probe and its decoded fields.
    fn event(&mut self, event: &Emitted) -> io::Result<()>;
    /// A non-fatal error (a failing callback), with its location.
    fn error(&mut self, message: &str) -> io::Result<()>;
    /// Losses grew while the session runs (throttled by the caller).
    fn loss(&mut self, report: &LossReport) -> io::Result<()>;
    /// Something the session says about itself (a workload that ended): a
    /// note, not data. By default, a printed line.
    fn note(&mut self, text: &str) -> io::Result<()> {
        self.text(text)
    }
    /// The end; the last thing written.
    fn summary(&mut self, summary: &Summary) -> io::Result<()>;
}
