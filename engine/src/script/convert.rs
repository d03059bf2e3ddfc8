//! Rhai values ↔ vprobe values: names, aggregation handles, filter values,
//! event maps, JSON reports.

use std::ops::{Range, RangeInclusive};

use rhai::{Array, Dynamic, Map, INT};
use vprobe_probes::{FieldDef, FieldKind};

use super::event::{self, EVENT_META};
use crate::filter;
use crate::output::Emitted;
use crate::plan::{AggName, FilterValue};
use crate::value::Value;

/// Deepest report value accepted (arrays in maps in arrays ...).
const MAX_JSON_DEPTH: usize = 64;

/// A Rhai value that is not what a vprobe function takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// Not a string.
    #[error("{what} must be a string, got {got}")]
    NotAString {
        /// What was expected: `the probe name`.
        what: String,
        /// The value, described.
        got: String,
    },
    /// `count("")`.
    #[error("an aggregation name cannot be empty")]
    EmptyAggName,
    /// `count("a\x1b[2J")`: it would drive the terminal it is printed on.
    #[error("aggregation name {0:?} has control characters")]
    ControlInAggName(String),
    /// `.filter(f, [[1]])`.
    #[error("filter on `{field}`: lists cannot be nested")]
    NestedList {
        /// The filtered field.
        field: &'static str,
    },
    /// `.filter(f, 5..5)`.
    #[error("filter on `{field}`: the range {start}..{end} is empty")]
    EmptyRange {
        /// The filtered field.
        field: &'static str,
        /// As written.
        start: INT,
        /// As written.
        end: INT,
    },
    /// A filter value of a type no field takes.
    #[error("filter on `{field}` expects {expected}, got {got}")]
    FilterValue {
        /// The filtered field.
        field: &'static str,
        /// What its values look like.
        expected: &'static str,
        /// The value, described.
        got: String,
    },
    /// `emit(#{..})` without `probe`.
    #[error("emit: the event map needs a `probe` name (`#{{probe: \"my.event\", ...}}`)")]
    NoProbe,
    /// A report value deeper than [`MAX_JSON_DEPTH`].
    #[error("report: value nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// A report value JSON has no form for.
    #[error("report: cannot report a {0} (use a number, bool, string, array or map)")]
    NotReportable(&'static str),
}

/// The Rhai type name of a value, for error messages.
pub fn type_name(v: &Dynamic) -> &'static str {
    match v.type_name() {
        "i64" => "integer",
        "f64" => "float",
        "bool" => "bool",
        "char" => "char",
        "string" | "ImmutableString" | "&str" => "string",
        "()" => "()",
        "array" => "array",
        "map" => "map",
        "Fn" => "function pointer",
        "range" | "core::ops::range::Range<i64>" => "range",
        "range=" | "core::ops::range::RangeInclusive<i64>" => "range",
        t if t.ends_with("ProbeHandle") => "probe",
        t if t.ends_with("AggName") => "aggregation",
        t if t.ends_with("Event") => "event",
        _ => "value",
    }
}

/// A string argument, or an error naming what was expected.
pub fn want_string(v: &Dynamic, what: &str) -> Result<String, ConvertError> {
    let v = v.flatten_clone();
    if v.is_string() || v.is_char() {
        Ok(v.to_string())
    } else {
        Err(ConvertError::NotAString {
            what: what.to_string(),
            got: describe(&v),
        })
    }
}

/// An aggregation: a handle `.count(..)` returned, or its name.
pub fn agg_name(v: &Dynamic) -> Result<AggName, ConvertError> {
    let v = v.flatten_clone();
    if let Some(name) = v.clone().try_cast::<AggName>() {
        return Ok(name);
    }
    let name = want_string(&v, "an aggregation name")?;
    if name.trim().is_empty() {
        return Err(ConvertError::EmptyAggName);
    }
    if name.chars().any(char::is_control) {
        return Err(ConvertError::ControlInAggName(name));
    }
    Ok(name.into())
}

