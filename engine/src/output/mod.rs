//! Where results go: one [`Output`] trait, a text and a JSON Lines implementation,
//! and SVG plots ([`svg`]).
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

/// Version of the JSON Lines schema, written in the `start` line.
pub const SCHEMA_VERSION: u32 = 1;

/// An attached probe instance, as reported in `start` and `summary`.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeInfo {
    /// Attach point name.
    pub name: String,
    /// Mechanism label (`tp_btf/kfree_skb`).
    pub mechanism: String,
    /// Aggregation fed, or `events`.
    pub feeds: String,
    /// Why preferred mechanisms were skipped, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
}

/// The session start: printed once every probe is attached.
#[derive(Clone, Debug, Serialize)]
pub struct StartInfo {
    /// Schema version.
    pub schema: u32,
    /// `uname -r`.
    pub kernel: String,
    /// Script name.
    pub script: String,
    /// Planned duration in seconds, if bounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Attached probes.
    pub probes: Vec<ProbeInfo>,
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
    /// Script callbacks that failed.
    pub callback_errors: u64,
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
    /// Values scripts added with `report(key, value)`.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub reports: serde_json::Map<String, serde_json::Value>,
    /// Results of the workloads the session ran, by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub workloads: std::collections::BTreeMap<String, crate::workload::WorkloadResult>,
    /// CLOCK_MONOTONIC (the clock of events' `ts_ns`) when the session started.
    pub monotonic_start_ns: u64,
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
    fn event(&mut self, probe: &str, fields: &[(String, Value)]) -> io::Result<()>;
    /// A non-fatal error (a failing callback), with its location.
    fn error(&mut self, message: &str) -> io::Result<()>;
    /// The end; the last thing written.
    fn summary(&mut self, summary: &Summary) -> io::Result<()>;
}
