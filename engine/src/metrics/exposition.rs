//! The two text formats Prometheus scrapes, written from one model of metric
//! families: the classic text format (version 0.0.4, what `promtool check
//! metrics` reads) and OpenMetrics 1.0 (what Prometheus asks for first).
//!
//! They differ in small ways that matter to parsers: a counter's family is
//! named `x_total` in the text format and `x` in OpenMetrics (its samples are
//! `x_total` in both); OpenMetrics has `info` families, `# UNIT` and a final
//! `# EOF`, and escapes `"` in help text.

use std::fmt::Write;

/// A text format of the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a non-zero quality at least as high
    /// as the text format's, else the text format (also for no header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut open = None::<f32>;
        let mut text = None::<f32>;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some(v) = p.strip_prefix("q=") {
                    q = v.parse().unwrap_or(0.0);
                }
            }
            let best = |slot: &mut Option<f32>| *slot = Some(slot.map_or(q, |s| s.max(q)));
            match media.as_str() {
                "application/openmetrics-text" => best(&mut open),
                "text/plain" => best(&mut text),
                _ => {}
            }
        }
        match open {
            Some(o) if o > 0.0 && o >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count: samples `<name>_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Buckets, sum and count: samples `<name>_bucket`, `_sum`, `_count`.
    Histogram,
    /// Labels describing something, value 1: samples `<name>_info`.
    Info,
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer (counts), written exactly.
    Uint(u64),
    /// Any other number.
    Float(f64),
    /// A histogram: (upper bound `le`, cumulative count) ascending, without
    /// `+Inf` (written from `count`), the sum of the observed values, and
    /// the number of observations.
    Histogram {
        /// (le, events ≤ le), ascending.
        buckets: Vec<(f64, u64)>,
        /// Sum of the observed values.
        sum: f64,
        /// Observations.
        count: u64,
    },
}

/// One series: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// (name, value) pairs; names already valid label names.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: Value,
}

/// A metric family: one name, one type, its series.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The family's name: a valid metric name without the `_total`/`_info`
    /// suffix of its samples; ends in `_<unit>` when there is a unit.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// Unit (`seconds`, `bytes`), if known.
    pub unit: Option<String>,
    /// Its type.
    pub kind: Kind,
    /// Its series.
    pub series: Vec<Series>,
}

/// Writes `families` in `format` into `out` (appended).
pub fn encode(families: &[Family], format: Format, out: &mut String) {
    for f in families {
        let sample = match f.kind {
            Kind::Counter => format!("{}_total", f.name),
            Kind::Info => format!("{}_info", f.name),
            Kind::Gauge | Kind::Histogram => f.name.clone(),
        };
        match format {
            Format::Text => {
                // the text format names a counter's family by its samples, and
                // has no info type: an info family is a gauge of 1s
                let type_name = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge | Kind::Info => "gauge",
                    Kind::Histogram => "histogram",
                };
                let _ = writeln!(out, "# HELP {sample} {}", escape_help(&f.help, false));
                let _ = writeln!(out, "# TYPE {sample} {type_name}");
            }
            Format::OpenMetrics => {
                let type_name = match f.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram => "histogram",
                    Kind::Info => "info",
                };
                let _ = writeln!(out, "# TYPE {} {type_name}", f.name);
                if let Some(u) = &f.unit {
                    let _ = writeln!(out, "# UNIT {} {u}", f.name);
                }
                let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help, true));
            }
        }
        for s in &f.series {
            match &s.value {
                Value::Uint(v) => line(out, &sample, &s.labels, None, &v.to_string()),
                Value::Float(v) => line(out, &sample, &s.labels, None, &float(*v)),
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    let bucket = format!("{sample}_bucket");
                    for (le, n) in buckets {
                        line(out, &bucket, &s.labels, Some(&float(*le)), &n.to_string());
                    }
                    line(out, &bucket, &s.labels, Some("+Inf"), &count.to_string());
                    line(out, &format!("{sample}_sum"), &s.labels, None, &float(*sum));
                    line(
                        out,
                        &format!("{sample}_count"),
                        &s.labels,
                        None,
                        &count.to_string(),
                    );
                }
            }
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

fn line(out: &mut String, name: &str, labels: &[(String, String)], le: Option<&str>, v: &str) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let all = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(le.map(|le| ("le", le)));
        for (k, v) in all {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(v, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(v);
    out.push('\n');
}

/// A number as both formats write it: integers without a fraction, `+Inf`,
/// `-Inf`, `NaN`; others rounded to 15 significant digits, so that a scaled
/// bound reads `0.000000003`, not `0.0000000030000000000000004`.
pub fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let rounded: f64 = format!("{v:.14e}").parse().unwrap_or(v);
        format!("{rounded}")
    }
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text on one line; OpenMetrics also escapes `"`.
fn escape_help(v: &str, quotes: bool) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '"' if quotes => s.push_str("\\\""),
            c => s.push(c),
        }
    }
    s
}