/// `a value of type integer (42)`, short.
pub fn describe(v: &Dynamic) -> String {
    let mut shown = match v.read_lock::<AggName>() {
        Some(a) => a.to_string(),
        None => v.to_string(),
    };
    if shown.len() > 40 {
        shown.truncate(shown.char_indices().nth(37).map_or(shown.len(), |(i, _)| i));
        shown.push_str("...");
    }
    match type_name(v) {
        "()" => "()".to_string(),
        t => format!("{t} `{shown}`"),
    }
}

/// The values of `.filter(field, value)`: a number, a string, a range
/// (`64..1500` is `64..=1499`) or an array of those.
pub fn filter_values(field: &FieldDef, value: &Dynamic) -> Result<Vec<FilterValue>, ConvertError> {
    let value = value.flatten_clone();
    let mut out = Vec::new();
    if value.is_array() {
        let items = value.cast::<Array>();
        for item in &items {
            let item = item.flatten_clone();
            if item.is_array() {
                return Err(ConvertError::NestedList { field: field.name });
            }
            out.push(one_filter_value(field, &item)?);
        }
    } else {
        out.push(one_filter_value(field, &value)?);
    }
    Ok(out)
}

fn one_filter_value(field: &FieldDef, v: &Dynamic) -> Result<FilterValue, ConvertError> {
    if let Ok(n) = v.as_int() {
        return Ok(FilterValue::Int(n));
    }
    // `true`/`false` only where a flag is expected; elsewhere the error below
    if let (Ok(b), FieldKind::Bool) = (v.as_bool(), field.kind) {
        return Ok(FilterValue::Int(i64::from(b)));
    }
    if v.is_string() || v.is_char() {
        return Ok(FilterValue::Str(v.to_string()));
    }
    if let Some(r) = v.read_lock::<Range<INT>>() {
        if r.end <= r.start {
            return Err(ConvertError::EmptyRange {
                field: field.name,
                start: r.start,
                end: r.end,
            });
        }
        return Ok(FilterValue::Range(r.start, r.end - 1));
    }
    if let Some(r) = v.read_lock::<RangeInclusive<INT>>() {
        return Ok(FilterValue::Range(*r.start(), *r.end()));
    }
    Err(ConvertError::FilterValue {
        field: field.name,
        expected: filter::expected(field.kind),
        got: describe(v),
    })
}

/// A map, or an event's fields as one (`emit(e)`, `report(k, e)`, `correlate`).
pub fn as_map(v: &Dynamic) -> Option<Map> {
    let v = v.flatten_clone();
    if v.is_map() {
        return Some(v.cast::<Map>());
    }
    v.try_cast::<event::Event>().map(event::Event::into_map)
}

/// `emit(e)`: the probe name and the fields of an event map, the catalog's
/// fields first in catalog order, then any other keys by name; `ts_ns` and
/// `cpu` (when numbers) are kept beside them, not as fields.
pub fn emit_fields(map: &Map) -> Result<Emitted, ConvertError> {
    let probe = match map.get("probe") {
        Some(p) => want_string(p, "the `probe` of an emitted event")?,
        None => return Err(ConvertError::NoProbe),
    };
    let def = vprobe_probes::find(&probe);
    let mut fields = Vec::new();
    if let Some(def) = def {
        for f in def.fields {
            if let Some(v) = map.get(f.name) {
                fields.push((f.name.to_string(), to_value(Some(f.kind), v)));
            }
        }
    }
    for (k, v) in map {
        let k = k.as_str();
        if EVENT_META.contains(&k) || def.is_some_and(|d| d.field(k).is_some()) {
            continue;
        }
        fields.push((k.to_string(), to_value(None, v)));
    }
    let number = |k: &str| map.get(k).and_then(|v| v.as_int().ok());
    Ok(Emitted {
        probe,
        ts_ns: number("ts_ns").and_then(|n| u64::try_from(n).ok()),
        cpu: number("cpu").and_then(|n| u32::try_from(n).ok()),
        fields,
    })
}

fn to_value(kind: Option<FieldKind>, v: &Dynamic) -> Value {
    let v = v.flatten_clone();
    if let Ok(b) = v.as_bool() {
        return Value::Bool(b);
    }
    match v.as_int() {
        Ok(n) if n >= 0 && kind != Some(FieldKind::Int) => Value::Uint(n as u64),
        Ok(n) => Value::Int(n),
        Err(_) => Value::Str(v.to_string()),
    }
}

