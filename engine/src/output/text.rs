//! Human output: bpftrace-like, with counts as aligned tables.
//!
//! Every call renders into a buffer, writes it in one piece and flushes: output is
//! streamed live, often into a pipe.

use std::fmt::Write as _;
use std::io::{self, Write};

use vprobe_load::exec::ExecResult;
use vprobe_load::latency::LatencyBucket;
use vprobe_load::tcp_rr::RrResult;

use super::{Output, StartInfo, Summary};
use crate::agg::{AggKind, AggSnapshot, Bucket, EntryValue};
use crate::value::Value;

/// Width of a histogram bar at its largest bucket (bpftrace's).
const BAR_WIDTH: u64 = 52;

/// A zero gap longer than this many buckets is shown as one row.
const MAX_GAP_ROWS: usize = 32;

/// Writes human-readable text.
pub struct TextOutput<W: Write> {
    w: W,
    buf: String,
}

impl<W: Write> TextOutput<W> {
    /// Writes to `w`.
    pub fn new(w: W) -> Self {
        Self {
            w,
            buf: String::new(),
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
}

impl<W: Write> Output for TextOutput<W> {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        let b = &mut self.buf;
        let n = info.probes.len();
        let _ = write!(b, "Attached {n} probe{}", if n == 1 { "" } else { "s" });
        for (i, p) in info.probes.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            let _ = write!(b, "{sep}{} ({}) → {}", p.name, p.mechanism, p.feeds);
        }
        b.push('\n');
        // several instances of one attach point fall back the same way: say it once
        let mut said: Vec<(&str, &str)> = Vec::new();
        for p in &info.probes {
            for f in &p.fallbacks {
                if said.contains(&(p.name.as_str(), f.as_str())) {
                    continue;
                }
                said.push((&p.name, f));
                let _ = writeln!(b, "  {} fell back: {f}", p.name);
            }
        }
        match info.duration_s {
            Some(d) => {
                let _ = writeln!(b, "Running for {}; Ctrl-C to end.", seconds(d));
            }
            None => b.push_str("Ctrl-C to end.\n"),
        }
        self.emit()
    }

    fn aggregation(&mut self, agg: &AggSnapshot, delta: bool) -> io::Result<()> {
        render_agg(&mut self.buf, agg, delta);
        self.emit()
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        self.buf.push_str(text);
        self.buf.push('\n');
        self.emit()
    }

    fn event(&mut self, probe: &str, fields: &[(String, Value)]) -> io::Result<()> {
        self.buf.push_str(probe);
        for (k, v) in fields {
            let _ = write!(self.buf, " {k}={v}");
        }
        self.buf.push('\n');
        self.emit()
    }

    fn error(&mut self, message: &str) -> io::Result<()> {
        let _ = writeln!(self.buf, "error: {message}");
        self.emit()
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
        for (k, v) in &s.reports {
            match v {
                serde_json::Value::String(s) => {
                    let _ = writeln!(b, "{k}: {s}");
                }
                v => {
                    let _ = writeln!(b, "{k}: {}", brief(v));
                }
            }
        }
        // Keep the trailer off the last rows (which may already end with a blank line).
        if b.len() > 1 && !b.ends_with("\n\n") {
            b.push('\n');
        }
        for c in &s.captures {
            let _ = writeln!(b, "capture: {} packets written to {}", c.packets, c.path);
        }
        let l = &s.lost;
        if l.events != 0
            || l.map_full != 0
            || l.callback_errors != 0
            || l.captures != 0
            || l.missed != 0
        {
            let _ = writeln!(
                b,
                "lost: events={} captures={} map_full={} missed={} callback_errors={}",
                l.events, l.captures, l.map_full, l.missed, l.callback_errors
            );
        }
        if l.rate_limited != 0 {
            let _ = writeln!(b, "held back by rate limits: {}", l.rate_limited);
        }
        let _ = writeln!(b, "duration: {}", seconds(s.duration_s));
        self.emit()
    }
}

