//! Human output: bpftrace-like, with counts as aligned tables; latencies in
//! milliseconds, the unit of the story (TCP's 200 ms minimum RTO).
//!
//! Every call renders into a buffer, writes it in one piece and flushes: output is
//! streamed live, often into a pipe. Notes (what was attached, errors) go to
//! their own writer when one is given: a CLI's stderr, so a redirected stdout
//! holds only data.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write};

use vprobe_load::exec::ExecResult;
use vprobe_load::latency::LatencyBucket;
use vprobe_load::tcp_rr::RrResult;

use super::{Emitted, LossReport, Output, ProbeInfo, StartInfo, Summary, Verbosity};
use crate::agg::{AggKind, AggSnapshot, Bucket, EntryValue};
use crate::value::Value;

/// Width of a histogram bar at its largest bucket (bpftrace's).
const BAR_WIDTH: u64 = 52;

/// A zero gap longer than this many buckets is shown as one row.
const MAX_GAP_ROWS: usize = 32;

/// Writes human-readable text.
pub struct TextOutput<W: Write> {
    w: W,
    /// Where notes go (`vprobe: …` lines); `None`: with the data, unprefixed.
    notes: Option<Box<dyn Write>>,
    verbosity: Verbosity,
    buf: String,
    /// `print_delta` aggregations whose last delta was empty and said so:
    /// quiet until they change.
    quiet: HashSet<String>,
}

impl<W: Write> TextOutput<W> {
    /// Writes data and notes to `w` (the REPL's screen).
    pub fn new(w: W) -> Self {
        Self {
            w,
            notes: None,
            verbosity: Verbosity::Normal,
            buf: String::new(),
            quiet: HashSet::new(),
        }
    }

    /// Writes data to `w` and notes, as `vprobe: …` lines, to `notes`, as
    /// many as `verbosity` asks for (errors always).
    pub fn with_notes(w: W, notes: Box<dyn Write>, verbosity: Verbosity) -> Self {
        Self {
            notes: Some(notes),
            verbosity,
            ..Self::new(w)
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.w
    }

    /// Writes what was rendered into `buf` and flushes.
    fn emit(&mut self) -> io::Result<()> {
        let r = self
            .w
            .write_all(self.buf.as_bytes())
            .and_then(|()| self.w.flush());
        self.buf.clear();
        r
    }

    /// Writes `lines` as notes, if `verbosity` is at least `at`.
    fn notes(&mut self, at: Verbosity, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() || (self.verbosity < at && self.notes.is_some()) {
            return Ok(());
        }
        match &mut self.notes {
            Some(n) => {
                let mut b = String::new();
                for l in lines {
                    let _ = writeln!(b, "vprobe: {l}");
                }
                n.write_all(b.as_bytes()).and_then(|()| n.flush())
            }
            None => {
                for l in lines {
                    let _ = writeln!(self.buf, "{l}");
                }
                self.emit()
            }
        }
    }
}

impl<W: Write> Output for TextOutput<W> {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        // a script that only computes and prints attached nothing: no line
        if !info.probes.is_empty() {
            self.notes(Verbosity::Normal, &[attached_line(info)])?;
        }
        let mut lines = Vec::new();
        if self.verbosity >= Verbosity::Verbose || self.notes.is_none() {
            // several instances of one attach point fall back the same way: say it once
            let mut said: Vec<(&str, &str)> = Vec::new();
            for p in &info.probes {
                for f in &p.fallbacks {
                    if !said.contains(&(p.name.as_str(), f.as_str())) {
                        said.push((&p.name, f));
                        lines.push(format!("{} fell back: {f}", p.name));
                    }
                }
            }
            let verbose = self.verbosity >= Verbosity::Verbose;
            for p in info.probes.iter().filter(|_| verbose) {
                if let Some(fields) = &p.carries {
                    let which = match fields.as_slice() {
                        [] => "no field (the callback reads none)".to_string(),
                        f => f.join(", "),
                    };
                    lines.push(format!("{} events carry {which}", p.name));
                }
            }
        } else if let Some(l) = fallbacks_line(&info.probes) {
            lines.push(l);
        }
        if let Some(url) = &info.metrics {
            lines.push(format!("metrics at {url}"));
        }
        self.notes(Verbosity::Normal, &lines)
    }

    fn aggregation(&mut self, agg: &AggSnapshot, delta: bool) -> io::Result<()> {
        if delta && agg.entries.is_empty() {
            // an empty delta is said once, then nothing until it changes
            if !self.quiet.insert(agg.name.clone()) {
                return Ok(());
            }
        } else if delta {
            self.quiet.remove(&agg.name);
        }
        render_agg(&mut self.buf, agg, delta);
        self.emit()
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        self.buf.push_str(text);
        self.buf.push('\n');
        self.emit()
    }

    fn event(&mut self, e: &Emitted) -> io::Result<()> {
        self.buf.push_str(&e.probe);
        for (k, v) in &e.fields {
            let _ = write!(self.buf, " {}={}", printable(k), printable(&v.to_string()));
        }
        self.buf.push('\n');
        self.emit()
    }

    fn error(&mut self, message: &str) -> io::Result<()> {
        self.notes(Verbosity::Quiet, &[format!("error: {message}")])
    }

    fn note(&mut self, text: &str) -> io::Result<()> {
        self.notes(Verbosity::Normal, &[text.to_string()])
    }

    fn loss(&mut self, r: &LossReport) -> io::Result<()> {
        let mut line = format!("lost at {}:", seconds(r.elapsed_s));
        let mut parts = Vec::new();
        if r.new.events > 0 {
            parts.push(format!("{} events (ring buffer full)", r.new.events));
        }
        if r.new.captures > 0 {
            parts.push(format!("{} captured packets", r.new.captures));
        }
        if r.new.missed > 0 {
            parts.push(format!(
                "{} program runs (the kernel skipped them: nested on a CPU)",
                r.new.missed
            ));
        }
        for (name, n) in &r.full_maps {
            parts.push(format!(
                "{n} updates of `{}` (its map is full: new keys are not counted)",
                printable(name)
            ));
        }
        match r.new.callback_errors {
            0 => {}
            1 => parts.push("1 failed callback".into()),
            n => parts.push(format!("{n} failed callbacks")),
        }
        let _ = write!(
            line,
            " {}; so far events={} captures={} map_full={} missed={} callback_errors={}",
            parts.join(", "),
            r.total.events,
            r.total.captures,
            r.total.map_full,
            r.total.missed,
            r.total.callback_errors
        );
        // a note, about the measurement rather than part of it; shown even
        // when quiet, as errors are
        self.notes(Verbosity::Quiet, &[line])
    }

