//! The generic attach points: `tracepoint:CAT:NAME`, `kprobe:FUNC`,
//! `fentry:FUNC` and `uprobe:PATH:SYMBOL`.
//!
//! They are not catalog data: a tracepoint's fields come from its format file,
//! read when a script names it, and a function probe names its function. Each
//! name becomes a [`ProbeDef`] built once and kept for the process (interned by
//! name), so requests, filters and decoding treat them like catalog entries.
//!
//! A tracepoint may have more fields than a record has slots (16 numbers, 3
//! strings or addresses). Its def lists every readable field with placeholder
//! slots; before loading, the session narrows each request to the fields it
//! uses ([`narrow`]): those get real slots, and the mechanism a layout saying
//! which record bytes fill which slot.

pub mod format;
pub mod glob;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use vprobe_probes::abi::{self, Raw};
use vprobe_probes::catalog::{self, FUNC_FIELDS};
use vprobe_probes::{suggest, FieldDef, FieldKind, Mechanism, ProbeDef, RawField, Slot};

use crate::kernel::{self, Tracefs};
use crate::plan::{Carried, Consumer, Filter, ProbeRequest};
use format::{FormatError, Read};

/// Why a generic attach point cannot be named or narrowed.
#[derive(Debug, thiserror::Error)]
pub enum GenericError {
    /// A name not written the way its kind is.
    #[error("`{name}` is not a {kind} name: write {usage} (`{example}`)")]
    Usage {
        /// As written.
        name: String,
        /// `tracepoint`, `kprobe`, ...
        kind: &'static str,
        /// How it is written.
        usage: &'static str,
        /// An example.
        example: &'static str,
    },
    /// A uprobe on a path that is not a file.
    #[error("`{name}`: no file {target}")]
    NoFile {
        /// As written.
        name: String,
        /// The path.
        target: String,
    },
    /// The format files are root's only.
    #[error("cannot read the format of tracepoint `{tracepoint}`: {} is readable by root only", tracefs.display())]
    RootOnly {
        /// `CAT:NAME`.
        tracepoint: String,
        /// The tracefs mount.
        tracefs: PathBuf,
    },
    /// No tracefs, and it could not be mounted.
    #[error("cannot read the format of tracepoint `{tracepoint}`: {why}")]
    NoTracefs {
        /// `CAT:NAME`.
        tracepoint: String,
        /// Why it could not be mounted.
        why: crate::kernel::TracefsError,
    },
    /// No such category.
    #[error("no tracepoint category `{category}` (in {}){}", events.display(), suggestion.as_ref().map(|c| format!("; did you mean `tracepoint:{c}:{event}`?")).unwrap_or_default())]
    NoCategory {
        /// As written.
        category: String,
        /// As written.
        event: String,
        /// tracefs' `events` folder.
        events: PathBuf,
        /// The closest category.
        suggestion: Option<String>,
    },
    /// No such tracepoint, but one with a close name.
    #[error("no tracepoint `{category}:{event}` (in {}); did you mean `tracepoint:{category}:{suggestion}`?", folder.display())]
    NoTracepointLike {
        /// As written.
        category: String,
        /// As written.
        event: String,
        /// The category's folder.
        folder: PathBuf,
        /// The closest name.
        suggestion: String,
    },
    /// No such tracepoint.
    #[error("no tracepoint `{category}:{event}`; category `{category}` has {}{}", shown.join(", "), if *more { ", ..." } else { "" })]
    NoTracepoint {
        /// As written.
        category: String,
        /// As written.
        event: String,
        /// The first names of the category, sorted.
        shown: Vec<String>,
        /// Whether it has more.
        more: bool,
    },
    /// The format file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The format file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The format file did not parse.
    #[error("{}", path.display())]
    Format {
        /// The format file.
        path: PathBuf,
        /// Why.
        #[source]
        source: FormatError,
    },
    /// More fields used than a record holds.
    #[error("`{probe}`: too many fields in one request ({}): a record holds at most {} numbers and {} strings or addresses", fields.join(", "), abi::NUM, abi::ADDR + 1)]
    TooManyFields {
        /// The attach point.
        probe: &'static str,
        /// The fields used.
        fields: Vec<&'static str>,
    },
    /// A glob over a kind that cannot be listed.
    #[error("`{pattern}`: globs list tracepoints and kernel functions only (`tracepoint:net:*`, `kprobe:tcp_*`, `fentry:tcp_*`)")]
    NoGlob {
        /// As written.
        pattern: String,
    },
    /// tracefs cannot be listed.
    #[error("cannot list tracepoints: {0}")]
    NoListing(crate::kernel::TracefsError),
    /// A request whose field is not in its tracepoint (not made from its def).
    #[error("`{probe}` has no field `{field}`")]
    NoField {
        /// The attach point.
        probe: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// The object holding the generic programs (bpf/generic.bpf.c).
const OBJECT: &vprobe_probes::Object = &catalog::generic::OBJECT;

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

fn leak_str(s: impl Into<String>) -> &'static str {
    Box::leak(s.into().into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// Whether `name` is written like a generic attach point (`kprobe:...`).
pub fn is_generic(name: &str) -> bool {
    vprobe_probes::generic(name).is_some()
}

/// The attach point a generic name stands for; `Ok(None)` when `name` is not
/// generic (a catalog name). Reads the tracepoint's format file on first use.
pub fn resolve(name: &str) -> Result<Option<&'static ProbeDef>, GenericError> {
    let Some(g) = vprobe_probes::generic(name) else {
        return Ok(None);
    };
    let rest = &name[g.kind.len() + 1..];
    let usage = || GenericError::Usage {
        name: name.to_string(),
        kind: g.kind,
        usage: g.usage,
        example: g.example,
    };
    let def = match g.kind {
        "tracepoint" => {
            let (cat, event) = rest.split_once(':').ok_or_else(usage)?;
            if !valid_ident(cat) || !valid_ident(event) {
                return Err(usage());
            }
            tracepoint(cat, event)?.def
        }
        "kprobe" | "fentry" => {
            if !valid_ident(rest) {
                return Err(usage());
            }
            function_def(g.kind, None, rest)
        }
        "uprobe" => {
            let (target, symbol) = rest.rsplit_once(':').ok_or_else(usage)?;
            if target.is_empty() || symbol.is_empty() || symbol.contains(char::is_whitespace) {
                return Err(usage());
            }
            if target.contains('/') && !Path::new(target).is_file() {
                return Err(GenericError::NoFile {
                    name: name.to_string(),
                    target: target.to_string(),
                });
            }
            function_def(g.kind, Some(target), symbol)
        }
        _ => return Err(usage()),
    };
    Ok(Some(def))
}

/// The tracepoint family tested on `net:net_dev_queue`, without reading its
/// format file (which needs root).
static TRACEPOINT_FAMILY: ProbeDef = ProbeDef {
    name: "tracepoint:net:net_dev_queue",
    subsystem: "tracepoint",
    about: "tracepoint net:net_dev_queue",
    object: OBJECT,
    fields: &[],
    mechanisms: &[Mechanism::TracepointFormat {
        category: "net",
        name: "net_dev_queue",
        program: "vp_tracepoint",
        layout: &[],
    }],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: vprobe_probes::Capture::None,
    unseen: "",
};

/// An attach point of the generic family `kind` (`tracepoint`, `kprobe`,
/// `fentry`, `uprobe`) to test whether the family works here: its example.
pub fn representative(kind: &str) -> Option<&'static ProbeDef> {
    let g = vprobe_probes::GENERIC.iter().find(|g| g.kind == kind)?;
    match kind {
        "tracepoint" => Some(&TRACEPOINT_FAMILY),
        _ => resolve(g.example).ok().flatten(),
    }
}

/// Kernel function and tracepoint names: `tcp_sendmsg`, `foo.isra.0`, `sys_enter_read`.
fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && !s.starts_with('.')
}

