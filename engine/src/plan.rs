//! What a script asks for, before anything touches the kernel.

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

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.source, self.line, self.col)
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

/// What a probe instance feeds.
#[derive(Clone, Debug)]
pub enum Consumer {
    /// Count events per key into the aggregation `name`.
    Count {
        /// Aggregation name.
        name: String,
        /// Key fields, in the order given.
        keys: Vec<&'static FieldDef>,
    },
    /// Histogram `field` per key into the aggregation `name`.
    Hist {
        /// Aggregation name.
        name: String,
        /// The histogrammed field.
        field: &'static FieldDef,
        /// Key fields.
        keys: Vec<&'static FieldDef>,
        /// Buckets.
        kind: HistKind,
    },
    /// Deliver each event to the script callback `callback` (an index into the
    /// script's callback table).
    Events {
        /// Callback index.
        callback: usize,
    },
}

impl Consumer {
    /// The aggregation this consumer feeds, if any.
    pub fn agg_name(&self) -> Option<&str> {
        match self {
            Consumer::Count { name, .. } | Consumer::Hist { name, .. } => Some(name),
            Consumer::Events { .. } => None,
        }
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