/// A valid metric name from `s`: characters outside `[a-zA-Z0-9_]` become
/// `_` (colons are left to recording rules), and a leading digit gets a `_`.
pub fn metric_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A valid label name from `s`, as [`metric_name`]; names starting with `__`
/// (reserved for Prometheus) and `le` (a histogram's bound) get a `key_` prefix.
pub fn label_name(s: &str) -> String {
    let out = metric_name(s);
    if out.starts_with("__") || out == "le" {
        format!("key_{}", out.trim_start_matches('_'))
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families() -> Vec<Family> {
        vec![
            Family {
                name: "vprobe_drops".into(),
                help: "events counted into `drops` (\"x\")".into(),
                unit: None,
                kind: Kind::Counter,
                series: vec![Series {
                    labels: vec![
                        ("dev".into(), "mvt0".into()),
                        ("reason".into(), "a\"b\\c\nd".into()),
                    ],
                    value: Value::Uint(12),
                }],
            },
            Family {
                name: "vprobe_rtt_seconds".into(),
                help: "rtt".into(),
                unit: Some("seconds".into()),
                kind: Kind::Histogram,
                series: vec![Series {
                    labels: vec![],
                    value: Value::Histogram {
                        buckets: vec![(0.0, 0), (0.5, 2)],
                        sum: 1.25,
                        count: 3,
                    },
                }],
            },
            Family {
                name: "vprobe_probe".into(),
                help: "an attached probe".into(),
                unit: None,
                kind: Kind::Info,
                series: vec![Series {
                    labels: vec![("probe".into(), "skb.drop".into())],
                    value: Value::Uint(1),
                }],
            },
        ]
    }

    #[test]
    fn text_format() {
        let mut s = String::new();
        encode(&families(), Format::Text, &mut s);
        assert_eq!(
            s,
            "# HELP vprobe_drops_total events counted into `drops` (\"x\")\n\
             # TYPE vprobe_drops_total counter\n\
             vprobe_drops_total{dev=\"mvt0\",reason=\"a\\\"b\\\\c\\nd\"} 12\n\
             # HELP vprobe_rtt_seconds rtt\n\
             # TYPE vprobe_rtt_seconds histogram\n\
             vprobe_rtt_seconds_bucket{le=\"0\"} 0\n\
             vprobe_rtt_seconds_bucket{le=\"0.5\"} 2\n\
             vprobe_rtt_seconds_bucket{le=\"+Inf\"} 3\n\
             vprobe_rtt_seconds_sum 1.25\n\
             vprobe_rtt_seconds_count 3\n\
             # HELP vprobe_probe_info an attached probe\n\
             # TYPE vprobe_probe_info gauge\n\
             vprobe_probe_info{probe=\"skb.drop\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_format() {
        let mut s = String::new();
        encode(&families(), Format::OpenMetrics, &mut s);
        assert_eq!(
            s,
            "# TYPE vprobe_drops counter\n\
             # HELP vprobe_drops events counted into `drops` (\\\"x\\\")\n\
             vprobe_drops_total{dev=\"mvt0\",reason=\"a\\\"b\\\\c\\nd\"} 12\n\
             # TYPE vprobe_rtt_seconds histogram\n\
             # UNIT vprobe_rtt_seconds seconds\n\
             # HELP vprobe_rtt_seconds rtt\n\
             vprobe_rtt_seconds_bucket{le=\"0\"} 0\n\
             vprobe_rtt_seconds_bucket{le=\"0.5\"} 2\n\
             vprobe_rtt_seconds_bucket{le=\"+Inf\"} 3\n\
             vprobe_rtt_seconds_sum 1.25\n\
             vprobe_rtt_seconds_count 3\n\
             # TYPE vprobe_probe info\n\
             # HELP vprobe_probe an attached probe\n\
             vprobe_probe_info{probe=\"skb.drop\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn negotiation_follows_accept() {
        // what Prometheus 2.x sends
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")),
            Format::Text
        );
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(metric_name("macvtap_drops"), "macvtap_drops");
        assert_eq!(metric_name("drops by-dev.x"), "drops_by_dev_x");
        assert_eq!(metric_name("9lives"), "_9lives");
        assert_eq!(metric_name("a:b"), "a_b");
        assert_eq!(metric_name(""), "_");
        assert_eq!(label_name("dev"), "dev");
        assert_eq!(label_name("le"), "key_le");
        assert_eq!(label_name("__name__"), "key_name__");
        assert_eq!(label_name("ring-size"), "ring_size");
    }

    #[test]
    fn numbers() {
        assert_eq!(float(127.0), "127");
        assert_eq!(float(0.2), "0.2");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(-3.0), "-3");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(3.0 * 1e-9), "0.000000003");
    }
}