/// Interned defs of function probes, by name.
fn functions() -> &'static Mutex<HashMap<String, &'static ProbeDef>> {
    static F: OnceLock<Mutex<HashMap<String, &'static ProbeDef>>> = OnceLock::new();
    F.get_or_init(Default::default)
}

fn function_def(kind: &str, target: Option<&str>, function: &str) -> &'static ProbeDef {
    let name = match target {
        Some(t) => format!("{kind}:{t}:{function}"),
        None => format!("{kind}:{function}"),
    };
    let mut map = functions().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = map.get(&name) {
        return d;
    }
    let f = leak_str(function);
    let (mech, about) = match (kind, target) {
        ("uprobe", Some(t)) => (
            Mechanism::Uprobe {
                target: leak_str(t),
                symbol: f,
                program: "vp_uprobe",
                exit: Some("vp_uretprobe"),
            },
            format!("calls of {function} in {t} (uprobe; uretprobe too for latency)"),
        ),
        ("fentry", _) => (
            Mechanism::Fentry {
                function: f,
                program: "vp_fentry",
                exit: Some("vp_fexit"),
            },
            format!("calls of kernel function {function} (fentry; fexit too for latency)"),
        ),
        _ => (
            Mechanism::Kprobe {
                function: f,
                program: "vp_kprobe",
                exit: Some("vp_kretprobe"),
            },
            format!("calls of kernel function {function} (kprobe; kretprobe too for latency)"),
        ),
    };
    let def: &'static ProbeDef = leak(ProbeDef {
        name: leak_str(name.clone()),
        subsystem: leak_str(kind),
        about: leak_str(about),
        object: OBJECT,
        fields: FUNC_FIELDS,
        mechanisms: leak_slice(vec![mech]),
        default_filters: &[],
        sites: &[],
        site_calls: &[],
        capture: vprobe_probes::Capture::None,
        unseen: "",
    });
    map.insert(name, def);
    def
}