    fn summary(&mut self, s: &Summary) -> io::Result<()> {
        let b = &mut self.buf;
        b.push('\n');
        for agg in s
            .maps
            .iter()
            .filter(|a| !s.printed_at_end.contains(&a.name))
        {
            render_agg(b, agg, false);
        }
        for (name, w) in &s.workloads {
            let _ = writeln!(b, "workload {name}:");
            match w {
                crate::workload::WorkloadResult::TcpRr(r) => b.push_str(&rr_text(r)),
                crate::workload::WorkloadResult::Exec(x) => b.push_str(&exec_text(x)),
            }
            if !b.ends_with('\n') {
                b.push('\n');
            }
        }
        if !s.narrated {
            render_reports(b, &s.reports);
        }
        // Keep the trailer off the last rows (which may already end with a blank line).
        if b.len() > 1 && !b.ends_with("\n\n") {
            b.push('\n');
        }
        for c in &s.captures {
            let _ = writeln!(b, "capture: {} packets written to {}", c.packets, c.path);
        }
        let l = &s.lost;
        // what a rate limit held back was asked for: its own line below
        let failed = super::Lost {
            rate_limited: 0,
            ..*l
        };
        if failed != super::Lost::default() {
            let _ = write!(
                b,
                "lost: events={} captures={} map_full={} missed={} callback_errors={}",
                l.events, l.captures, l.map_full, l.missed, l.callback_errors
            );
            if l.undelivered != 0 {
                let _ = write!(b, " undelivered={}", l.undelivered);
            }
            b.push('\n');
        }
        if l.rate_limited != 0 {
            let _ = writeln!(b, "held back by rate limits: {}", l.rate_limited);
        }
        let _ = writeln!(b, "duration: {}", seconds(s.duration_s));
        self.emit()
    }
}

/// `attached macvtap.drop via tp_btf/kfree_skb → drops, ring, events; …`:
/// each attach point once, with every aggregation its instances feed.
fn attached_line(info: &StartInfo) -> String {
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for p in &info.probes {
        match groups
            .iter_mut()
            .find(|(n, m, _)| *n == p.name && *m == p.mechanism)
        {
            Some((_, _, feeds)) => {
                if !feeds.contains(&p.feeds.as_str()) {
                    feeds.push(&p.feeds)
                }
            }
            None => groups.push((&p.name, &p.mechanism, vec![&p.feeds])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(n, m, feeds)| format!("{n} via {m} → {}", feeds.join(", ")))
        .collect();
    let mut line = format!("attached {}", parts.join("; "));
    if let Some(d) = info.duration_s {
        let _ = write!(line, "; running for {}", seconds(d));
    }
    line
}

/// One line for every attach point that did not get its preferred
/// mechanism: how many were passed over (`-v` says why).
fn fallbacks_line(probes: &[ProbeInfo]) -> Option<String> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for p in probes.iter().filter(|p| !p.fallbacks.is_empty()) {
        if !seen.iter().any(|(n, _)| *n == p.name) {
            seen.push((&p.name, p.fallbacks.len()));
        }
    }
    if seen.is_empty() {
        return None;
    }
    let parts: Vec<String> = seen
        .iter()
        .map(|(n, k)| {
            let (s, verb) = if *k == 1 { ("", "does") } else { ("s", "do") };
            format!("{n}: {k} preferred mechanism{s} {verb} not work here")
        })
        .collect();
    Some(format!("{} (-v says why)", parts.join("; ")))
}

/// The script's `report(key, value)`s as aligned lines: an object's fields
/// become `key.field`, a long array its length (JSON keeps them whole).
fn render_reports(b: &mut String, reports: &serde_json::Map<String, serde_json::Value>) {
    let mut rows: Vec<(String, String)> = Vec::new();
    for (k, v) in reports {
        flatten_report(k, v, &mut rows);
    }
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in &rows {
        let pad = w - k.chars().count();
        let _ = writeln!(b, "{k}:{:pad$} {v}", "");
    }
}

fn flatten_report(key: &str, v: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    use serde_json::Value as J;
    const LONG: usize = 16;
    match v {
        J::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                flatten_report(&format!("{key}.{k}"), v, rows);
            }
        }
        J::Array(a) if a.len() > LONG => rows.push((key.into(), format!("{} values", a.len()))),
        J::Array(a) => {
            let items: Vec<String> = a.iter().map(plain).collect();
            rows.push((key.into(), items.join(", ")));
        }
        v => rows.push((key.into(), plain(v))),
    }
}

/// A JSON value as a reader writes it: strings without quotes.
fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// `s` with control characters escaped (`\u{1b}`, `\n`): names and values
/// come from scripts and from the kernel (a device may be named with an
/// escape sequence), and must not drive the terminal.
fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `12.0s`.
fn seconds(s: f64) -> String {
    format!("{s:.1}s")
}

/// One aggregation: a one-line value, a table, or histograms. Multi-line
/// renderings end with a blank line.
fn render_agg(b: &mut String, agg: &AggSnapshot, delta: bool) {
    let title = if delta {
        format!("@{} (delta)", printable(&agg.name))
    } else {
        format!("@{}", printable(&agg.name))
    };
    if agg.entries.is_empty() {
        let _ = writeln!(b, "{title}: (empty)");
        return;
    }
    match agg.kind {
        AggKind::Count if agg.keys.is_empty() => {
            let _ = writeln!(b, "{title}: {}", agg.total());
        }
        AggKind::Count => {
            let _ = writeln!(b, "{title}");
            render_table(b, agg);
            b.push('\n');
        }
        AggKind::Hist | AggKind::Lhist if agg.time_ns => {
            let unit = TimeUnit::of(agg);
            let _ = writeln!(b, "{title} ({})", unit.name());
            render_hists(b, agg, &|n| unit.show(n));
        }
        AggKind::Hist | AggKind::Lhist => {
            let _ = writeln!(b, "{title}");
            render_hists(b, agg, &compact);
        }
    }
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Uint(_) | Value::Int(_))
}

