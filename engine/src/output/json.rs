//! JSON Lines: one object per line, each with a `type` (`start`, `print`, `event`,
//! `error`, `summary`); the schema version is in `start`, the last line is `summary`.
//!
//! Each line is serialized into a buffer, written in one piece and flushed.

use std::io::{self, Write};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Output, StartInfo, Summary};
use crate::agg::AggSnapshot;
use crate::value::Value;

/// Writes JSON Lines.
pub struct JsonOutput<W: Write> {
    w: W,
    buf: Vec<u8>,
}

/// `T`'s fields after a `type` field.
#[derive(Serialize)]
struct Typed<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

/// A `print` of an aggregation: its name and whether it is a delta, then the snapshot.
#[derive(Serialize)]
struct Print<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    delta: bool,
    #[serde(flatten)]
    agg: &'a AggSnapshot,
}

#[derive(Serialize)]
struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct Error<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
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
        Self { w, buf: Vec::new() }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.w
    }

    fn line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, v)?;
        self.buf.push(b'\n');
        self.w.write_all(&self.buf)?;
        self.w.flush()
    }
}

impl<W: Write> Output for JsonOutput<W> {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        self.line(&Typed {
            kind: "start",
            inner: info,
        })
    }

    fn aggregation(&mut self, agg: &AggSnapshot, delta: bool) -> io::Result<()> {
        self.line(&Print {
            kind: "print",
            name: &agg.name,
            delta,
            agg,
        })
    }

    fn text(&mut self, text: &str) -> io::Result<()> {
        self.line(&Text {
            kind: "print",
            text,
        })
    }

    fn event(&mut self, probe: &str, fields: &[(String, Value)]) -> io::Result<()> {
        self.line(&Event {
            kind: "event",
            probe,
            fields: Fields(fields),
        })
    }

    fn error(&mut self, message: &str) -> io::Result<()> {
        self.line(&Error {
            kind: "error",
            message,
        })
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        self.line(&Typed {
            kind: "summary",
            inner: summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{AggKind, Bucket, Entry, EntryValue};
    use crate::output::{Lost, ProbeInfo};
    use serde_json::{json, Value as J};

    fn probes() -> Vec<ProbeInfo> {
        vec![ProbeInfo {
            name: "skb.drop".into(),
            mechanism: "tp_btf/kfree_skb".into(),
            feeds: "drops".into(),
            fallbacks: vec![],
        }]
    }

    fn counts() -> AggSnapshot {
        AggSnapshot {
            name: "drops".into(),
            kind: AggKind::Count,
            keys: vec!["dev".into(), "reason".into()],
            field: None,
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
            entries: vec![Entry {
                key: vec![],
                value: EntryValue::Hist {
                    buckets: vec![Bucket {
                        low: 64,
                        high: 128,
                        count: 3,
                    }],
                },
            }],
        }
    }

    fn lines(f: impl FnOnce(&mut JsonOutput<Vec<u8>>) -> io::Result<()>) -> Vec<J> {
        let mut o = JsonOutput::new(Vec::new());
        f(&mut o).unwrap();
        let text = String::from_utf8(o.into_inner()).unwrap();
        assert!(text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect()
    }

    #[test]
    fn every_line_is_typed_json() {
        let info = StartInfo {
            schema: crate::output::SCHEMA_VERSION,
            kernel: "6.18.44".into(),
            script: "drops.rhai".into(),
            duration_s: Some(30.0),
            probes: probes(),
        };
        let out = lines(|o| {
            o.start(&info)?;
            o.aggregation(&counts(), false)?;
            o.aggregation(&hist(), true)?;
            o.text("hello \"x\"\nsecond")?;
            o.event(
                "skb.drop",
                &[
                    ("len".into(), Value::Uint(60)),
                    ("dev".into(), Value::Str("mvt0".into())),
                    ("delta".into(), Value::Int(-3)),
                ],
            )?;
            o.error("drops.rhai:3: boom")
        });
        assert_eq!(out.len(), 6);
        assert_eq!(
            out[0],
            json!({"type": "start", "schema": 1, "kernel": "6.18.44", "script": "drops.rhai",
                   "duration_s": 30.0,
                   "probes": [{"name": "skb.drop", "mechanism": "tp_btf/kfree_skb", "feeds": "drops"}]})
        );
        assert_eq!(
            out[1],
            json!({"type": "print", "name": "drops", "delta": false, "kind": "count",
                   "keys": ["dev", "reason"],
                   "entries": [{"key": {"dev": "mvt0", "reason": "FULL_RING"}, "value": 12}]})
        );
        assert_eq!(
            out[2],
            json!({"type": "print", "name": "len", "delta": true, "kind": "hist", "keys": [],
                   "field": "len",
                   "entries": [{"key": {}, "buckets": [{"low": 64, "high": 128, "count": 3}]}]})
        );
        assert_eq!(
            out[3],
            json!({"type": "print", "text": "hello \"x\"\nsecond"})
        );
        assert_eq!(
            out[4],
            json!({"type": "event", "probe": "skb.drop",
                   "fields": {"len": 60, "dev": "mvt0", "delta": -3}})
        );
        assert_eq!(
            out[5],
            json!({"type": "error", "message": "drops.rhai:3: boom"})
        );
    }

    #[test]
    fn type_comes_first() {
        let mut o = JsonOutput::new(Vec::new());
        o.error("x").unwrap();
        o.text("y").unwrap();
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            "{\"type\":\"error\",\"message\":\"x\"}\n{\"type\":\"print\",\"text\":\"y\"}\n"
        );
    }

    #[test]
    fn event_fields_keep_their_order() {
        let mut o = JsonOutput::new(Vec::new());
        o.event(
            "p",
            &[("z".into(), Value::Uint(1)), ("a".into(), Value::Uint(2))],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(o.into_inner()).unwrap(),
            "{\"type\":\"event\",\"probe\":\"p\",\"fields\":{\"z\":1,\"a\":2}}\n"
        );
    }

    #[test]
    fn summary_line() {
        let mut reports = serde_json::Map::new();
        reports.insert("rr_tps".into(), json!(41234.5));
        let s = Summary {
            captures: vec![],
            duration_s: 12.5,
            maps: vec![counts(), hist()],
            lost: Lost {
                events: 1,
                map_full: 0,
                callback_errors: 2,
                ..Lost::default()
            },
            probes: probes(),
            printed_at_end: vec!["drops".into()],
            reports,
            workloads: Default::default(),
            monotonic_start_ns: 0,
        };
        let out = lines(|o| o.summary(&s));
        assert_eq!(out.len(), 1);
        let l = &out[0];
        assert_eq!(l["type"], "summary");
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
            json!({"events": 1, "captures": 0, "map_full": 0, "rate_limited": 0, "missed": 0, "callback_errors": 2})
        );
        assert_eq!(l["probes"][0]["name"], "skb.drop");
        assert_eq!(l["reports"], json!({"rr_tps": 41234.5}));
        // Without reports the key is left out.
        let s = Summary {
            reports: serde_json::Map::new(),
            workloads: Default::default(),
            monotonic_start_ns: 0,
            ..s
        };
        assert!(lines(|o| o.summary(&s))[0].get("reports").is_none());
    }
}