/// Where a field goes in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Num,
    /// A string: `dev` first, then the address slots.
    Str,
    /// An IP address: an address slot.
    Addr,
}

#[derive(Debug)]
struct TpField {
    class: Class,
    offset: u16,
    size: u16,
    read: u32,
}

/// A classic tracepoint's readable fields, from its format file.
#[derive(Debug)]
pub struct Tracepoint {
    category: &'static str,
    event: &'static str,
    /// Parallel to `def.fields`.
    fields: Vec<TpField>,
    /// Fields vprobe cannot read, and why (`stack`: a dynamic array of u64).
    pub unsupported: Vec<(String, String)>,
    /// What scripts see: every readable field (placeholder slots until [`narrow`]).
    pub def: &'static ProbeDef,
    /// Narrowed defs by the (field index, slot key bit) they carry.
    narrowed: Mutex<HashMap<Vec<(usize, u32)>, &'static ProbeDef>>,
}

/// Interned tracepoints by `CAT:NAME`.
fn tracepoints() -> &'static Mutex<HashMap<String, &'static Tracepoint>> {
    static T: OnceLock<Mutex<HashMap<String, &'static Tracepoint>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// The tracepoint `category:event`, its format file read from tracefs (once).
pub fn tracepoint(category: &str, event: &str) -> Result<&'static Tracepoint, GenericError> {
    let key = format!("{category}:{event}");
    if let Some(t) = tracepoints()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return Ok(t);
    }
    let root = match kernel::tracefs_state() {
        Tracefs::Ready(p) => p,
        Tracefs::Unreadable(p) => {
            return Err(GenericError::RootOnly {
                tracepoint: key,
                tracefs: p.to_path_buf(),
            })
        }
        Tracefs::Missing => kernel::ensure_tracefs().map_err(|why| GenericError::NoTracefs {
            tracepoint: key.clone(),
            why,
        })?,
    };
    let events = root.join("events");
    let path = events.join(category).join(event).join("format");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unknown_tracepoint(&events, category, event))
        }
        Err(source) => return Err(GenericError::Read { path, source }),
    };
    let fmt = match format::parse(&text) {
        Ok(f) => f,
        Err(source) => return Err(GenericError::Format { path, source }),
    };
    let tp = build(category, event, &fmt);
    let mut map = tracepoints().lock().unwrap_or_else(|p| p.into_inner());
    Ok(*map.entry(key).or_insert(tp))
}

fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn unknown_tracepoint(events: &Path, category: &str, event: &str) -> GenericError {
    let cat_dir = events.join(category);
    if !cat_dir.is_dir() {
        let cats = names_in(events);
        return GenericError::NoCategory {
            category: category.to_string(),
            event: event.to_string(),
            events: events.to_path_buf(),
            suggestion: suggest(category, cats.iter().map(String::as_str)).map(str::to_string),
        };
    }
    let names = names_in(&cat_dir);
    match suggest(event, names.iter().map(String::as_str)) {
        Some(n) => GenericError::NoTracepointLike {
            category: category.to_string(),
            event: event.to_string(),
            suggestion: n.to_string(),
            folder: cat_dir,
        },
        None => {
            let mut names = names;
            names.sort();
            let more = names.len() > 12;
            names.truncate(12);
            GenericError::NoTracepoint {
                category: category.to_string(),
                event: event.to_string(),
                shown: names,
                more,
            }
        }
    }
}

/// Placeholder slots of the full def: never loaded (see [`narrow`]).
fn placeholder(class: Class) -> Slot {
    match class {
        Class::Num => Slot::Num(0),
        Class::Str => Slot::Dev,
        Class::Addr => Slot::Addr(0),
    }
}

fn build(category: &str, event: &str, fmt: &format::Format) -> &'static Tracepoint {
    let mut defs = Vec::new();
    let mut fields = Vec::new();
    let mut unsupported = Vec::new();
    for f in &fmt.fields {
        if f.is_common() {
            continue;
        }
        let read = f.read();
        let (Some(kind), Ok(offset), Ok(size)) =
            (read.kind(), u16::try_from(f.offset), u16::try_from(f.size))
        else {
            let why = match read {
                Read::Unsupported(why) => why,
                _ => "offset or size out of range".into(),
            };
            unsupported.push((f.name.clone(), why));
            continue;
        };
        let class = match kind {
            FieldKind::Str => Class::Str,
            FieldKind::IpAddr => Class::Addr,
            _ => Class::Num,
        };
        let t = f.ctype.replace("[]", "").trim().to_string();
        let about = match kind {
            FieldKind::Str => format!("{t} (up to 15 bytes)"),
            FieldKind::KernelAddr => format!("{t} (symbol+offset when it points into kernel text)"),
            _ => t,
        };
        defs.push(FieldDef {
            name: leak_str(f.name.clone()),
            slot: placeholder(class),
            kind,
            filter: true,
            key: true,
            about: leak_str(about),
        });
        fields.push(TpField {
            class,
            offset,
            size,
            read: read.code(),
        });
    }
    let name = leak_str(format!("tracepoint:{category}:{event}"));
    let category = leak_str(category);
    let event = leak_str(event);
    let def = leak(ProbeDef {
        name,
        subsystem: "tracepoint",
        about: leak_str(format!(
            "tracepoint {category}:{event}, fields from its format file"
        )),
        object: OBJECT,
        fields: leak_slice(defs),
        mechanisms: leak_slice(vec![Mechanism::TracepointFormat {
            category,
            name: event,
            program: "vp_tracepoint",
            layout: &[],
        }]),
        default_filters: &[],
        sites: &[],
        site_calls: &[],
        capture: vprobe_probes::Capture::None,
        unseen: "",
    });
    leak(Tracepoint {
        category,
        event,
        fields,
        unsupported,
        def,
        narrowed: Mutex::new(HashMap::new()),
    })
}