/// A report value on one line: long arrays are summed up by their length
/// (JSON output keeps them whole).
fn brief(v: &serde_json::Value) -> String {
    const LONG: usize = 16;
    match v {
        serde_json::Value::Array(a) if a.len() > LONG => format!("[{} values]", a.len()),
        serde_json::Value::Object(o) => {
            let fields: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{k:?}: {}", brief(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        v => v.to_string(),
    }
}

/// `12.0s`.
fn seconds(s: f64) -> String {
    format!("{s:.1}s")
}

/// One aggregation: a one-line value, a table, or histograms. Multi-line
/// renderings end with a blank line.
fn render_agg(b: &mut String, agg: &AggSnapshot, delta: bool) {
    let title = if delta {
        format!("@{} (delta)", agg.name)
    } else {
        format!("@{}", agg.name)
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
        AggKind::Hist => {
            let _ = writeln!(b, "{title}");
            render_hists(b, agg);
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
                .map(|i| e.key.get(i).map(|(_, v)| v.to_string()).unwrap_or_default())
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

/// One histogram per key, bpftrace style; columns aligned across keys, each bar
/// scaled to its own key's largest bucket.
fn render_hists(b: &mut String, agg: &AggSnapshot) {
    let hists: Vec<(String, Vec<Bucket>)> = agg
        .entries
        .iter()
        .map(|e| {
            let key = e
                .key
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let buckets = match &e.value {
                EntryValue::Hist { buckets } => with_gaps(buckets),
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

/// `[4]` for a one-value bucket, else `[1K, 2K)`.
fn label(x: &Bucket) -> String {
    if x.high == x.low.wrapping_add(1) {
        format!("[{}]", compact(x.low))
    } else {
        format!("[{}, {})", compact(x.low), compact(x.high))
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
/// then the latency histogram in log2 buckets (µs), bpftrace style.
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
            "latency µs".into(),
            format!(
                "min {:.1}  mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                l.min, l.mean, l.p50, l.p90, l.p99, l.p99_9, l.max
            ),
        ));
    }
    for t in &r.thresholds {
        let at = vprobe_time::duration::format(std::time::Duration::from_micros(t.at_us));
        let share = if r.transactions > 0 {
            format!(" ({:.4} %)", t.count as f64 * 100.0 / r.transactions as f64)
        } else {
            String::new()
        };
        rows.push((format!("≥ {at}"), format!("{}{share}", t.count)));
    }
    let slow = r.slow.len() as u64 + r.slow_dropped;
    if let (true, Some(at)) = (slow > 0, r.thresholds.iter().map(|t| t.at_us).min()) {
        let at = vprobe_time::duration::format(std::time::Duration::from_micros(at));
        let mut v = format!("{slow} (≥ {at})");
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
        b.push_str("\n@latency_us\n");
        render_buckets(&mut b, &log2_buckets(&r.buckets));
    }
    b
}

/// Merges log-linear latency buckets into log2 ones (`[0]`, `[1]`, `[2, 4)`, …);
/// the fine buckets never straddle a power of two.
fn log2_buckets(fine: &[LatencyBucket]) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for f in fine {
        let (low, high) = match f.lo_us {
            0 => (0, 1),
            v => {
                let low = 1u64 << (63 - v.leading_zeros());
                (low, low.saturating_mul(2))
            }
        };
        match out.last_mut() {
            Some(x) if x.low == low => x.count += f.count,
            _ => out.push(Bucket {
                low,
                high,
                count: f.count,
            }),
        }
    }
    out
}

/// One histogram, with the empty buckets between non-empty ones as zero rows.
fn render_buckets(b: &mut String, buckets: &[Bucket]) {
    let rows = with_gaps(buckets);
    let label_w = rows.iter().map(|x| label(x).len()).max().unwrap_or(0);
    let count_w = rows
        .iter()
        .map(|x| x.count.to_string().len())
        .max()
        .unwrap_or(1);
    let max = rows.iter().map(|x| x.count).max().unwrap_or(0).max(1);
    for x in &rows {
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
            entries: vec![
                Entry {
                    key: vec![("dev".into(), s("mvt0"))],
                    value: EntryValue::Hist {
                        buckets: vec![b(0, 1, 1), b(4, 8, 4), b(1024, 2048, 2)],
                    },
                },
                Entry {
                    key: vec![("dev".into(), s("eth0"))],
                    value: EntryValue::Hist {
                        buckets: vec![b(1 << 20, 1 << 21, 3)],
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
        assert_eq!(label(&b(1 << 63, u64::MAX, 1)), "[8E, 16E)");
        assert_eq!(compact(3 << 30), "3G");
        assert_eq!(compact(1000), "1000");
    }

    #[test]
    fn start_text_event_error_and_summary() {
        let info = StartInfo {
            schema: 1,
            kernel: "6.18".into(),
            script: "drops.rhai".into(),
            duration_s: None,
            probes: vec![
                ProbeInfo {
                    name: "skb.drop".into(),
                    mechanism: "tp_btf/kfree_skb".into(),
                    feeds: "drops".into(),
                    fallbacks: vec![],
                },
                ProbeInfo {
                    name: "dev.rx".into(),
                    mechanism: "tracepoint net:netif_receive_skb".into(),
                    feeds: "events".into(),
                    fallbacks: vec!["tp_btf/netif_receive_skb: disabled".into()],
                },
            ],
        };
        assert_eq!(
            render(|o| o.start(&info)),
            "Attached 2 probes: skb.drop (tp_btf/kfree_skb) → drops, \
             dev.rx (tracepoint net:netif_receive_skb) → events\n  \
             dev.rx fell back: tp_btf/netif_receive_skb: disabled\nCtrl-C to end.\n"
        );
        let out = render(|o| {
            o.text("hello")?;
            o.event(
                "skb.drop",
                &[("dev".into(), s("mvt0")), ("len".into(), Value::Uint(60))],
            )?;
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
            reports,
            workloads: Default::default(),
            monotonic_start_ns: 0,
        };
        let out = render(|o| o.summary(&summary));
        assert_eq!(
            out,
            "
@drops
dev   reason     queue  count
mvt0  FULL_RING      3  12040
eth0  NO_SOCKET     12      7

peer: 10.0.0.2
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
    }

    fn bare_with(agg: AggSnapshot) -> Summary {
        Summary {
            captures: vec![],
            duration_s: 12.04,
            maps: vec![agg],
            lost: Lost::default(),
            probes: vec![],
            printed_at_end: vec![],
            reports: serde_json::Map::new(),
            workloads: Default::default(),
            monotonic_start_ns: 0,
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
                p50: 35.5,
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
            "latency µs    min 30.0  mean 440.1  p50 35.5  p90 38.0  p99 60.0  p99.9 205000.0  max 410000.0".into(),
            "≥ 200ms       2 (0.2000 %)".into(),
            "≥ 400ms       1 (0.1000 %)".into(),
            "slow records  2 (≥ 200ms)".into(),
            "error         stream 1: Connection reset by peer after 600 transactions".into(),
            String::new(),
            "@latency_us".into(),
            format!("[32, 64)      998 {}", bar(52)),
        ];
        // the empty log2 buckets between are shown, as bpftrace does
        for l in [
            "[64, 128)",
            "[128, 256)",
            "[256, 512)",
            "[512, 1K)",
            "[1K, 2K)",
            "[2K, 4K)",
        ]
        .into_iter()
        .chain([
            "[4K, 8K)",
            "[8K, 16K)",
            "[16K, 32K)",
            "[32K, 64K)",
            "[64K, 128K)",
        ]) {
            expected.push(format!("{l:<12}    0 {}", bar(0)));
        }
        expected.extend([
            format!("[128K, 256K)    1 {}", bar(0)),
            format!("[256K, 512K)    1 {}", bar(0)),
            String::new(),
        ]);
        expected.push(String::new());
        assert_eq!(out, expected.join("\n"));
        // records over the cap are counted, and said to be missing
        let mut capped = rr_result();
        capped.slow_dropped = 3;
        assert!(
            rr_text(&capped).contains("\nslow records  5 (≥ 200ms); the first 2 kept\n"),
            "{}",
            rr_text(&capped)
        );
        // merging keeps every count
        let merged = log2_buckets(&rr_result().buckets);
        assert_eq!(merged.iter().map(|x| x.count).sum::<u64>(), 1000);
        assert_eq!(
            log2_buckets(&[LatencyBucket {
                lo_us: 0,
                hi_us: 1,
                count: 5
            }])[0]
                .high,
            1
        );
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
        assert!(out.starts_with("tcp_rr to 198.51.100.1:12866: 1 stream, 1-byte requests, 1-byte responses, 10.0s measured\ntransactions  0 (100.0/s)\n≥ 200ms       0\n"), "{out}");
        assert!(
            out.ends_with("unfinished    1 (no response at the end)\n"),
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
