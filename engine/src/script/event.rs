//! What an `on_event` callback receives: one event of one attach point, its
//! fields by name (`e.dev`, `e["reason"]`) plus `probe`, `ts_ns` and `cpu`.
//!
//! Reading a field the attach point does not have is an error at that line,
//! with the closest name, never a silent `()` (a misspelled field would
//! otherwise compare false on every event). The script may add fields of its
//! own (`e.note = ..`) for `emit(e)`; `e.to_map()` is a plain map.
//!
//! Fields are decoded when read, not before the call: a callback that reads
//! one field of twenty pays for one (per-event cost is what decides whether
//! callbacks keep up with a busy host).

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, INT};
use vprobe_probes::abi::Event as RawEvent;
use vprobe_probes::{suggest, FieldDef, ProbeDef};

use super::errors::{fail, Res};
use crate::filter::key_bit;
use crate::symbols::Symbols;
use crate::value::{decode, Value};

/// Keys of an event that are about the event, not fields of its attach point.
pub const EVENT_META: [&str; 3] = ["probe", "ts_ns", "cpu"];

/// One event, as a callback sees it: the record, decoded field by field when read.
#[derive(Clone)]
pub struct Event {
    probe: &'static ProbeDef,
    raw: RawEvent,
    symbols: Rc<Symbols>,
    /// What the script set (`e.note = ..`): read before the record's fields.
    set: Map,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_map())
    }
}

/// A field an event does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{probe}` events have no field `{field}`; {}", match suggestion {
    Some(s) => format!("did you mean `{s}`?"),
    None => format!("their fields are {}", known.join(", ")),
})]
pub struct NoSuchField {
    /// The attach point.
    pub probe: &'static str,
    /// As written.
    pub field: String,
    /// The closest name.
    pub suggestion: Option<String>,
    /// Every name it has.
    pub known: Vec<String>,
}

impl NoSuchField {
    /// The error for reading `field` of `probe`'s events, given the names they have.
    pub fn new<'a>(
        probe: &'static str,
        field: &str,
        known: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Self {
        NoSuchField {
            probe,
            field: field.to_string(),
            suggestion: suggest(field, known.clone()).map(String::from),
            known: known.into_iter().map(String::from).collect(),
        }
    }
}

/// The event callbacks receive, kept from one event to the next: refilled in
/// place unless the script kept the last one (stored it, captured it), so
/// delivering an event allocates nothing. A plain value would cost Rhai two
/// allocations and three copies of the record per event.
#[derive(Default)]
pub(super) struct EventSlot(Option<Rc<RefCell<Dynamic>>>);

impl EventSlot {
    /// The argument for a callback: `raw`, an event of `probe`.
    pub fn fill(
        &mut self,
        probe: &'static ProbeDef,
        raw: &RawEvent,
        symbols: &Rc<Symbols>,
    ) -> Dynamic {
        if let Some(cell) = self.0.as_ref().filter(|c| Rc::strong_count(c) == 1) {
            // not an event any more when the callback assigned its parameter
            let refilled = match cell.borrow_mut().write_lock::<Event>() {
                Some(mut e) => {
                    e.probe = probe;
                    e.raw = *raw;
                    if !Rc::ptr_eq(&e.symbols, symbols) {
                        e.symbols = symbols.clone();
                    }
                    e.set.clear();
                    true
                }
                None => false,
            };
            if refilled {
                return Dynamic::from(cell.clone());
            }
        }
        // the first event, the script holds the last one (it keeps its own),
        // or the callback put something else in its place
        let e = Dynamic::from(Event::new(probe, *raw, symbols.clone()));
        let cell = Rc::new(RefCell::new(e));
        self.0 = Some(cell.clone());
        Dynamic::from(cell)
    }
}

/// Reading a field of an event that does not carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{probe}` events do not carry `{field}` here: vprobe read this callback as never reading \
     it, so the kernel did not record it (please report this with the callback)"
)]
pub struct NotCarried {
    /// The attach point.
    pub probe: &'static str,
    /// As written.
    pub field: String,
}