/// Slots for the fields `idx` (in order); the indexes that did not fit.
fn allocate(fields: &[TpField], idx: &[usize]) -> (Vec<(usize, Slot)>, Vec<usize>) {
    let (mut num, mut addr, mut dev) = (0u8, 0u8, false);
    let (mut out, mut over) = (Vec::new(), Vec::new());
    for &i in idx {
        let slot = match fields[i].class {
            Class::Num if (num as usize) < abi::NUM => {
                num += 1;
                Some(Slot::Num(num - 1))
            }
            Class::Str if !dev => {
                dev = true;
                Some(Slot::Dev)
            }
            Class::Str | Class::Addr if (addr as usize) < abi::ADDR => {
                addr += 1;
                Some(Slot::Addr(addr - 1))
            }
            _ => None,
        };
        match slot {
            Some(s) => out.push((i, s)),
            None => over.push(i),
        }
    }
    (out, over)
}

impl Tracepoint {
    /// The def carrying the fields `slots` (index, slot), with its layout.
    fn narrowed(&self, slots: &[(usize, Slot)]) -> &'static ProbeDef {
        let bit = |s: Slot| match s {
            Slot::Num(i) => u32::from(i),
            Slot::Addr(i) => abi::KEY_ADDR0 + u32::from(i),
            Slot::Dev => abi::KEY_DEV,
        };
        let key: Vec<(usize, u32)> = slots.iter().map(|&(i, s)| (i, bit(s))).collect();
        let mut map = self.narrowed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = map.get(&key) {
            return d;
        }
        let fields: Vec<FieldDef> = slots
            .iter()
            .map(|&(i, slot)| FieldDef {
                slot,
                ..self.def.fields[i]
            })
            .collect();
        let layout: Vec<RawField> = slots
            .iter()
            .map(|&(i, slot)| RawField {
                slot,
                raw: Raw {
                    offset: self.fields[i].offset,
                    size: self.fields[i].size,
                    read: self.fields[i].read,
                },
            })
            .collect();
        let def: &'static ProbeDef = leak(ProbeDef {
            fields: leak_slice(fields),
            mechanisms: leak_slice(vec![Mechanism::TracepointFormat {
                category: self.category,
                name: self.event,
                program: "vp_tracepoint",
                layout: leak_slice(layout),
            }]),
            ..*self.def
        });
        map.insert(key, def);
        def
    }
}

/// The interned tracepoint behind a generic tracepoint def.
fn tracepoint_of(probe: &ProbeDef) -> Option<&'static Tracepoint> {
    let Mechanism::TracepointFormat { category, name, .. } = probe.mechanisms.first()? else {
        return None;
    };
    tracepoints()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&format!("{category}:{name}"))
        .copied()
}