/// Key columns then `count`; numeric columns right-aligned.
fn render_table(b: &mut String, agg: &AggSnapshot) {
    let mut header: Vec<&str> = agg.keys.iter().map(String::as_str).collect();
    header.push("count");
    let rows: Vec<Vec<String>> = agg
        .entries
        .iter()
        .map(|e| {
            let mut row: Vec<String> = (0..agg.keys.len())
                .map(|i| {
                    e.key
                        .get(i)
                        .map(|(_, v)| printable(&v.to_string()).into_owned())
                        .unwrap_or_default()
                })
                .collect();
            row.push(e.value.total().to_string());
            row
        })
        .collect();
    let right: Vec<bool> = (0..header.len())
        .map(|i| {
            i == agg.keys.len()
                || agg
                    .entries
                    .iter()
                    .all(|e| e.key.get(i).is_some_and(|(_, v)| is_number(v)))
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let start = b.len();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                b.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                b.extend(std::iter::repeat_n(' ', pad));
                b.push_str(cell);
            } else {
                b.push_str(cell);
                b.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let end = b.trim_end_matches(' ').len().max(start);
        b.truncate(end);
        b.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
}

/// The unit a histogram of nanoseconds is shown in: the one its largest
/// bound reads best in, so a latency tail reads `[131, 262)` ms, not `[128M, 256M)`.
#[derive(Clone, Copy)]
enum TimeUnit {
    Ns,
    Us,
    Ms,
}

impl TimeUnit {
    fn of(agg: &AggSnapshot) -> TimeUnit {
        let top = agg
            .entries
            .iter()
            .flat_map(|e| match &e.value {
                EntryValue::Hist { buckets, .. } => buckets.iter().map(|b| b.low).max(),
                EntryValue::Count { .. } => None,
            })
            .max()
            .unwrap_or(0);
        match top {
            0..1_000 => TimeUnit::Ns,
            1_000..1_000_000 => TimeUnit::Us,
            _ => TimeUnit::Ms,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TimeUnit::Ns => "ns",
            TimeUnit::Us => "µs",
            TimeUnit::Ms => "ms",
        }
    }

    /// `ns` in this unit, to three significant digits (`ms` of µs does the rounding).
    fn show(self, ns: u64) -> String {
        if ns == u64::MAX {
            return "∞".into();
        }
        match self {
            TimeUnit::Ns => ns.to_string(),
            TimeUnit::Us => ms(ns),
            TimeUnit::Ms => ms(ns / 1000),
        }
    }
}

/// One histogram per key, bpftrace style; columns aligned across keys, each bar
/// scaled to its own key's largest bucket; each bound written by `bound`.
fn render_hists(b: &mut String, agg: &AggSnapshot, bound: &dyn Fn(u64) -> String) {
    let label = |x: &Bucket| label(x, bound);
    let hists: Vec<(String, Vec<Bucket>)> = agg
        .entries
        .iter()
        .map(|e| {
            let key = e
                .key
                .iter()
                .map(|(k, v)| format!("{k}={}", printable(&v.to_string())))
                .collect::<Vec<_>>()
                .join(" ");
            let buckets = match &e.value {
                EntryValue::Hist { buckets, .. } => with_gaps(buckets),
                // A count where a histogram was expected: one bucket-less row.
                EntryValue::Count { value } => vec![Bucket {
                    low: 0,
                    high: u64::MAX,
                    count: *value,
                }],
            };
            (key, buckets)
        })
        .collect();
    let all = hists.iter().flat_map(|(_, bs)| bs);
    let label_w = all.clone().map(|x| label(x).len()).max().unwrap_or(0);
    let count_w = all.map(|x| x.count.to_string().len()).max().unwrap_or(1);
    for (key, buckets) in &hists {
        if !key.is_empty() {
            let _ = writeln!(b, "{key}");
        }
        let max = buckets.iter().map(|x| x.count).max().unwrap_or(0).max(1);
        for x in buckets {
            let bar = (u128::from(x.count) * u128::from(BAR_WIDTH) / u128::from(max)) as usize;
            let _ = writeln!(
                b,
                "{:<label_w$}  {:>count_w$} |{:<width$}|",
                label(x),
                x.count,
                "@".repeat(bar),
                width = BAR_WIDTH as usize,
            );
        }
        b.push('\n');
    }
}

/// `[4]` for a one-value bucket, else `[1K, 2K)`: each bound written by `bound`.
fn label(x: &Bucket, bound: &dyn Fn(u64) -> String) -> String {
    if x.high == x.low.wrapping_add(1) {
        format!("[{}]", bound(x.low))
    } else {
        format!("[{}, {})", bound(x.low), bound(x.high))
    }
}

/// 1024 → `1K`, 3 << 20 → `3M` (bpftrace's suffixes); other numbers as they are.
/// `u64::MAX` is the open end of the last log2 bucket, 2^64: `16E`.
fn compact(n: u64) -> String {
    if n == u64::MAX {
        return "16E".into();
    }
    let mut v = n;
    let mut unit = 0;
    while v >= 1024 && v.is_multiple_of(1024) && unit < 6 {
        v /= 1024;
        unit += 1;
    }
    match unit {
        0 => v.to_string(),
        u => format!("{v}{}", ["K", "M", "G", "T", "P", "E"][u - 1]),
    }
}

/// Buckets with the empty ones between non-empty ones put back, as zero rows.
///
/// Linear buckets all have one width; log2 buckets (`[0,1) [1,2) [2,4) …`) never
/// do unless there are no gaps, so the width tells which sequence to fill in.
fn with_gaps(buckets: &[Bucket]) -> Vec<Bucket> {
    let Some(first) = buckets.first() else {
        return Vec::new();
    };
    let width = first.high.wrapping_sub(first.low);
    let linear = buckets.iter().all(|x| x.high.wrapping_sub(x.low) == width);
    let next = |low: u64, high: u64| -> Option<(u64, u64)> {
        if linear {
            Some((high, high.checked_add(width)?))
        } else if high == 0 || high == u64::MAX {
            None
        } else {
            Some((high, high.saturating_mul(2)))
        }
        .filter(|&(l, _)| l > low)
    };
    let mut out = Vec::with_capacity(buckets.len());
    for (i, x) in buckets.iter().enumerate() {
        if i > 0 {
            let prev = &buckets[i - 1];
            let mut gap = Vec::new();
            let mut cur = next(prev.low, prev.high);
            while let Some((l, h)) = cur {
                if l >= x.low || gap.len() > MAX_GAP_ROWS {
                    break;
                }
                gap.push(Bucket {
                    low: l,
                    high: h,
                    count: 0,
                });
                cur = next(l, h);
            }
            if gap.len() > MAX_GAP_ROWS {
                gap = vec![Bucket {
                    low: prev.high,
                    high: x.low,
                    count: 0,
                }];
            }
            out.extend(gap);
        }
        out.push(x.clone());
    }
    out
}

/// An `exec` workload's end, with the last lines of its output.
pub fn exec_text(x: &ExecResult) -> String {
    let mut b = String::new();
    let how = match (x.exit_code, x.signal, x.timed_out) {
        (_, _, true) => "timed out".to_string(),
        (Some(c), _, _) => format!("exit status {c}"),
        (None, Some(sig), _) => format!("killed by signal {sig}"),
        _ => "ended".to_string(),
    };
    let _ = writeln!(
        b,
        "  `{}` (pid {}): {how} after {}",
        x.command.join(" "),
        x.pid,
        seconds(x.duration_s)
    );
    for (what, text) in [("stdout", &x.stdout), ("stderr", &x.stderr)] {
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(5)..];
        if !tail.is_empty() {
            let _ = writeln!(b, "  {what} (last {} lines):", tail.len());
            for l in tail {
                let _ = writeln!(b, "    {l}");
            }
        }
    }
    b
}

/// A TCP_RR result as text: rates, latency figures, threshold counts, errors,
/// then the latency histogram, bpftrace style: log2 buckets split at the
/// thresholds (200 and 400 ms by default), in milliseconds.
pub fn rr_text(r: &RrResult) -> String {
    let mut b = String::new();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let _ = write!(
        b,
        "tcp_rr to {}: {} stream{}, {}-byte requests, {}-byte responses, {} measured",
        r.target,
        r.streams,
        plural(r.streams),
        r.request_size,
        r.response_size,
        seconds(r.duration_s)
    );
    if r.warmup_s > 0.0 {
        let _ = write!(b, " after {} of warm-up", seconds(r.warmup_s));
    }
    b.push('\n');
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut tps = format!("{} ({:.1}/s", r.transactions, r.tps);
    if r.streams > 1 {
        let lo = r
            .tps_per_stream
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let hi = r.tps_per_stream.iter().copied().fold(0.0, f64::max);
        let _ = write!(tps, "; per stream {lo:.1} to {hi:.1}/s");
    }
    tps.push(')');
    rows.push(("transactions".into(), tps));
    if let Some(l) = &r.latency_us {
        rows.push((
            "latency ms".into(),
            format!(
                "min {}  mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                ms_f(l.min),
                ms_f(l.mean),
                ms_f(l.p50),
                ms_f(l.p90),
                ms_f(l.p99),
                ms_f(l.p99_9),
                ms_f(l.max)
            ),
        ));
    }
    for t in &r.thresholds {
        let at = ms(t.at_us);
        let share = if r.transactions > 0 {
            format!(" ({:.4} %)", t.count as f64 * 100.0 / r.transactions as f64)
        } else {
            String::new()
        };
        rows.push((format!("≥ {at} ms"), format!("{}{share}", t.count)));
    }
    let slow = r.slow.len() as u64 + r.slow_dropped;
    if let (true, Some(at)) = (slow > 0, r.thresholds.iter().map(|t| t.at_us).min()) {
        let mut v = format!("{slow} (≥ {} ms)", ms(at));
        if r.slow_dropped > 0 {
            let _ = write!(v, "; the first {} kept", r.slow.len());
        }
        rows.push(("slow records".into(), v));
    }
    if r.unfinished > 0 {
        rows.push((
            "unfinished".into(),
            format!("{} (no response at the end)", r.unfinished),
        ));
    }
    for e in &r.errors {
        rows.push((
            "error".into(),
            format!("stream {}: {}", e.stream, e.message),
        ));
    }
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in &rows {
        let pad = w - k.chars().count();
        let _ = writeln!(b, "{k}{:pad$}  {v}", "");
    }
    if !r.buckets.is_empty() {
        b.push_str("\n@latency_ms\n");
        render_buckets(&mut b, &latency_rows(r), ms);
    }
    b
}

/// A latency in µs as milliseconds, to the µs below 1 ms and to three
/// significant digits above: `0.256`, `1.02`, `131`, `200`.
fn ms(us: u64) -> String {
    let v = us as f64 / 1000.0;
    let s = match us {
        0..1_000 => format!("{v:.3}"),
        1_000..10_000 => format!("{v:.2}"),
        10_000..100_000 => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency figure (µs, fractional) as milliseconds: `0.045`, `2.31`, `206.3`.
fn ms_f(us: f64) -> String {
    let v = us / 1000.0;
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// The latency histogram's rows (µs): log2 buckets, split at the thresholds
/// so that the story's marks (200 ms, 400 ms) are edges. The fine buckets
/// never straddle a power of two, so those edges are exact; a threshold's
/// edge uses its exact count (transactions at or above it).
fn latency_rows(r: &RrResult) -> Vec<Bucket> {
    let fine: &[LatencyBucket] = &r.buckets;
    let (Some(first), Some(last)) = (fine.first(), fine.last()) else {
        return Vec::new();
    };
    let pow2_floor = |v: u64| {
        if v == 0 {
            0
        } else {
            1u64 << (63 - v.leading_zeros())
        }
    };
    let (lo, hi) = (
        pow2_floor(first.lo_us),
        last.hi_us.max(1).next_power_of_two(),
    );
    let mut edges: Vec<u64> = Vec::new();
    if lo == 0 {
        edges.push(0);
    }
    let mut p = lo.max(1);
    while p <= hi {
        edges.push(p);
        p = p.saturating_mul(2);
        if p == u64::MAX {
            break;
        }
    }
    edges.extend(
        r.thresholds
            .iter()
            .map(|t| t.at_us)
            .filter(|&t| t > lo && t < hi),
    );
    edges.sort_unstable();
    edges.dedup();
    // transactions at or above each edge, never growing along the edges
    let mut at_or_above: Vec<u64> = edges
        .iter()
        .map(|&e| match r.thresholds.iter().find(|t| t.at_us == e) {
            Some(t) => t.count,
            None => fine.iter().filter(|f| f.lo_us >= e).map(|f| f.count).sum(),
        })
        .collect();
    for i in 1..at_or_above.len() {
        at_or_above[i] = at_or_above[i].min(at_or_above[i - 1]);
    }
    let mut rows: Vec<Bucket> = edges
        .windows(2)
        .zip(at_or_above.windows(2))
        .map(|(e, n)| Bucket {
            low: e[0],
            high: e[1],
            count: n[0] - n[1],
        })
        .collect();
    // no empty rows before the first transaction or after the last
    while rows.last().is_some_and(|x| x.count == 0) {
        rows.pop();
    }
    let skip = rows.iter().take_while(|x| x.count == 0).count();
    rows.drain(..skip);
    rows
}

/// One histogram whose rows are all given (empty ones too), each bound
/// written by `bound`.
fn render_buckets(b: &mut String, rows: &[Bucket], bound: fn(u64) -> String) {
    let label = |x: &Bucket| format!("[{}, {})", bound(x.low), bound(x.high));
    let label_w = rows.iter().map(|x| label(x).len()).max().unwrap_or(0);
    let count_w = rows
        .iter()
        .map(|x| x.count.to_string().len())
        .max()
        .unwrap_or(1);
    let max = rows.iter().map(|x| x.count).max().unwrap_or(0).max(1);
    for x in rows {
        let bar = (u128::from(x.count) * u128::from(BAR_WIDTH) / u128::from(max)) as usize;
        let _ = writeln!(
            b,
            "{:<label_w$}  {:>count_w$} |{:<width$}|",
            label(x),
            x.count,
            "@".repeat(bar),
            width = BAR_WIDTH as usize,
        );
    }
    b.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::Entry;
    use crate::output::{Lost, ProbeInfo};

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn render(f: impl FnOnce(&mut TextOutput<Vec<u8>>) -> io::Result<()>) -> String {
        let mut o = TextOutput::new(Vec::new());
        f(&mut o).unwrap();
        String::from_utf8(o.into_inner()).unwrap()
    }

    /// A writer whose bytes stay readable after it is handed over.
    #[derive(Clone, Default)]
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `f` writes as data and as notes, at `verbosity`.
    fn notes(
        verbosity: Verbosity,
        f: impl FnOnce(&mut TextOutput<Vec<u8>>) -> io::Result<()>,
    ) -> (String, String) {
        let side = Shared::default();
        let mut o = TextOutput::with_notes(Vec::new(), Box::new(side.clone()), verbosity);
        f(&mut o).unwrap();
        let data = String::from_utf8(o.into_inner()).unwrap();
        let notes = String::from_utf8(side.0.borrow().clone()).unwrap();
        (data, notes)
    }

    fn counts() -> AggSnapshot {
        let e = |dev: &str, reason: &str, q: u64, n: u64| Entry {
            key: vec![
                ("dev".into(), s(dev)),
                ("reason".into(), s(reason)),
                ("queue".into(), Value::Uint(q)),
            ],
            value: EntryValue::Count { value: n },
        };
        AggSnapshot {
            name: "drops".into(),
            kind: AggKind::Count,
            keys: vec!["dev".into(), "reason".into(), "queue".into()],
            field: None,
            step: None,
            time_ns: false,
            entries: vec![
                e("mvt0", "FULL_RING", 3, 12040),
                e("eth0", "NO_SOCKET", 12, 7),
            ],
        }
    }

    fn hist() -> AggSnapshot {
        let b = |low, high, count| Bucket { low, high, count };
        AggSnapshot {
            name: "len".into(),
            kind: AggKind::Hist,
            keys: vec!["dev".into()],
            field: Some("len".into()),
            step: None,
            time_ns: false,
            entries: vec![
                Entry {
                    key: vec![("dev".into(), s("mvt0"))],
                    value: EntryValue::Hist {
                        buckets: vec![b(0, 1, 1), b(4, 8, 4), b(1024, 2048, 2)],
                        sum: 3000,
                    },
                },
                Entry {
                    key: vec![("dev".into(), s("eth0"))],
                    value: EntryValue::Hist {
                        buckets: vec![b(1 << 20, 1 << 21, 3)],
                        sum: 3 << 20,
                    },
                },
            ],
        }
    }

    #[test]
    fn count_table_is_aligned() {
        let out = render(|o| o.aggregation(&counts(), false));
        assert_eq!(
            out,
            "\
@drops
dev   reason     queue  count
mvt0  FULL_RING      3  12040
eth0  NO_SOCKET     12      7

"
        );
    }

    #[test]
    fn scalar_empty_and_delta() {
        let mut a = counts();
        a.keys.clear();
        for e in &mut a.entries {
            e.key.clear();
        }
        assert_eq!(render(|o| o.aggregation(&a, false)), "@drops: 12047\n");
        assert_eq!(
            render(|o| o.aggregation(&a, true)),
            "@drops (delta): 12047\n"
        );
        a.entries.clear();
        assert_eq!(render(|o| o.aggregation(&a, false)), "@drops: (empty)\n");
        let out = render(|o| o.aggregation(&counts(), true));
        assert!(out.starts_with("@drops (delta)\ndev "), "{out}");
    }

    #[test]
    fn histogram_fills_gaps_and_scales_bars() {
        let out = render(|o| o.aggregation(&hist(), false));
        let bar = |n: usize| format!("|{:<52}|", "@".repeat(n));
        let expected = [
            "@len".to_string(),
            "dev=mvt0".into(),
            format!("[0]         1 {}", bar(13)),
            format!("[1]         0 {}", bar(0)),
            format!("[2, 4)      0 {}", bar(0)),
            format!("[4, 8)      4 {}", bar(52)),
            format!("[8, 16)     0 {}", bar(0)),
            format!("[16, 32)    0 {}", bar(0)),
            format!("[32, 64)    0 {}", bar(0)),
            format!("[64, 128)   0 {}", bar(0)),
            format!("[128, 256)  0 {}", bar(0)),
            format!("[256, 512)  0 {}", bar(0)),
            format!("[512, 1K)   0 {}", bar(0)),
            format!("[1K, 2K)    2 {}", bar(26)),
            String::new(),
            "dev=eth0".into(),
            format!("[1M, 2M)    3 {}", bar(52)),
            String::new(),
            String::new(),
        ]
        .join("\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn linear_gaps_and_labels() {
        let b = |low, high, count| Bucket { low, high, count };
        let filled = with_gaps(&[b(0, 10, 1), b(30, 40, 2)]);
        let lows: Vec<u64> = filled.iter().map(|x| x.low).collect();
        assert_eq!(lows, vec![0, 10, 20, 30]);
        // A long empty stretch is one row.
        let filled = with_gaps(&[b(0, 1, 1), b(1000, 1001, 2)]);
        assert_eq!(filled.len(), 3);
        assert_eq!(
            (filled[1].low, filled[1].high, filled[1].count),
            (1, 1000, 0)
        );
        assert_eq!(label(&b(1 << 63, u64::MAX, 1), &compact), "[8E, 16E)");
        assert_eq!(compact(3 << 30), "3G");
        assert_eq!(compact(1000), "1000");
    }

    #[test]
    fn start_text_event_error_and_summary() {
        let info = StartInfo {
            about: crate::output::About::here(Some("drops.rhai"), None),
            duration_s: None,
            metrics: None,
            probes: vec![
                ProbeInfo {
                    name: "skb.drop".into(),
                    mechanism: "tp_btf/kfree_skb".into(),
                    feeds: "drops".into(),
                    carries: None,
                    fallbacks: vec![],
                },
                ProbeInfo {
                    name: "dev.rx".into(),
                    mechanism: "tracepoint net:netif_receive_skb".into(),
                    feeds: "events".into(),
                    carries: Some(vec!["len".into()]),
                    fallbacks: vec!["tp_btf/netif_receive_skb: disabled".into()],
                },
            ],
        };
        // inline (the REPL's screen): every reason
        assert_eq!(
            render(|o| o.start(&info)),
            "attached skb.drop via tp_btf/kfree_skb → drops; \
             dev.rx via tracepoint net:netif_receive_skb → events\n\
             dev.rx fell back: tp_btf/netif_receive_skb: disabled\n"
        );
        assert_eq!(
            notes(Verbosity::Normal, |o| o.start(&info)),
            (
                String::new(),
                "vprobe: attached skb.drop via tp_btf/kfree_skb → drops; \
                 dev.rx via tracepoint net:netif_receive_skb → events\n\
                 vprobe: dev.rx: 1 preferred mechanism does not work here (-v says why)\n"
                    .to_string()
            )
        );
        let (_, verbose) = notes(Verbosity::Verbose, |o| o.start(&info));
        assert!(
            verbose.ends_with(
                "\nvprobe: dev.rx fell back: tp_btf/netif_receive_skb: disabled\n\
                 vprobe: dev.rx events carry len\n"
            ),
            "{verbose}"
        );
        assert_eq!(
            notes(Verbosity::Quiet, |o| o.start(&info)),
            (String::new(), String::new())
        );
        // a script without probes: nothing to say
        let none = StartInfo {
            probes: vec![],
            ..info.clone()
        };
        assert_eq!(
            notes(Verbosity::Normal, |o| o.start(&none)),
            (String::new(), String::new())
        );
        // an error is said even when quiet; data stays on the data side
        assert_eq!(
            notes(Verbosity::Quiet, |o| {
                o.error("x.rhai:1:1: boom")?;
                o.note("workload rr ended")?;
                o.text("data")
            }),
            (
                "data\n".to_string(),
                "vprobe: error: x.rhai:1:1: boom\n".to_string()
            )
        );
        // one attach point feeding three aggregations is named once
        let three = StartInfo {
            duration_s: Some(6.0),
            probes: ["drops", "ring", "events"]
                .map(|feeds| ProbeInfo {
                    name: "macvtap.drop".into(),
                    mechanism: "tp_btf/kfree_skb".into(),
                    feeds: feeds.into(),
                    carries: None,
                    fallbacks: vec!["fentry/x: no".into(), "kprobe/x: no".into()],
                })
                .to_vec(),
            ..info.clone()
        };
        assert_eq!(
            notes(Verbosity::Normal, |o| o.start(&three)).1,
            "vprobe: attached macvtap.drop via tp_btf/kfree_skb → drops, ring, events; running for 6.0s\n\
             vprobe: macvtap.drop: 2 preferred mechanisms do not work here (-v says why)\n"
        );
        let out = render(|o| {
            o.text("hello")?;
            o.event(&Emitted {
                probe: "skb.drop".into(),
                ts_ns: Some(1),
                cpu: Some(0),
                fields: vec![("dev".into(), s("mvt0")), ("len".into(), Value::Uint(60))],
            })?;
            o.error("drops.rhai:3: boom")
        });
        assert_eq!(
            out,
            "hello\nskb.drop dev=mvt0 len=60\nerror: drops.rhai:3: boom\n"
        );

        let mut reports = serde_json::Map::new();
        reports.insert("rr_tps".into(), serde_json::json!(41234.5));
        reports.insert("peer".into(), serde_json::json!("10.0.0.2"));
        let summary = Summary {
            about: crate::output::About::here(None, None),
            captures: vec![],
            duration_s: 12.04,
            maps: vec![counts()],
            lost: Lost {
                events: 0,
                map_full: 2,
                callback_errors: 0,
                ..Lost::default()
            },
            probes: info.probes.clone(),
            printed_at_end: vec![],
            narrated: false,
            reports,
            workloads: Default::default(),
            monotonic_start_ns: 0,
            delivery: None,
        };
        let out = render(|o| o.summary(&summary));
        assert_eq!(
            out,
            "
@drops
dev   reason     queue  count
mvt0  FULL_RING      3  12040
eth0  NO_SOCKET     12      7

peer:   10.0.0.2
rr_tps: 41234.5

lost: events=0 captures=0 map_full=2 missed=0 callback_errors=0
duration: 12.0s
"
        );
        let quiet = Summary {
            lost: Lost::default(),
            reports: serde_json::Map::new(),
            workloads: Default::default(),
            monotonic_start_ns: 0,
            ..summary
        };
        assert!(render(|o| o.summary(&quiet)).ends_with("      7\n\nduration: 12.0s\n"));
        let bare = Summary {
            maps: vec![],
            ..quiet
        };
        assert_eq!(render(|o| o.summary(&bare)), "\nduration: 12.0s\n");
        // what on_end already printed is not repeated
        let shown = Summary {
            printed_at_end: vec!["drops".into()],
            ..bare_with(counts())
        };
        assert_eq!(render(|o| o.summary(&shown)), "\nduration: 12.0s\n");
        // events that never reached a callback are said
        let late = Summary {
            lost: Lost {
                undelivered: 40,
                ..Lost::default()
            },
            ..bare_with(counts())
        };
        assert!(render(|o| o.summary(&late)).ends_with(
            "lost: events=0 captures=0 map_full=0 missed=0 callback_errors=0 undelivered=40\nduration: 12.0s\n"
        ));
    }

    #[test]
    fn loss_lines_are_notes() {
        let report = LossReport {
            elapsed_s: 3.04,
            new: Lost {
                events: 120,
                map_full: 4,
                callback_errors: 1,
                ..Lost::default()
            },
            total: Lost {
                events: 300,
                map_full: 4,
                callback_errors: 21,
                ..Lost::default()
            },
            full_maps: [("drops".to_string(), 4)].into_iter().collect(),
        };
        let diag = Shared::default();
        let mut o = TextOutput::with_notes(Vec::new(), Box::new(diag.clone()), Verbosity::Quiet);
        o.loss(&report).unwrap();
        assert!(o.into_inner().is_empty(), "the loss line went to stdout");
        assert_eq!(
            String::from_utf8(diag.0.borrow().clone()).unwrap(),
            "vprobe: lost at 3.0s: 120 events (ring buffer full), 4 updates of `drops` \
             (its map is full: new keys are not counted), 1 failed callback; \
             so far events=300 captures=0 map_full=4 missed=0 callback_errors=21\n"
        );
        // without one, it goes with the rest (the REPL shows it above the prompt)
        assert!(render(|o| o.loss(&report)).starts_with("lost at 3.0s: 120 events"));
    }

    #[test]
    fn control_characters_in_names_and_values_are_escaped() {
        let mut agg = counts();
        agg.name = "dr\x1b[2Jops".into();
        agg.entries[0].key[0].1 = s("mv\x1bt0");
        let out = render(|o| o.aggregation(&agg, false));
        assert!(!out.contains('\x1b'), "{out:?}");
        assert!(out.starts_with("@dr\\u{1b}[2Jops\n"), "{out:?}");
        assert!(out.contains("mv\\u{1b}t0"), "{out:?}");
        let out = render(|o| {
            o.event(&Emitted {
                probe: "skb.drop".into(),
                ts_ns: None,
                cpu: None,
                fields: vec![("dev".into(), s("a\nb"))],
            })
        });
        assert_eq!(out, "skb.drop dev=a\\nb\n");
    }

    // Regression: reports were dumped as JSON (`correlation: {"drops": …}`,
    // `timeline: {"macvtap drops": [426 values]}`) and repeated what the
    // script's on_end had printed (`match: true` twice).
    #[test]
    fn reports_are_lines_and_not_repeated_after_the_script_told_them() {
        let mut reports = serde_json::Map::new();
        reports.insert(
            "correlation".into(),
            serde_json::json!({"drops": 217, "slow": 172}),
        );
        reports.insert("match".into(), serde_json::json!(true));
        reports.insert(
            "timeline".into(),
            serde_json::json!({"macvtap drops": (0..217).collect::<Vec<u64>>()}),
        );
        reports.insert("peers".into(), serde_json::json!(["a", "b"]));
        let told = Summary {
            reports,
            ..bare_with(counts())
        };
        let out = render(|o| {
            o.summary(&Summary {
                maps: vec![],
                ..told.clone()
            })
        });
        assert_eq!(
            out,
            "
correlation.drops:      217
correlation.slow:       172
match:                  true
peers:                  a, b
timeline.macvtap drops: 217 values

duration: 12.0s
"
        );
        let narrated = Summary {
            maps: vec![],
            narrated: true,
            ..told
        };
        assert_eq!(render(|o| o.summary(&narrated)), "\nduration: 12.0s\n");
    }

    // Regression: print_delta printed `(empty)` on every tick.
    #[test]
    fn an_empty_delta_is_said_once_until_it_changes() {
        let mut empty = counts();
        empty.entries.clear();
        let mut o = TextOutput::new(Vec::new());
        for a in [&empty, &empty, &counts(), &empty, &empty] {
            o.aggregation(a, true).unwrap();
        }
        let out = String::from_utf8(o.into_inner()).unwrap();
        assert_eq!(out.matches("@drops (delta): (empty)").count(), 2, "{out}");
        assert_eq!(out.matches("FULL_RING").count(), 1, "{out}");
        // a full print says it every time: it was asked for
        let out = render(|o| {
            o.aggregation(&empty, false)?;
            o.aggregation(&empty, false)
        });
        assert_eq!(out, "@drops: (empty)\n@drops: (empty)\n");
    }

    fn bare_with(agg: AggSnapshot) -> Summary {
        Summary {
            about: crate::output::About::here(None, None),
            captures: vec![],
            duration_s: 12.04,
            maps: vec![agg],
            lost: Lost::default(),
            probes: vec![],
            printed_at_end: vec![],
            narrated: false,
            reports: serde_json::Map::new(),
            workloads: Default::default(),
            monotonic_start_ns: 0,
            delivery: None,
        }
    }

    fn rr_result() -> RrResult {
        use vprobe_load::latency::{LatencySummary, ThresholdCount};
        use vprobe_load::tcp_rr::{SlowTransaction, StreamError};
        let fine = |lo_us, hi_us, count| LatencyBucket {
            lo_us,
            hi_us,
            count,
        };
        RrResult {
            target: "198.51.100.1:12866".into(),
            streams: 2,
            request_size: 1,
            response_size: 1,
            duration_s: 10.0,
            warmup_s: 1.0,
            transactions: 1000,
            tps: 100.0,
            transactions_per_stream: vec![400, 600],
            tps_per_stream: vec![40.0, 60.0],
            latency_us: Some(LatencySummary {
                min: 30.0,
                mean: 440.125,
                p50: 35.0,
                p90: 38.0,
                p99: 60.0,
                p99_9: 205000.0,
                max: 410000.0,
            }),
            thresholds: vec![
                ThresholdCount {
                    at_us: 200_000,
                    count: 2,
                },
                ThresholdCount {
                    at_us: 400_000,
                    count: 1,
                },
            ],
            unfinished: 0,
            errors: vec![StreamError {
                stream: 1,
                message: "Connection reset by peer after 600 transactions".into(),
            }],
            buckets: vec![
                fine(32, 36, 900),
                fine(36, 40, 90),
                fine(56, 60, 8),
                fine(196_608, 212_992, 1),
                fine(393_216, 425_984, 1),
            ],
            slow: [(205_000, 1), (410_000, 0)]
                .into_iter()
                .map(|(us, stream)| SlowTransaction {
                    stream,
                    start_ns: 5_000_000_000 + us * 7,
                    end_ns: 5_000_000_000 + us * 8,
                    latency_us: us,
                    local: format!("198.51.100.2:4000{stream}"),
                    remote: "198.51.100.1:12866".into(),
                })
                .collect(),
            slow_dropped: 0,
        }
    }

    #[test]
    fn rr_result_as_text() {
        let out = rr_text(&rr_result());
        let bar = |n: usize| format!("|{:<52}|", "@".repeat(n));
        let mut expected = vec![
            "tcp_rr to 198.51.100.1:12866: 2 streams, 1-byte requests, 1-byte responses, \
             10.0s measured after 1.0s of warm-up"
                .to_string(),
            "transactions  1000 (100.0/s; per stream 40.0 to 60.0/s)".into(),
            "latency ms    min 0.030  mean 0.440  p50 0.035  p90 0.038  p99 0.060  p99.9 205.0  max 410.0".into(),
            "≥ 200 ms      2 (0.2000 %)".into(),
            "≥ 400 ms      1 (0.1000 %)".into(),
            "slow records  2 (≥ 200 ms)".into(),
            "error         stream 1: Connection reset by peer after 600 transactions".into(),
            String::new(),
            "@latency_ms".into(),
            format!("[0.032, 0.064)  998 {}", bar(52)),
        ];
        // the empty log2 buckets between are shown, as bpftrace does, and
        // the thresholds are edges: 200 and 400 ms, exact counts
        for l in [
            "[0.064, 0.128)",
            "[0.128, 0.256)",
            "[0.256, 0.512)",
            "[0.512, 1.02)",
            "[1.02, 2.05)",
            "[2.05, 4.1)",
            "[4.1, 8.19)",
            "[8.19, 16.4)",
            "[16.4, 32.8)",
            "[32.8, 65.5)",
            "[65.5, 131)",
            "[131, 200)",
        ] {
            expected.push(format!("{l:<14}    0 {}", bar(0)));
        }
        expected.extend([
            format!("[200, 262)        1 {}", bar(0)),
            format!("[262, 400)        0 {}", bar(0)),
            format!("[400, 524)        1 {}", bar(0)),
            String::new(),
            String::new(),
        ]);
        assert_eq!(out, expected.join("\n"));
        // records over the cap are counted, and said to be missing
        let mut capped = rr_result();
        capped.slow_dropped = 3;
        assert!(
            rr_text(&capped).contains("\nslow records  5 (≥ 200 ms); the first 2 kept\n"),
            "{}",
            rr_text(&capped)
        );
        // the rows keep every count
        let rows = latency_rows(&rr_result());
        assert_eq!(rows.iter().map(|x| x.count).sum::<u64>(), 1000);
        let mut from_zero = rr_result();
        from_zero.buckets = vec![LatencyBucket {
            lo_us: 0,
            hi_us: 1,
            count: 5,
        }];
        from_zero.thresholds.clear();
        let rows = latency_rows(&from_zero);
        assert_eq!((rows[0].low, rows[0].high, rows[0].count), (0, 1, 5));
    }

    // Regression: the histogram's tail was in µs with K suffixes
    // (`[128K, 256K)`) where the story is 200 ms; a threshold inside a fine
    // bucket splits it with the exact count.
    #[test]
    fn latency_rows_split_at_a_threshold_inside_a_bucket() {
        let mut r = rr_result();
        r.buckets = vec![LatencyBucket {
            lo_us: 196_608,
            hi_us: 212_992,
            count: 10,
        }];
        r.thresholds = vec![vprobe_load::latency::ThresholdCount {
            at_us: 200_000,
            count: 4,
        }];
        let rows: Vec<(String, u64)> = latency_rows(&r)
            .iter()
            .map(|x| (format!("{}-{}", ms(x.low), ms(x.high)), x.count))
            .collect();
        assert_eq!(
            rows,
            [("131-200".to_string(), 6), ("200-262".to_string(), 4)]
        );
        assert_eq!(ms(1_024), "1.02");
        assert_eq!(ms(4_096), "4.1");
        assert_eq!(ms(200_000), "200");
        assert_eq!(ms(100), "0.1");
        assert_eq!(ms_f(206_307.3), "206.3");
    }

    #[test]
    fn rr_without_transactions() {
        let mut r = rr_result();
        r.streams = 1;
        r.transactions = 0;
        r.latency_us = None;
        r.buckets.clear();
        r.errors.clear();
        r.slow.clear();
        r.unfinished = 1;
        r.warmup_s = 0.0;
        for t in &mut r.thresholds {
            t.count = 0;
        }
        let out = rr_text(&r);
        assert!(out.starts_with("tcp_rr to 198.51.100.1:12866: 1 stream, 1-byte requests, 1-byte responses, 10.0s measured\ntransactions  0 (100.0/s)\n≥ 200 ms      0\n"), "{out}");
        assert!(
            out.ends_with("unfinished    1 (no response at the end)\n"),
            "{out}"
        );
    }

    // Regression: a histogram of a time span in ns read `[128M, 256M)`
    // where the story is "200 ms".
    #[test]
    fn a_histogram_of_nanoseconds_reads_in_time_units() {
        let b = |low, high, count| Bucket { low, high, count };
        let mut agg = hist();
        agg.time_ns = true;
        agg.entries.truncate(1);
        agg.entries[0].value = EntryValue::Hist {
            buckets: vec![b(65_536, 131_072, 900), b(134_217_728, 268_435_456, 3)],
            sum: 0,
        };
        let out = render(|o| o.aggregation(&agg, false));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "@len (ms)");
        assert!(lines[2].starts_with("[0.065, 0.131)  900 "), "{out}");
        let last = lines.iter().rev().find(|l| !l.is_empty()).unwrap();
        assert!(last.starts_with("[134, 268)        3 "), "{out}");
        agg.entries[0].value = EntryValue::Hist {
            buckets: vec![b(2_048, 4_096, 5)],
            sum: 0,
        };
        let out = render(|o| o.aggregation(&agg, false));
        assert!(
            out.starts_with("@len (µs)\ndev=mvt0\n[2.05, 4.1)  5 "),
            "{out}"
        );
    }

    /// A reader gone away must surface as an error (the caller ends quietly on BrokenPipe).
    #[test]
    fn write_errors_surface() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut o = TextOutput::new(Closed);
        assert_eq!(o.text("x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        // The buffer does not grow after a failure.
        assert!(o.buf.is_empty());
    }
}