/// Why a field of an event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The attach point has no such field.
    #[error(transparent)]
    NoSuch(#[from] NoSuchField),
    /// The record does not carry it (see [`crate::plan::Carried`]).
    #[error(transparent)]
    NotCarried(#[from] NotCarried),
}

/// The names an event of `probe` has: its fields, then [`EVENT_META`].
pub fn field_names(probe: &ProbeDef) -> impl Iterator<Item = &'static str> + Clone + '_ {
    probe.fields.iter().map(|f| f.name).chain(EVENT_META)
}

impl Event {
    /// An event of `probe`: its record, names from `symbols`.
    pub fn new(probe: &'static ProbeDef, raw: RawEvent, symbols: Rc<Symbols>) -> Self {
        Event {
            probe,
            raw,
            symbols,
            set: Map::new(),
        }
    }

    /// The attach point it came from.
    pub fn probe(&self) -> &'static ProbeDef {
        self.probe
    }

    /// Its fields as a plain map: every field of the attach point, [`EVENT_META`],
    /// and what the script set.
    pub fn into_map(self) -> Map {
        self.to_map()
    }

    fn to_map(&self) -> Map {
        let mut m = Map::new();
        for name in field_names(self.probe) {
            if let Some(Ok(v)) = self.record_value(name) {
                m.insert(name.into(), v);
            }
        }
        for (k, v) in &self.set {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// A field of the record or of [`EVENT_META`], decoded; `None` when the
    /// attach point has no such field.
    fn record_value(&self, key: &str) -> Option<Result<Dynamic, NotCarried>> {
        Some(Ok(match key {
            "probe" => Dynamic::from(self.probe.name.to_string()),
            "ts_ns" => field_value(None, &self.raw, &self.symbols),
            "cpu" => Dynamic::from_int(INT::from(self.raw.cpu)),
            _ => {
                let f = self.probe.field(key)?;
                // a slot the record did not carry reads as zero: never a value
                if self.raw.flags & key_bit(f) == 0 {
                    return Some(Err(NotCarried {
                        probe: self.probe.name,
                        field: key.to_string(),
                    }));
                }
                field_value(Some(f), &self.raw, &self.symbols)
            }
        }))
    }

    fn contains(&self, key: &str) -> bool {
        self.set.contains_key(key) || EVENT_META.contains(&key) || self.probe.field(key).is_some()
    }

    fn get(&self, key: &str) -> Result<Dynamic, FieldError> {
        if let Some(v) = self.set.get(key) {
            return Ok(v.clone());
        }
        let value = self.record_value(key).ok_or_else(|| {
            let known: Vec<String> = field_names(self.probe)
                .map(String::from)
                .chain(self.set.keys().map(|k| k.to_string()))
                .collect();
            NoSuchField::new(self.probe.name, key, known.iter().map(String::as_str))
        })?;
        Ok(value?)
    }
}

/// Registers the event type: property and index access, and the map
/// functions a script may use on it.
pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Event>("Event");
    // `e.dev` falls back to the string indexer: one place decides
    engine.register_indexer_get(
        |ctx: NativeCallContext, e: &mut Event, key: &str| -> Res<Dynamic> {
            e.get(key).map_err(|err| fail(&ctx, err))
        },
    );
    engine.register_indexer_set(|e: &mut Event, key: &str, v: Dynamic| {
        e.set.insert(key.into(), v);
    });
    // A getter per field name the catalog knows, to the same place: `e.len`
    // is then one call. Without one, Rhai builds a "no such property" error
    // (a formatted message) before it falls back to the indexer, which made
    // reading a field ~400 ns. Other names (a tracepoint's own fields, what
    // the script set) still take that road.
    let names: std::collections::BTreeSet<&'static str> = vprobe_probes::CATALOG
        .iter()
        .flat_map(|p| p.fields)
        .chain(vprobe_probes::catalog::FUNC_FIELDS)
        .map(|f| f.name)
        .chain(EVENT_META)
        .collect();
    for name in names {
        engine.register_get(
            name,
            move |ctx: NativeCallContext, e: &mut Event| -> Res<Dynamic> {
                e.get(name).map_err(|err| fail(&ctx, err))
            },
        );
    }
    engine.register_fn("contains", |e: &mut Event, key: &str| e.contains(key));
    engine.register_fn("keys", |e: &mut Event| -> Array {
        e.to_map()
            .keys()
            .map(|k| Dynamic::from(k.clone()))
            .collect()
    });
    engine.register_fn("values", |e: &mut Event| -> Array {
        e.to_map().values().cloned().collect()
    });
    engine.register_fn("len", |e: &mut Event| e.to_map().len() as rhai::INT);
    engine.register_fn("to_map", |e: &mut Event| e.to_map());
    engine.register_fn("to_string", |e: &mut Event| {
        Dynamic::from_map(e.to_map()).to_string()
    });
    engine.register_fn("to_debug", |e: &mut Event| {
        format!("{:?}", Dynamic::from_map(e.to_map()))
    });
}

/// A decoded field as a Rhai value: numbers as integers (saturating), names as strings.
fn to_dynamic(v: Value) -> Dynamic {
    match v {
        Value::Uint(n) => Dynamic::from_int(INT::try_from(n).unwrap_or(INT::MAX)),
        Value::Int(n) => Dynamic::from_int(n),
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Str(s) => Dynamic::from(s),
    }
}

/// One field of an event as a script value; `None`: its `ts_ns`.
fn field_value(field: Option<&FieldDef>, event: &RawEvent, symbols: &Symbols) -> Dynamic {
    match field {
        Some(f) => to_dynamic(decode(f, &event.rec, symbols)),
        None => to_dynamic(Value::Uint(event.ts_ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop_event() -> Event {
        let probe = vprobe_probes::find("skb.drop").unwrap();
        let mut raw = RawEvent {
            ts_ns: 42,
            cpu: 1,
            // every field carried
            flags: probe.fields.iter().fold(0, |a, f| a | key_bit(f)),
            ..RawEvent::default()
        };
        let vprobe_probes::Slot::Num(len) = probe.field("len").unwrap().slot else {
            panic!("len is a number")
        };
        raw.rec.num[usize::from(len)] = 1500;
        raw.rec.dev[..3].copy_from_slice(b"lo\0");
        Event::new(probe, raw, Rc::new(Symbols::from_parts(None, vec![])))
    }

    #[test]
    fn fields_decode_when_read_and_what_the_script_sets_wins() {
        let mut e = drop_event();
        assert_eq!(e.get("len").unwrap().as_int().unwrap(), 1500);
        assert_eq!(e.get("dev").unwrap().into_string().unwrap(), "lo");
        assert_eq!(e.get("ts_ns").unwrap().as_int().unwrap(), 42);
        assert_eq!(e.get("cpu").unwrap().as_int().unwrap(), 1);
        assert_eq!(e.get("probe").unwrap().into_string().unwrap(), "skb.drop");
        assert!(e.get("lenn").is_err());
        assert!(e.contains("reason") && e.contains("cpu") && !e.contains("note"));
        e.set.insert("len".into(), Dynamic::from_int(7));
        e.set.insert("note".into(), Dynamic::from("x".to_string()));
        assert_eq!(e.get("len").unwrap().as_int().unwrap(), 7);
        assert!(e.get("note").is_ok() && e.contains("note"));
        // the map has every field, the meta keys and what was set
        let m = e.into_map();
        let probe = vprobe_probes::find("skb.drop").unwrap();
        assert_eq!(m.len(), probe.fields.len() + EVENT_META.len() + 1);
        assert_eq!(m["len"].as_int().unwrap(), 7);
        assert_eq!(m["ts_ns"].as_int().unwrap(), 42);
    }

    #[test]
    fn a_missing_field_suggests_the_closest() {
        let probe = vprobe_probes::find("skb.drop").unwrap();
        let e = NoSuchField::new(probe.name, "lenn", field_names(probe));
        assert_eq!(
            e.to_string(),
            "`skb.drop` events have no field `lenn`; did you mean `len`?"
        );
        let e = NoSuchField::new(probe.name, "zzzzzzzz", field_names(probe));
        assert!(e.to_string().contains("their fields are dev,"), "{e}");
    }
}