/// Gives a generic tracepoint request real slots: the fields it filters, keys
/// and histograms (every field that fits, for events). Other requests are
/// returned as they are.
pub fn narrow(req: ProbeRequest) -> Result<ProbeRequest, GenericError> {
    let Some(tp) = tracepoint_of(req.probe) else {
        return Ok(req);
    };
    let all = tp.def.fields;
    let index = |name: &str| all.iter().position(|f| f.name == name);
    // What the request cannot do without: its filters, keys, histogram field
    // and the fields its callback reads.
    let mut must: Vec<usize> = req
        .filters
        .iter()
        .map(|f| f.field.name)
        .chain(match &req.consumer {
            Consumer::Count { keys, .. } => keys.iter().map(|k| k.name).collect(),
            Consumer::Hist { field, keys, .. } => {
                keys.iter().map(|k| k.name).chain([field.name]).collect()
            }
            Consumer::Events {
                fields: Carried::Only(names),
                ..
            } => names.clone(),
            Consumer::Events { .. } | Consumer::Capture(_) => Vec::new(),
        })
        .filter_map(index)
        .collect();
    must.sort_unstable();
    must.dedup();
    let (mut slots, over) = allocate(&tp.fields, &must);
    if !over.is_empty() {
        return Err(GenericError::TooManyFields {
            probe: req.probe.name,
            fields: must.iter().map(|&i| all[i].name).collect(),
        });
    }
    if matches!(
        req.consumer,
        Consumer::Events {
            fields: Carried::All,
            ..
        }
    ) {
        // an event carries every other field that fits, in record order
        let rest: Vec<usize> = (0..all.len()).filter(|i| !must.contains(i)).collect();
        let taken: Vec<usize> = slots.iter().map(|(i, _)| *i).chain(rest).collect();
        let (fit, _) = allocate(&tp.fields, &taken);
        slots = fit;
    }
    slots.sort_unstable_by_key(|(i, _)| *i);
    let def = tp.narrowed(&slots);
    let remap = |f: &'static FieldDef| -> Result<&'static FieldDef, GenericError> {
        def.field(f.name).ok_or(GenericError::NoField {
            probe: def.name,
            field: f.name,
        })
    };
    let filters = req
        .filters
        .iter()
        .map(|f| {
            Ok(Filter {
                field: remap(f.field)?,
                values: f.values.clone(),
            })
        })
        .collect::<Result<Vec<_>, GenericError>>()?;
    let consumer = match req.consumer {
        Consumer::Count { name, keys } => Consumer::Count {
            name,
            keys: keys.iter().map(|k| remap(k)).collect::<Result<_, _>>()?,
        },
        Consumer::Hist {
            name,
            field,
            keys,
            kind,
        } => Consumer::Hist {
            name,
            field: remap(field)?,
            keys: keys.iter().map(|k| remap(k)).collect::<Result<_, _>>()?,
            kind,
        },
        e @ (Consumer::Events { .. } | Consumer::Capture(_)) => e,
    };
    Ok(ProbeRequest {
        probe: def,
        filters,
        consumer,
        rate: req.rate,
        origin: req.origin,
    })
}

/// Catalog attach points that cover a kernel function's events, for the
/// error a script gets when it cannot probe that function here: by function
/// name prefix, most specific first.
const ALTERNATIVES: &[(&str, &str, &str)] = &[
    ("tap_", "macvtap.drop", "macvtap drops"),
    ("macvtap_", "macvtap.drop", "macvtap drops"),
    ("tun_", "tun.drop", "tun/tap drops"),
    ("kfree_skb", "skb.drop", "skb drops"),
    ("sk_skb_reason_drop", "skb.drop", "skb drops"),
    ("tcp_retransmit", "tcp.retransmit", "TCP retransmissions"),
    ("__tcp_retransmit", "tcp.retransmit", "TCP retransmissions"),
    ("netif_receive_skb", "dev.rx", "packets received"),
    ("__netif_receive_skb", "dev.rx", "packets received"),
    ("dev_queue_xmit", "dev.queue", "packets queued"),
    ("__dev_queue_xmit", "dev.queue", "packets queued"),
    (
        "dev_hard_start_xmit",
        "dev.xmit",
        "packets handed to drivers",
    ),
    ("xmit_one", "dev.xmit", "packets handed to drivers"),
];

/// The kernel function a function probe hooks.
pub fn function_of(probe: &ProbeDef) -> Option<&'static str> {
    probe.mechanisms.iter().find_map(|m| match m {
        Mechanism::Kprobe { function, .. } | Mechanism::Fentry { function, .. } => Some(*function),
        _ => None,
    })
}