/// `report(key, value)`: numbers, booleans, strings, arrays and maps as JSON.
pub fn to_json(v: &Dynamic) -> Result<serde_json::Value, ConvertError> {
    json_at(v, 0)
}

fn json_at(v: &Dynamic, depth: usize) -> Result<serde_json::Value, ConvertError> {
    use serde_json::Value as J;
    if depth > MAX_JSON_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    let v = v.flatten_clone();
    if v.is_unit() {
        return Ok(J::Null);
    }
    if let Ok(n) = v.as_int() {
        return Ok(J::from(n));
    }
    if let Ok(x) = v.as_float() {
        return Ok(serde_json::Number::from_f64(x).map_or(J::Null, J::Number));
    }
    if let Ok(b) = v.as_bool() {
        return Ok(J::Bool(b));
    }
    if v.is_string() || v.is_char() {
        return Ok(J::String(v.to_string()));
    }
    if v.is_array() {
        let a = v.cast::<Array>();
        return a
            .iter()
            .map(|x| json_at(x, depth + 1))
            .collect::<Result<_, _>>()
            .map(J::Array);
    }
    if let Some(m) = as_map(&v) {
        let mut o = serde_json::Map::new();
        for (k, x) in &m {
            o.insert(k.to_string(), json_at(x, depth + 1)?);
        }
        return Ok(J::Object(o));
    }
    Err(ConvertError::NotReportable(type_name(&v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(p: &str, f: &str) -> &'static FieldDef {
        vprobe_probes::find(p).unwrap().field(f).unwrap()
    }

    #[test]
    fn ranges_lists_and_scalars() {
        let len = field("skb.drop", "len");
        let r = Dynamic::from(64 as INT..1500);
        assert_eq!(
            filter_values(len, &r).unwrap(),
            vec![FilterValue::Range(64, 1499)]
        );
        let r = Dynamic::from(64 as INT..=1500);
        assert_eq!(
            filter_values(len, &r).unwrap(),
            vec![FilterValue::Range(64, 1500)]
        );
        let a: Array = vec![
            Dynamic::from_int(1),
            Dynamic::from("x"),
            Dynamic::from(3 as INT..5),
        ];
        assert_eq!(
            filter_values(len, &Dynamic::from_array(a)).unwrap(),
            vec![
                FilterValue::Int(1),
                FilterValue::Str("x".into()),
                FilterValue::Range(3, 4)
            ]
        );
        assert!(filter_values(len, &Dynamic::from(5 as INT..5))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(filter_values(len, &Dynamic::from_float(1.5))
            .unwrap_err()
            .to_string()
            .contains("expects a number"));
    }

    #[test]
    fn reports_become_json() {
        let mut m = Map::new();
        m.insert(
            "a".into(),
            Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::TRUE]),
        );
        m.insert("b".into(), Dynamic::from_float(0.5));
        m.insert("c".into(), Dynamic::from("x"));
        let j = to_json(&Dynamic::from_map(m)).unwrap();
        assert_eq!(j, serde_json::json!({"a": [1, true], "b": 0.5, "c": "x"}));
    }

    #[test]
    fn emitted_fields_follow_the_catalog() {
        let mut m = Map::new();
        m.insert("probe".into(), Dynamic::from("skb.drop"));
        m.insert("zz".into(), Dynamic::from_int(-1));
        m.insert("reason".into(), Dynamic::from("FULL_RING"));
        m.insert("dev".into(), Dynamic::from("mvt0"));
        m.insert("len".into(), Dynamic::from_int(60));
        m.insert("ts_ns".into(), Dynamic::from_int(5));
        let e = emit_fields(&m).unwrap();
        assert_eq!(e.probe, "skb.drop");
        assert_eq!(e.ts_ns, Some(5));
        assert_eq!(
            e.fields,
            vec![
                ("dev".into(), Value::Str("mvt0".into())),
                ("reason".into(), Value::Str("FULL_RING".into())),
                ("len".into(), Value::Uint(60)),
                ("zz".into(), Value::Int(-1)),
            ]
        );
        assert!(emit_fields(&Map::new())
            .unwrap_err()
            .to_string()
            .contains("probe"));
    }
}
