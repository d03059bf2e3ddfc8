//! What a script asks for, before anything touches the kernel.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use vprobe_load::exec::ExecOptions;
use vprobe_load::tcp_rr::RrOptions;
use vprobe_probes::{FieldDef, ProbeDef};

/// A position in a script (1-based), for located errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// Script file name or `<expr>`.
    pub source: String,
    /// Line, 1-based; 0 when unknown.
    pub line: usize,
    /// Column, 1-based; 0 when unknown.
    pub col: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.col)
    }
}

/// A script callback (an `on_event`, `every` or `on_end` closure, a
/// trigger's `.call`): what the runner hands back to `Script::call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallbackId(pub(crate) usize);

impl fmt::Display for CallbackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The name of an aggregation, as `.count(name)`, `.hist(name, ..)` and
/// `.lhist(name, ..)` declare it; scripts get it back from those calls and
/// may hand it to `print`, `print_delta`, `clear`, `total` and `entries`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AggName(String);

impl AggName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AggName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for AggName {
    fn from(s: String) -> Self {
        AggName(s)
    }
}

impl From<&str> for AggName {
    fn from(s: &str) -> Self {
        AggName(s.to_string())
    }
}

impl AsRef<str> for AggName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AggName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AggName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One accepted filter value, as written in the script.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    /// A number.
    Int(i64),
    /// A string: a name, a glob, an address, a symbol.
    Str(String),
    /// An inclusive numeric range `[lo, hi]` (written `lo..=hi` or `lo..hi+1`).
    Range(i64, i64),
}

/// As a script writes it: `5`, `"mvt0"`, `64..=1499`.
impl fmt::Display for FilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterValue::Int(n) => write!(f, "{n}"),
            FilterValue::Str(s) => write!(f, "{s:?}"),
            FilterValue::Range(lo, hi) => write!(f, "{lo}..={hi}"),
        }
    }
}

/// `field in values` (any of them).
#[derive(Clone, Debug)]
pub struct Filter {
    /// The filtered field.
    pub field: &'static FieldDef,
    /// Accepted values (OR).
    pub values: Vec<FilterValue>,
}

/// Histogram buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistKind {
    /// Power-of-two buckets (bpftrace `hist()`).
    Log2,
    /// Fixed-width buckets (bpftrace `lhist()`).
    Linear {
        /// Bucket width.
        step: u64,
    },
}

/// The fields an event's record carries: what the kernel reads and copies per
/// event, so a callback that reads one field does not pay for twenty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Carried {
    /// Every field of the attach point: the callback may read any (it hands
    /// the event on, or its text does not say).
    #[default]
    All,
    /// Only these: every field the callback's text reads (`e.len`, `e["dev"]`).
    Only(Vec<&'static str>),
}

impl Carried {
    /// Whether the field named `name` is carried.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Carried::All => true,
            Carried::Only(names) => names.contains(&name),
        }
    }
}

/// What a probe instance feeds.
#[derive(Clone, Debug)]
pub enum Consumer {
    /// Count events per key into the aggregation `name`.
    Count {
        /// Aggregation name.
        name: AggName,
        /// Key fields, in the order given.
        keys: Vec<&'static FieldDef>,
    },
    /// Histogram `field` per key into the aggregation `name`.
    Hist {
        /// Aggregation name.
        name: AggName,
        /// The histogrammed field.
        field: &'static FieldDef,
        /// Key fields.
        keys: Vec<&'static FieldDef>,
        /// Buckets.
        kind: HistKind,
    },
    /// Deliver each event to the script callback `callback`.
    Events {
        /// The callback.
        callback: CallbackId,
        /// The fields each event's record carries.
        fields: Carried,
    },
    /// Write each event's packet to a pcapng file.
    Capture(CaptureTarget),
}

/// Where `.capture(..)` writes: a pcapng file, and how much of each packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureTarget {
    /// The file (created, or an earlier capture file replaced).
    pub path: PathBuf,
    /// Bytes kept of each packet, from its link (or network) header.
    pub snaplen: u32,
}

/// Bytes kept of each packet when a capture does not say.
pub const DEFAULT_SNAPLEN: u32 = 128;

/// `.rate(..)`: at most `max` events or captures per `period`, counted in the
/// kernel before anything is copied; the rest are counted as held back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Records let out per period.
    pub max: u32,
    /// The period.
    pub period: Duration,
}

impl fmt::Display for RateLimit {
    /// `100/1s`, as `.rate(..)` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.max,
            vprobe_time::duration::format(self.period)
        )
    }
}

impl Consumer {
    /// The aggregation this consumer feeds, if any.
    pub fn agg_name(&self) -> Option<&str> {
        match self {
            Consumer::Count { name, .. } | Consumer::Hist { name, .. } => Some(name.as_str()),
            Consumer::Events { .. } | Consumer::Capture(_) => None,
        }
    }

    /// Whether the kernel emits a record per event (a callback or a capture).
    pub fn emits(&self) -> bool {
        matches!(self, Consumer::Events { .. } | Consumer::Capture(_))
    }
}

/// One program instance to load and attach: a probe, its filters, one consumer.
#[derive(Clone, Debug)]
pub struct ProbeRequest {
    /// The attach point.
    pub probe: &'static ProbeDef,
    /// In-kernel filters (AND across fields).
    pub filters: Vec<Filter>,
    /// What the events feed.
    pub consumer: Consumer,
    /// The in-kernel rate limit of an `on_event` or capture consumer.
    pub rate: Option<RateLimit>,
    /// Where the script asked for it.
    pub origin: Origin,
}

/// A workload the script declared (`tcp_rr(..)`, `exec(..)`).
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Its name, for `workload(name)`, triggers and the summary.
    pub name: String,
    /// What runs.
    pub kind: WorkloadKind,
    /// Start with the session (else a trigger starts it).
    pub start: bool,
    /// Where the script declared it.
    pub origin: Origin,
}

/// The kinds of workload.
#[derive(Clone, Debug)]
pub enum WorkloadKind {
    /// netperf TCP_RR: synchronous request/response over N connections.
    TcpRr(RrSpec),
    /// An external command (needs `--allow exec`).
    Exec(ExecOptions),
}

/// `tcp_rr(#{..})`: the run's options, and where it runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RrSpec {
    /// `HOST:PORT`; `None` means the lab's server (a lab is then required).
    pub target: Option<String>,
    /// Also run the built-in server locally (for a `target` on this host).
    pub serve: bool,
    /// Streams, sizes, duration, warm-up, thresholds.
    pub options: RrOptions,
}

/// How a script presents one of its aggregations or reports as a metric
/// (`metric(name, #{name, help, unit, scale})`, for `--metrics`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricDesc {
    /// The metric's name after `vprobe_` (default: the aggregation's or
    /// `report_` and the report's key).
    pub name: Option<String>,
    /// One line of help.
    pub help: Option<String>,
    /// Its unit, appended to the name (`seconds`, `bytes`).
    pub unit: Option<String>,
    /// Factor from the field's unit to `unit` (1e-9 from ns to seconds):
    /// multiplies histogram bounds and sums, and report values.
    pub scale: Option<f64>,
}