/// A catalog attach point that sees `function`'s events another way, if the
/// catalog has one.
pub fn alternative(function: &str) -> Option<&'static ProbeDef> {
    ALTERNATIVES
        .iter()
        .filter(|(prefix, _, _)| function.starts_with(prefix))
        .find_map(|(_, name, _)| vprobe_probes::find(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FilterValue, Origin};

    fn fake(category: &str, event: &str, text: &str) -> &'static Tracepoint {
        let tp = build(category, event, &format::parse(text).unwrap());
        tracepoints()
            .lock()
            .unwrap()
            .insert(format!("{category}:{event}"), tp);
        tp
    }

    fn wide_format(n: usize) -> String {
        let mut t = String::from(
            "name: wide\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n",
        );
        for i in 0..n {
            t.push_str(&format!(
                "\tfield:u64 f{i};\toffset:{};\tsize:8;\tsigned:0;\n",
                8 + 8 * i
            ));
        }
        let o = 8 + 8 * n;
        t.push_str(&format!(
            "\tfield:char a[16];\toffset:{o};\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] b;\toffset:{};\tsize:4;\tsigned:0;\n\tfield:__u8 daddr[4];\toffset:{};\tsize:4;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:{};\tsize:4;\tsigned:0;\n\tfield:__data_loc u64[] stack;\toffset:{};\tsize:4;\tsigned:0;\n",
            o + 16,
            o + 20,
            o + 24,
            o + 28
        ));
        t
    }

    fn req(probe: &'static ProbeDef, keys: &[&str], filters: &[&str]) -> ProbeRequest {
        ProbeRequest {
            rate: None,
            probe,
            filters: filters
                .iter()
                .map(|f| Filter {
                    field: probe.field(f).unwrap(),
                    values: vec![FilterValue::Int(1)],
                })
                .collect(),
            consumer: Consumer::Count {
                name: "c".into(),
                keys: keys.iter().map(|k| probe.field(k).unwrap()).collect(),
            },
            origin: Origin::default(),
        }
    }

    #[test]
    fn every_readable_field_is_listed_and_the_rest_say_why() {
        let tp = fake("test", "wide", &wide_format(20));
        let names: Vec<&str> = tp.def.fields.iter().map(|f| f.name).collect();
        // the common header cannot be read by a BPF program: not listed
        assert_eq!(names.len(), 20 + 4, "{names:?}");
        assert_eq!(names[0], "f0");
        assert_eq!(tp.unsupported.len(), 1);
        assert_eq!(tp.unsupported[0].0, "stack");
        assert_eq!(tp.def.field("a").unwrap().kind, FieldKind::Str);
        assert_eq!(tp.def.field("daddr").unwrap().kind, FieldKind::IpAddr);
    }

    #[test]
    fn narrowing_gives_the_used_fields_real_slots_and_a_layout() {
        let tp = fake("test", "narrow", &wide_format(20));
        // f19 is the 21st numeric field: it only gets a slot when asked for
        let r = narrow(req(tp.def, &["f19", "b"], &["daddr", "a"])).unwrap();
        let f = |n: &str| r.probe.field(n).unwrap().slot;
        assert_eq!(f("f19"), Slot::Num(0));
        assert_eq!(f("a"), Slot::Dev);
        assert_eq!(f("b"), Slot::Addr(0));
        assert_eq!(f("daddr"), Slot::Addr(1));
        let Consumer::Count { keys, .. } = &r.consumer else {
            unreachable!()
        };
        assert_eq!(keys[0].slot, Slot::Num(0));
        assert_eq!(r.filters[0].field.slot, Slot::Addr(1));
        let layout = r.probe.mechanisms[0].layout().unwrap();
        let f19 = layout.iter().find(|l| l.slot == Slot::Num(0)).unwrap();
        assert_eq!(
            f19.raw,
            Raw {
                offset: 8 + 8 * 19,
                size: 8,
                read: abi::READ_UNSIGNED
            }
        );
        let b = layout.iter().find(|l| l.slot == Slot::Addr(0)).unwrap();
        assert_eq!(b.raw.read, abi::READ_DATA_LOC);
        // the same fields give the same def
        let again = narrow(req(tp.def, &["b", "f19"], &["a", "daddr"])).unwrap();
        assert!(std::ptr::eq(again.probe, r.probe));
    }

    #[test]
    fn too_many_fields_is_an_error_but_events_take_what_fits() {
        let tp = fake("test", "over", &wide_format(28));
        let strs = narrow(req(tp.def, &["a", "b", "daddr", "saddr"], &[]))
            .unwrap_err()
            .to_string();
        assert!(strs.contains("too many fields"), "{strs}");
        let mut r = req(tp.def, &[], &[]);
        r.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Default::default(),
        };
        let r = narrow(r).unwrap();
        // f0..f23 numbers, a, b, daddr
        assert_eq!(r.probe.fields.len(), 24 + 3);
        assert!(r.probe.field("f24").is_none() && r.probe.field("saddr").is_none());

        // a callback that reads two fields past those gets them, and only them
        let mut r = req(tp.def, &[], &["f2"]);
        r.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Carried::Only(vec!["f27", "saddr"]),
        };
        let r = narrow(r).unwrap();
        let names: Vec<&str> = r.probe.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["f2", "f27", "saddr"]);
    }

    #[test]
    fn settings_carry_the_layout_and_string_prefixes() {
        let tp = fake("test", "settings", &wide_format(2));
        let mut r = req(tp.def, &["f1"], &[]);
        let prefix = |f: &str, v: &str| Filter {
            field: tp.def.field(f).unwrap(),
            values: vec![FilterValue::Str(v.into())],
        };
        r.filters = vec![prefix("a", "eth*"), prefix("b", "x*")];
        let symbols = crate::symbols::Symbols::default();
        // not narrowed: refused rather than loaded reading nothing
        let e = crate::filter::settings(&r, &symbols)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not narrowed"), "{e}");
        let s = crate::filter::settings(&narrow(r).unwrap(), &symbols).unwrap();
        assert_eq!(
            s.raw_num[0],
            Raw {
                offset: 16,
                size: 8,
                read: abi::READ_UNSIGNED
            }
        );
        assert_eq!(s.raw_dev.read, abi::READ_CHARS);
        assert_eq!((s.dev_filter_n, s.dev_filter_len[0]), (1, 3));
        assert_eq!(s.raw_addr[0].read, abi::READ_DATA_LOC);
        assert_eq!((s.addr_filter_n[0], s.addr_filter_len[0]), (1, 1));
        assert_eq!(&s.addr_filter[0][0][..2], b"x\0");
        assert_eq!(s.key_mask, 1);
    }

    #[test]
    fn names_are_checked_before_anything_is_read() {
        for bad in [
            "tracepoint:net",
            "tracepoint::x",
            "tracepoint:a/b:c",
            "kprobe:",
            "kprobe:a b",
            "uprobe:/bin/true",
            "uprobe::main",
        ] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
        assert!(resolve("skb.drop").unwrap().is_none());
        let k = resolve("kprobe:tcp_sendmsg").unwrap().unwrap();
        assert_eq!(k.mechanisms[0].label(), "kprobe/tcp_sendmsg");
        assert!(std::ptr::eq(
            k,
            resolve("kprobe:tcp_sendmsg").unwrap().unwrap()
        ));
        let u = resolve("uprobe:libc:getpid").unwrap().unwrap();
        assert_eq!(u.mechanisms[0].label(), "uprobe/libc:getpid");
        assert!(resolve("uprobe:/no/such/file:main")
            .unwrap_err()
            .to_string()
            .contains("no file"));
    }

    #[test]
    fn alternatives_name_catalog_entries_only() {
        assert_eq!(
            alternative("tcp_retransmit_skb").unwrap().name,
            "tcp.retransmit"
        );
        assert_eq!(alternative("kfree_skb_reason").unwrap().name, "skb.drop");
        assert!(alternative("vfs_read").is_none());
        // tap_ functions point at macvtap.drop once the catalog has it
        assert_eq!(
            alternative("tap_handle_frame").map(|p| p.name),
            vprobe_probes::find("macvtap.drop").map(|p| p.name)
        );
    }
}
