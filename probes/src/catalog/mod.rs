//! The catalog: every attach point, its fields and its mechanisms, in one table
//! (like bpftrace's `probe_types.h`).
//!
//! One module per eBPF object, named like its C file (`skb_drop` for
//! `bpf/skb_drop.bpf.c`), holds the object and the definitions of the attach
//! points whose programs it carries. A field's slot must match the `S_*`
//! (`num[i]`), `A_*` (`addr[i]`) or `D_*` (`dev`) define of the same name in
//! that C file; a test here reads the C files and checks both directions.

mod fields;
mod mechanism;

pub mod dev;
pub mod generic;
pub mod kvm;
pub mod napi;
pub mod qdisc;
pub mod sched;
pub mod skb_drop;
pub mod sock;
pub mod tap;
pub mod tcp;

use serde::Serialize;

pub use crate::object::Object;
pub use fields::{FieldDef, FieldKind, Slot};
pub use generic::{FUNC_FIELDS, FUNC_LATENCY_SLOT, GENERIC};
pub use mechanism::{needs, Mechanism, MechanismKind, RawField, UnknownMechanismKind};

/// A filter an attach point applies when a script sets none on that field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DefaultFilter {
    /// The field's name.
    pub field: &'static str,
    /// The value, as a script would write it (`vhost-*`).
    pub value: &'static str,
}

/// What `.capture(..)` writes for an attach point's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// Nothing: its program has no packet it may read.
    None,
    /// The packet, its first snaplen bytes copied from the skb by the
    /// program; the mechanisms of `without` see no packet (a capture skips
    /// them).
    Packet {
        /// Mechanism kinds whose program has no skb.
        without: &'static [MechanismKind],
    },
    /// A TCP/IP header built in user space from the record's fields: the
    /// kernel's skb has no headers yet where the program runs.
    Segment,
}

impl Capture {
    /// `none`, `packet` or `segment`, as `vprobe list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Capture::None => "none",
            Capture::Packet { .. } => "packet",
            Capture::Segment => "segment",
        }
    }

    /// Whether a capture may use `kind`.
    pub fn works_with(self, kind: MechanismKind) -> bool {
        match self {
            Capture::None => false,
            Capture::Packet { without } => !without.contains(&kind),
            Capture::Segment => true,
        }
    }
}

impl Serialize for Capture {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An attach point.
#[derive(Debug, Serialize)]
pub struct ProbeDef {
    /// Dotted name (`skb.drop`).
    pub name: &'static str,
    /// The part of the stack it watches (`core`, `tcp`, `device`, `macvtap`, `socket`).
    pub subsystem: &'static str,
    /// One line of documentation.
    pub about: &'static str,
    /// The object carrying its programs.
    #[serde(skip)]
    pub object: &'static Object,
    /// Typed fields.
    pub fields: &'static [FieldDef],
    /// Mechanisms, most preferred first.
    pub mechanisms: &'static [Mechanism],
    /// What it watches unless a script says otherwise.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub default_filters: &'static [DefaultFilter],
    /// Kernel functions a site-restricted attach point accepts drops in (each
    /// with its compiler-split parts such as `NAME.cold`), resolved in
    /// /proc/kallsyms when the probe attaches; the restriction itself runs in
    /// the kernel (`bpf/include/sites.bpf.h`). Empty for other attach points.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub sites: &'static [&'static str],
    /// Kernel functions the site functions call that the program recognises
    /// in the kernel text around a drop's location (x86-64 direct calls),
    /// resolved in /proc/kallsyms into the `site_calls` map
    /// (`bpf/include/sites.bpf.h`) in this order, each 0 when not found.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub site_calls: &'static [&'static str],
    /// What a capture of its events writes.
    pub capture: Capture,
    /// What the kernel does on this path without the attach point seeing it
    /// (a path that makes no event, or runs no program), measured and named;
    /// empty when none is known. `vprobe list` shows it.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub unseen: &'static str,
}

impl ProbeDef {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Filters applied when a script sets none on that field: (field, value as
    /// a script would write it).
    pub fn default_filters(&self) -> impl Iterator<Item = (&'static FieldDef, &'static str)> + '_ {
        self.default_filters
            .iter()
            .filter_map(move |d| Some((self.field(d.field)?, d.value)))
    }
}

/// A family of generic attach points, named `KIND:...` in scripts.
#[derive(Debug, Serialize)]
pub struct GenericDef {
    /// The prefix (`tracepoint`, `kprobe`, `fentry`, `uprobe`).
    pub kind: &'static str,
    /// How a name is written (`kprobe:FUNC`).
    pub usage: &'static str,
    /// An example name.
    pub example: &'static str,
    /// One line of documentation.
    pub about: &'static str,
    /// The object carrying the family's programs.
    #[serde(skip)]
    pub object: &'static Object,
    /// Its fields; empty when they come from elsewhere (a format file).
    pub fields: &'static [FieldDef],
    /// The mechanism kinds it may use, most preferred first.
    pub mechanisms: &'static [MechanismKind],
}

/// The generic family a name belongs to (`kprobe:tcp_sendmsg` → kprobe).
pub fn generic(name: &str) -> Option<&'static GenericDef> {
    let (kind, _) = name.split_once(':')?;
    GENERIC.iter().find(|g| g.kind == kind)
}

/// Every attach point.
pub static CATALOG: &[ProbeDef] = &[
    skb_drop::DROP,
    tcp::RETRANSMIT,
    dev::RX,
    dev::XMIT,
    dev::QUEUE,
    qdisc::ENQUEUE,
    qdisc::DEQUEUE,
    napi::POLL,
    sock::RCVQUEUE_FULL,
    tcp::PROBE,
    sched::WAKEUP_LATENCY,
    kvm::EXIT,
    tap::MACVTAP_DROP,
    tap::TUN_DROP,
];

/// The attach point called `name`.
pub fn find(name: &str) -> Option<&'static ProbeDef> {
    CATALOG.iter().find(|p| p.name == name)
}

/// The closest name among `candidates` to `name`, if close enough to suggest.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests;
