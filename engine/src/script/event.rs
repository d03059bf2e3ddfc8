//! What an `on_event` callback receives: one event of one attach point, its
//! fields by name (`e.dev`, `e["reason"]`) plus `probe`, `ts_ns` and `cpu`.
//!
//! Reading a field the attach point does not have is an error at that line,
//! with the closest name, never a silent `()` (a misspelled field would
//! otherwise compare false on every event). The script may add fields of its
//! own (`e.note = ..`) for `emit(e)`; `e.to_map()` is a plain map.

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};
use vprobe_probes::{suggest, ProbeDef};

use super::errors::{fail, Res};

/// Keys of an event that are about the event, not fields of its attach point.
pub const EVENT_META: [&str; 3] = ["probe", "ts_ns", "cpu"];

/// One event, as a callback sees it.
#[derive(Clone, Debug)]
pub struct Event {
    probe: &'static ProbeDef,
    fields: Map,
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

/// The names an event of `probe` has: its fields, then [`EVENT_META`].
pub fn field_names(probe: &ProbeDef) -> impl Iterator<Item = &'static str> + Clone + '_ {
    probe.fields.iter().map(|f| f.name).chain(EVENT_META)
}

impl Event {
    /// An event of `probe` with these fields (its decoded fields and [`EVENT_META`]).
    pub fn new(probe: &'static ProbeDef, fields: Map) -> Self {
        Event { probe, fields }
    }

    /// The attach point it came from.
    pub fn probe(&self) -> &'static ProbeDef {
        self.probe
    }

    /// Its fields as a plain map.
    pub fn into_map(self) -> Map {
        self.fields
    }

    fn get(&self, key: &str) -> Result<Dynamic, NoSuchField> {
        self.fields.get(key).cloned().ok_or_else(|| {
            NoSuchField::new(self.probe.name, key, self.fields.keys().map(|k| k.as_str()))
        })
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
        e.fields.insert(key.into(), v);
    });
    engine.register_fn("contains", |e: &mut Event, key: &str| {
        e.fields.contains_key(key)
    });
    engine.register_fn("keys", |e: &mut Event| -> Array {
        e.fields.keys().map(|k| Dynamic::from(k.clone())).collect()
    });
    engine.register_fn("values", |e: &mut Event| -> Array {
        e.fields.values().cloned().collect()
    });
    engine.register_fn("len", |e: &mut Event| e.fields.len() as rhai::INT);
    engine.register_fn("to_map", |e: &mut Event| e.fields.clone());
    engine.register_fn("to_string", |e: &mut Event| {
        Dynamic::from_map(e.fields.clone()).to_string()
    });
    engine.register_fn("to_debug", |e: &mut Event| {
        format!("{:?}", Dynamic::from_map(e.fields.clone()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
