//! JSON Lines: one object per line, each with a `type` (`start`, `print`,
//! `text`, `event`, `error`, `loss`, `summary`) and the wall-clock `time` it was
//! written (RFC 3339, UTC, µs). `start` and `summary` carry the schema
//! version, host, kernel and script. One shape per type: docs/schema/ has a
//! JSON Schema for each, and the tests validate real output against them.
//!
//! Each line is serialized into a buffer, written in one piece and flushed.

use std::io::{self, Write};
use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Emitted, LossReport, Output, StartInfo, Summary};
use crate::agg::AggSnapshot;
use crate::value::Value;

/// Writes JSON Lines.
pub struct JsonOutput<W: Write> {
    w: W,
    buf: Vec<u8>,
    clock: fn() -> SystemTime,
}

/// A line: its `type` and `time`, then the body's fields.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// A `print` of an aggregation: its name and whether it is a delta, then the snapshot.
#[derive(Serialize)]
struct Print<'a> {
    name: &'a str,
    delta: bool,
    #[serde(flatten)]
    agg: &'a AggSnapshot,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Error<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ts_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<u32>,
    probe: &'a str,
    fields: Fields<'a>,
}

/// Fields as an object, in the order given (a `serde_json::Map` would sort them).
struct Fields<'a>(&'a [(String, Value)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<W: Write> JsonOutput<W> {
    /// Writes to `w`.
    pub fn new(w: W) -> Self {
        Self::with_clock(w, SystemTime::now)
    }

    /// Writes to `w`, with lines timed by `clock` (tests fix it).
    pub fn with_clock(w: W, clock: fn() -> SystemTime) -> Self {
        Self {
            w,
            buf: Vec::new(),
            clock,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.w
    }

    fn line<T: Serialize>(&mut self, kind: &'static str, body: &T) -> io::Result<()> {
        let time = humantime::format_rfc3339_micros((self.clock)()).to_string();
        self.buf.clear();
        serde_json::to_writer(
            &mut self.buf,
            &Line {
                kind,
                time: &time,
                body,
            },
        )?;
        self.buf.push(b'\n');
        self.w.write_all(&self.buf)?;
        self.w.flush()
    }
}

impl<W: Write> Output for JsonOutput<W> {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        self.line("start", info)
    }

    fn aggregation(&mut self, agg: &AggSnapshot, delta: bool) -> io::Result<()> {
        self.line(
            "print",
            &Print {
                name: &agg.name,
                delta,
                agg,
            },
        )
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        self.line("text", &Text { text })
    }

    fn event(&mut self, e: &Emitted) -> io::Result<()> {
        self.line(
            "event",
            &Event {
                ts_ns: e.ts_ns,
                cpu: e.cpu,
                probe: &e.probe,
                fields: Fields(&e.fields),
            },
        )
    }

    fn error(&mut self, message: &str) -> io::Result<()> {
        self.line("error", &Error { message })
    }

    fn loss(&mut self, report: &LossReport) -> io::Result<()> {
        self.line("loss", report)
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        self.line("summary", summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{AggKind, Bucket, Entry, EntryValue};
    use crate::output::{LossReport, Lost, ProbeInfo};
    use serde_json::{json, Value as J};

    fn probes() -> Vec<ProbeInfo> {
        vec![ProbeInfo {
            name: "skb.drop".into(),
            mechanism: "tp_btf/kfree_skb".into(),
            feeds: "drops".into(),
            carries: None,
            fallbacks: vec![],
        }]
    }

    fn counts() -> AggSnapshot {
        AggSnapshot {
            name: "drops".into(),
            kind: AggKind::Count,
            keys: vec!["dev".into(), "reason".into()],
            field: None,
            step: None,
            time_ns: false,
            entries: vec![Entry {
                key: vec![
                    ("dev".into(), Value::Str("mvt0".into())),
                    ("reason".into(), Value::Str("FULL_RING".into())),
                ],
                value: EntryValue::Count { value: 12 },
            }],
        }
    }

    fn hist() -> AggSnapshot {
        AggSnapshot {
            name: "len".into(),
            kind: AggKind::Hist,
            keys: vec![],
            field: Some("len".into()),
            step: None,
            time_ns: false,
            entries: vec![Entry {
                key: vec![],
                value: EntryValue::Hist {
                    buckets: vec![Bucket {
                        low: 64,
                        high: 128,
                        count: 3,
                    }],
                    sum: 200,
                },
            }],
        }
    }

    /// 2024-05-01T12:00:00.000250Z
    fn fixed() -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_714_564_800_000_250)
    }
    const T: &str = "2024-05-01T12:00:00.000250Z";

    fn about() -> crate::output::About {
        crate::output::About {
            schema: crate::output::SCHEMA_VERSION,
            host: "hv-17".into(),
            kernel: "6.18.44".into(),
            script: Some("drops.rhai".into()),
            script_name: Some("drops".into()),
            script_version: Some("1.2.0".into()),
        }
    }

    fn lines(f: impl FnOnce(&mut JsonOutput<Vec<u8>>) -> io::Result<()>) -> Vec<J> {
        let mut o = JsonOutput::with_clock(Vec::new(), fixed);
        f(&mut o).unwrap();
        let text = String::from_utf8(o.into_inner()).unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect()
    }

    #[test]
    fn every_line_is_typed_and_timed_json() {
        let info = StartInfo {
            about: about(),
            duration_s: Some(30.0),
            probes: probes(),
            metrics: None,
        };
        let out = lines(|o| {
            o.start(&info)?;
            o.aggregation(&counts(), false)?;
            o.aggregation(&hist(), true)?;
            o.text("hello \"x\"\nsecond")?;
            o.event(&Emitted {
                probe: "skb.drop".into(),
                ts_ns: Some(5_000_000_123),
                cpu: Some(3),
                fields: vec![
                    ("len".into(), Value::Uint(60)),
                    ("dev".into(), Value::Str("mvt0".into())),
                    ("delta".into(), Value::Int(-3)),
                ],
            })?;
            o.error("drops.rhai:3: boom")
        });
        assert_eq!(out.len(), 6);
        assert_eq!(
            out[0],
            json!({"type": "start", "time": T, "schema": 2, "host": "hv-17", "kernel": "6.18.44",
                   "script": "drops.rhai", "script_name": "drops", "script_version": "1.2.0",
                   "duration_s": 30.0,
                   "probes": [{"name": "skb.drop", "mechanism": "tp_btf/kfree_skb", "feeds": "drops"}]})
        );
        assert_eq!(
            out[1],
            json!({"type": "print", "time": T, "name": "drops", "delta": false, "kind": "count",
                   "keys": ["dev", "reason"],
                   "entries": [{"key": {"dev": "mvt0", "reason": "FULL_RING"}, "value": 12}]})
        );
        assert_eq!(
            out[2],
            json!({"type": "print", "time": T, "name": "len", "delta": true, "kind": "hist", "keys": [],
                   "field": "len",
                   "entries": [{"key": {}, "buckets": [{"low": 64, "high": 128, "count": 3}], "sum": 200}]})
        );
        assert_eq!(
            out[3],
            json!({"type": "text", "time": T, "text": "hello \"x\"\nsecond"})
        );
        assert_eq!(
            out[4],
            json!({"type": "event", "time": T, "ts_ns": 5_000_000_123u64, "cpu": 3, "probe": "skb.drop",
                   "fields": {"len": 60, "dev": "mvt0", "delta": -3}})
        );
        assert_eq!(
            out[5],
            json!({"type": "error", "time": T, "message": "drops.rhai:3: boom"})
        );
    }

    #[test]
    fn type_and_time_come_first() {
        let mut o = JsonOutput::with_clock(Vec::new(), fixed);
        o.error("x").unwrap();
        o.text("y").unwrap();
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            format!(
                "{{\"type\":\"error\",\"time\":\"{T}\",\"message\":\"x\"}}\n\
                 {{\"type\":\"text\",\"time\":\"{T}\",\"text\":\"y\"}}\n"
            )
        );
    }

    #[test]
    fn event_fields_keep_their_order() {
        let mut o = JsonOutput::with_clock(Vec::new(), fixed);
        o.event(&Emitted {
            probe: "p".into(),
            ts_ns: None,
            cpu: None,
            fields: vec![("z".into(), Value::Uint(1)), ("a".into(), Value::Uint(2))],
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            format!("{{\"type\":\"event\",\"time\":\"{T}\",\"probe\":\"p\",\"fields\":{{\"z\":1,\"a\":2}}}}\n")
        );
    }

    #[test]
    fn loss_line() {
        let r = LossReport {
            elapsed_s: 3.0,
            new: Lost {
                events: 10,
                map_full: 2,
                ..Lost::default()
            },
            total: Lost {
                events: 30,
                map_full: 2,
                callback_errors: 1,
                ..Lost::default()
            },
            full_maps: [("drops".to_string(), 2)].into_iter().collect(),
        };
        let out = lines(|o| o.loss(&r));
        assert_eq!(
            out[0],
            json!({"type": "loss", "time": T, "elapsed_s": 3.0,
                   "new": {"events": 10, "captures": 0, "map_full": 2, "rate_limited": 0,
                           "missed": 0, "callback_errors": 0, "undelivered": 0},
                   "total": {"events": 30, "captures": 0, "map_full": 2, "rate_limited": 0,
                             "missed": 0, "callback_errors": 1, "undelivered": 0},
                   "full_maps": {"drops": 2}})
        );
    }

    #[test]
    fn summary_line() {
        let mut reports = serde_json::Map::new();
        reports.insert("rr_tps".into(), json!(41234.5));
        let s = Summary {
            about: about(),
            captures: vec![],
            duration_s: 12.5,
            maps: vec![counts(), hist()],
            lost: Lost {
                events: 1,
                map_full: 0,
                callback_errors: 2,
                undelivered: 3,
                ..Lost::default()
            },
            probes: probes(),
            printed_at_end: vec!["drops".into()],
            narrated: false,
            reports,
            workloads: Default::default(),
            monotonic_start_ns: 0,
            delivery: Some(crate::output::DeliveryInfo::new(
                3,
                std::time::Duration::from_nanos(2000),
            )),
        };
        let out = lines(|o| o.summary(&s));
        assert_eq!(out.len(), 1);
        let l = &out[0];
        assert_eq!(l["type"], "summary");
        assert_eq!(l["time"], T);
        // the summary alone says where and what it was
        assert_eq!(l["schema"], 2);
        assert_eq!(l["host"], "hv-17");
        assert_eq!(l["kernel"], "6.18.44");
        assert_eq!(l["script_name"], "drops");
        assert_eq!(l["script_version"], "1.2.0");
        assert_eq!(l["duration_s"], 12.5);
        // JSON always has every map, printed or not
        assert_eq!(l["maps"]["drops"]["kind"], "count");
        assert_eq!(l["maps"]["drops"]["keys"], json!(["dev", "reason"]));
        assert_eq!(
            l["maps"]["drops"]["entries"][0],
            json!({"key": {"dev": "mvt0", "reason": "FULL_RING"}, "value": 12})
        );
        assert_eq!(
            l["maps"]["len"]["entries"][0]["buckets"],
            json!([{"low": 64, "high": 128, "count": 3}])
        );
        assert_eq!(
            l["lost"],
            json!({"events": 1, "captures": 0, "map_full": 0, "rate_limited": 0, "missed": 0, "callback_errors": 2, "undelivered": 3})
        );
        assert_eq!(l["probes"][0]["name"], "skb.drop");
        assert_eq!(l["reports"], json!({"rr_tps": 41234.5}));
        assert_eq!(l["delivery"], json!({"records": 3, "ns_per_record": 666.7}));
        // Without reports (or deliveries) the key is left out.
        let s = Summary {
            reports: serde_json::Map::new(),
            delivery: None,
            workloads: Default::default(),
            monotonic_start_ns: 0,
            ..s
        };
        let l = &lines(|o| o.summary(&s))[0];
        assert!(l.get("reports").is_none());
        assert!(l.get("delivery").is_none());
    }
}
