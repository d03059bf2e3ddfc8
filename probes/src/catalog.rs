//! The catalog: every attach point, its fields and its mechanisms, in one table
//! (like bpftrace's `probe_types.h`). The slot numbers here must match the
//! `S_*` defines at the top of each `bpf/*.bpf.c`.

use serde::Serialize;

/// Where a field lives in the shared record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// `num[i]`
    Num(u8),
    /// `addr[i]`
    Addr(u8),
    /// `dev`
    Dev,
}

/// How a field's value is typed, parsed in filters and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// An unsigned number (lengths, counts).
    Uint,
    /// A signed number stored two's-complement (return codes).
    Int,
    /// An interface index (per network namespace).
    Ifindex,
    /// A network namespace inode; filters also take `/run/netns/NAME` names and paths.
    Netns,
    /// A device name; filters take names or globs (`macvtap*`).
    Dev,
    /// `enum skb_drop_reason`; names come from the running kernel's BTF.
    DropReason,
    /// A kernel text address, shown as `symbol+0xoff`; filters take a symbol name.
    KernelAddr,
    /// An EtherType (host order); filters take numbers or `ip`, `ipv6`, `arp`.
    EtherType,
    /// An IP address (IPv4 stored IPv4-mapped).
    IpAddr,
    /// A TCP/UDP port.
    Port,
    /// A TCP state (`ESTABLISHED`, ...).
    TcpState,
    /// An address family (`inet`, `inet6`).
    Family,
    /// A short string (a task's comm, a tracepoint's `char[]` field), at most
    /// 15 bytes; filters take the string or a prefix glob (`vhost-*`).
    Str,
}

impl FieldKind {
    /// Whether a histogram of this field makes sense.
    pub fn is_quantity(self) -> bool {
        matches!(self, FieldKind::Uint | FieldKind::Int)
    }
}

/// A typed field of an attach point.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FieldDef {
    /// Name used in scripts.
    pub name: &'static str,
    /// Where it lives in the record.
    pub slot: Slot,
    /// Its type.
    pub kind: FieldKind,
    /// Can be filtered in the kernel.
    pub filter: bool,
    /// Can be part of an aggregation key.
    pub key: bool,
    /// One line of documentation.
    pub about: &'static str,
}

/// One way of attaching a program, in the catalog's preference order.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mechanism {
    /// A BTF-typed tracepoint (`tp_btf/EVENT`); needs kernel BTF, 5.5+.
    TpBtf {
        /// Tracepoint name without category (`kfree_skb`).
        event: &'static str,
        /// Program name in the object.
        program: &'static str,
    },
    /// A raw tracepoint (`raw_tp/EVENT`): the tracepoint's arguments untyped; 4.17+.
    RawTracepoint {
        /// Tracepoint name without category (`net_dev_queue`).
        event: &'static str,
        /// Program name in the object.
        program: &'static str,
    },
    /// A classic tracepoint (`tracepoint/CAT/NAME`); needs tracefs.
    Tracepoint {
        /// Category (`skb`).
        category: &'static str,
        /// Event (`kfree_skb`).
        name: &'static str,
        /// Program name in the object.
        program: &'static str,
    },
    /// A classic tracepoint read by the generic program field by field, where
    /// the event's format file puts them (`tracepoint:CAT:NAME`).
    TracepointFormat {
        /// Category (`net`).
        category: &'static str,
        /// Event (`net_dev_queue`).
        name: &'static str,
        /// Program name in the object.
        program: &'static str,
        /// Which record bytes fill which slot.
        #[serde(skip)]
        layout: &'static [RawField],
    },
    /// A kprobe on a kernel function; needs CONFIG_KPROBE_EVENTS.
    Kprobe {
        /// Kernel function.
        function: &'static str,
        /// Program name in the object (attached at the function's entry).
        program: &'static str,
        /// A kretprobe program, attached too when a request measures latency.
        exit: Option<&'static str>,
    },
    /// An fentry program (BPF trampoline) on a kernel function; needs BTF, 5.5+.
    Fentry {
        /// Kernel function.
        function: &'static str,
        /// Program name in the object.
        program: &'static str,
        /// An fexit program, attached too when a request measures latency.
        exit: Option<&'static str>,
    },
    /// A uprobe on a function of a user-space binary or library.
    Uprobe {
        /// Path of the ELF file, or a library name (`libc`).
        target: &'static str,
        /// Symbol in it.
        symbol: &'static str,
        /// Program name in the object.
        program: &'static str,
        /// A uretprobe program, attached too when a request measures latency.
        exit: Option<&'static str>,
    },
}

/// Where the generic tracepoint program finds one field in the raw record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawField {
    /// The record slot it fills.
    pub slot: Slot,
    /// Offset, size and how to read it.
    pub raw: crate::abi::Raw,
}

impl Mechanism {
    /// The program to load from the object (the entry program of a pair).
    pub fn program(&self) -> &'static str {
        match self {
            Mechanism::TpBtf { program, .. }
            | Mechanism::RawTracepoint { program, .. }
            | Mechanism::Tracepoint { program, .. }
            | Mechanism::TracepointFormat { program, .. }
            | Mechanism::Kprobe { program, .. }
            | Mechanism::Fentry { program, .. }
            | Mechanism::Uprobe { program, .. } => program,
        }
    }

    /// The return-side program of a function mechanism, for latency.
    pub fn exit(&self) -> Option<&'static str> {
        match self {
            Mechanism::Kprobe { exit, .. }
            | Mechanism::Fentry { exit, .. }
            | Mechanism::Uprobe { exit, .. } => *exit,
            _ => None,
        }
    }

    /// The raw-record layout of a generic tracepoint.
    pub fn layout(&self) -> Option<&'static [RawField]> {
        match self {
            Mechanism::TracepointFormat { layout, .. } => Some(layout),
            _ => None,
        }
    }

    /// The mechanism kind: `tp_btf`, `raw_tracepoint`, `tracepoint`, `kprobe`,
    /// `fentry`, `uprobe` (what `--disable-mechanism` takes).
    pub fn kind(&self) -> &'static str {
        match self {
            Mechanism::TpBtf { .. } => "tp_btf",
            Mechanism::RawTracepoint { .. } => "raw_tracepoint",
            Mechanism::Tracepoint { .. } | Mechanism::TracepointFormat { .. } => "tracepoint",
            Mechanism::Kprobe { .. } => "kprobe",
            Mechanism::Fentry { .. } => "fentry",
            Mechanism::Uprobe { .. } => "uprobe",
        }
    }

    /// Short label: `tp_btf/kfree_skb`, `tracepoint/skb/kfree_skb`, `kprobe/tap_handle_frame`.
    pub fn label(&self) -> String {
        match self {
            Mechanism::TpBtf { event, .. } => format!("tp_btf/{event}"),
            Mechanism::RawTracepoint { event, .. } => format!("raw_tracepoint/{event}"),
            Mechanism::Tracepoint { category, name, .. }
            | Mechanism::TracepointFormat { category, name, .. } => {
                format!("tracepoint/{category}/{name}")
            }
            Mechanism::Kprobe { function, .. } => format!("kprobe/{function}"),
            Mechanism::Fentry { function, .. } => format!("fentry/{function}"),
            Mechanism::Uprobe { target, symbol, .. } => format!("uprobe/{target}:{symbol}"),
        }
    }

    /// What the kernel needs for this mechanism, for `vprobe list`.
    pub fn needs(&self) -> &'static str {
        needs(self.kind())
    }
}

/// What the kernel needs for a mechanism kind (`Mechanism::kind`).
pub fn needs(kind: &str) -> &'static str {
    match kind {
        "tp_btf" => "Linux 5.5+ with BTF (CONFIG_DEBUG_INFO_BTF=y)",
        "raw_tracepoint" => "Linux 4.17+",
        "tracepoint" => "Linux 4.7+ and tracefs",
        "kprobe" => "CONFIG_KPROBE_EVENTS=y (the kprobe PMU: Linux 4.17+)",
        "fentry" => {
            "Linux 5.5+ with BTF and BPF trampolines (x86-64, arm64 6.0+), not refused by lockdown or an LSM"
        }
        "uprobe" => "CONFIG_UPROBE_EVENTS=y (the uprobe PMU: Linux 4.17+)",
        _ => "",
    }
}

/// An attach point.
#[derive(Debug, Serialize)]
pub struct ProbeDef {
    /// Dotted name (`skb.drop`).
    pub name: &'static str,
    /// Layer of the stack (`core`, `tcp`, `device`).
    pub layer: &'static str,
    /// One line of documentation.
    pub about: &'static str,
    /// Object file in `prebuilt/` (without `.o`).
    #[serde(skip)]
    pub object: &'static str,
    /// Typed fields.
    pub fields: &'static [FieldDef],
    /// Mechanisms, most preferred first.
    pub mechanisms: &'static [Mechanism],
}

impl ProbeDef {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn num(name: &'static str, slot: u8, kind: FieldKind, about: &'static str) -> FieldDef {
    FieldDef {
        name,
        slot: Slot::Num(slot),
        kind,
        filter: true,
        key: true,
        about,
    }
}

const DEV: FieldDef = FieldDef {
    name: "dev",
    slot: Slot::Dev,
    kind: FieldKind::Dev,
    filter: true,
    key: true,
    about: "device name (empty when the skb has none)",
};

// Slots 0 and 1 of every device-side program (vp_fill_dev()).
const DEV_IFINDEX: FieldDef = num(
    "ifindex",
    0,
    FieldKind::Ifindex,
    "interface index within its namespace",
);
const DEV_NETNS: FieldDef = num(
    "netns",
    1,
    FieldKind::Netns,
    "network namespace inode of the device",
);

// keep in sync with bpf/skb_drop.bpf.c
const SKB_DROP_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    num(
        "netns",
        1,
        FieldKind::Netns,
        "network namespace inode of the device (or socket)",
    ),
    num(
        "reason",
        2,
        FieldKind::DropReason,
        "drop reason (enum skb_drop_reason)",
    ),
    num(
        "location",
        3,
        FieldKind::KernelAddr,
        "where the skb was freed (symbol+offset)",
    ),
    num("protocol", 4, FieldKind::EtherType, "EtherType of the skb"),
    num("len", 5, FieldKind::Uint, "skb length in bytes"),
];

// keep in sync with bpf/tcp.bpf.c
const TCP_RETRANSMIT_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "saddr",
        slot: Slot::Addr(0),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about: "local address",
    },
    FieldDef {
        name: "daddr",
        slot: Slot::Addr(1),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about: "remote address",
    },
    num("sport", 0, FieldKind::Port, "local port"),
    num("dport", 1, FieldKind::Port, "remote port"),
    num("state", 2, FieldKind::TcpState, "TCP state of the socket"),
    num("family", 3, FieldKind::Family, "address family"),
    num(
        "netns",
        4,
        FieldKind::Netns,
        "network namespace inode of the socket",
    ),
];

// keep in sync with bpf/dev.bpf.c
const DEV_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("len", 2, FieldKind::Uint, "packet length in bytes"),
    num("protocol", 3, FieldKind::EtherType, "EtherType of the skb"),
];

const DEV_XMIT_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("len", 2, FieldKind::Uint, "packet length in bytes"),
    num(
        "rc",
        4,
        FieldKind::Int,
        "driver return code (0 = NETDEV_TX_OK)",
    ),
];

/// Slots of the generic function probes (`kprobe:`, `fentry:`, `uprobe:`).
/// Keep in sync with bpf/generic.bpf.c.
pub const FUNC_FIELDS: &[FieldDef] = &[
    num("pid", 0, FieldKind::Uint, "process id (tgid) of the caller"),
    num("tid", 1, FieldKind::Uint, "thread id of the caller"),
    num(
        "latency",
        2,
        FieldKind::Uint,
        "nanoseconds from the function's entry to its return",
    ),
    FieldDef {
        name: "comm",
        slot: Slot::Dev,
        kind: FieldKind::Str,
        filter: true,
        key: true,
        about: "the calling thread's name (comm)",
    },
];

/// The slot of `latency` in [`FUNC_FIELDS`]: when a request needs it, the
/// return-side program is attached too and submits the record.
pub const FUNC_LATENCY_SLOT: u8 = 2;

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
    /// Its fields; empty when they come from elsewhere (a format file).
    pub fields: &'static [FieldDef],
    /// The mechanism kinds it may use, most preferred first.
    pub mechanisms: &'static [&'static str],
}

/// The generic attach points.
pub static GENERIC: &[GenericDef] = &[
    GenericDef {
        kind: "tracepoint",
        usage: "tracepoint:CATEGORY:NAME",
        example: "tracepoint:net:net_dev_queue",
        about: "any classic tracepoint; its fields come from its format file (tracefs events/CATEGORY/NAME/format)",
        fields: &[],
        mechanisms: &["tracepoint"],
    },
    GenericDef {
        kind: "kprobe",
        usage: "kprobe:FUNCTION",
        example: "kprobe:tcp_retransmit_skb",
        about: "calls of a kernel function (kprobe; kretprobe too for latency)",
        fields: FUNC_FIELDS,
        mechanisms: &["kprobe"],
    },
    GenericDef {
        kind: "fentry",
        usage: "fentry:FUNCTION",
        example: "fentry:tcp_retransmit_skb",
        about: "calls of a kernel function (fentry; fexit too for latency)",
        fields: FUNC_FIELDS,
        mechanisms: &["fentry"],
    },
    GenericDef {
        kind: "uprobe",
        usage: "uprobe:PATH:SYMBOL",
        example: "uprobe:libc:getpid",
        about: "calls of a function in a user-space binary or library (uprobe; uretprobe too for latency); PATH may be a library name like libc",
        fields: FUNC_FIELDS,
        mechanisms: &["uprobe"],
    },
];

/// The generic family a name belongs to (`kprobe:tcp_sendmsg` → kprobe).
pub fn generic(name: &str) -> Option<&'static GenericDef> {
    let (kind, _) = name.split_once(':')?;
    GENERIC.iter().find(|g| g.kind == kind)
}

/// Every attach point.
pub static CATALOG: &[ProbeDef] = &[
    ProbeDef {
        name: "skb.drop",
        layer: "core",
        about: "an skb dropped anywhere in the stack, with its reason and location",
        object: "skb_drop",
        fields: SKB_DROP_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "kfree_skb",
                program: "vp_drop_btf",
            },
            Mechanism::Tracepoint {
                category: "skb",
                name: "kfree_skb",
                program: "vp_drop_tp",
            },
        ],
    },
    ProbeDef {
        name: "tcp.retransmit",
        layer: "tcp",
        about: "a TCP segment retransmitted",
        object: "tcp",
        fields: TCP_RETRANSMIT_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "tcp_retransmit_skb",
                program: "vp_retx_btf",
            },
            Mechanism::Tracepoint {
                category: "tcp",
                name: "tcp_retransmit_skb",
                program: "vp_retx_tp",
            },
        ],
    },
    ProbeDef {
        name: "dev.rx",
        layer: "device",
        about: "a packet received from a device into the stack (netif_receive_skb)",
        object: "dev",
        fields: DEV_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "netif_receive_skb",
                program: "vp_rx_btf",
            },
            Mechanism::RawTracepoint {
                event: "netif_receive_skb",
                program: "vp_rx_raw",
            },
            Mechanism::Tracepoint {
                category: "net",
                name: "netif_receive_skb",
                program: "vp_rx_tp",
            },
        ],
    },
    ProbeDef {
        name: "dev.xmit",
        layer: "device",
        about: "a packet handed to a driver (net_dev_xmit), with the driver's return code",
        object: "dev",
        fields: DEV_XMIT_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "net_dev_xmit",
                program: "vp_xmit_btf",
            },
            Mechanism::RawTracepoint {
                event: "net_dev_xmit",
                program: "vp_xmit_raw",
            },
            Mechanism::Tracepoint {
                category: "net",
                name: "net_dev_xmit",
                program: "vp_xmit_tp",
            },
        ],
    },
    ProbeDef {
        name: "dev.queue",
        layer: "device",
        about: "a packet queued for transmission on a device (net_dev_queue)",
        object: "dev",
        fields: DEV_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "net_dev_queue",
                program: "vp_queue_btf",
            },
            Mechanism::RawTracepoint {
                event: "net_dev_queue",
                program: "vp_queue_raw",
            },
            Mechanism::Tracepoint {
                category: "net",
                name: "net_dev_queue",
                program: "vp_queue_tp",
            },
        ],
    },
];

/// The attach point called `name`.
pub fn find(name: &str) -> Option<&'static ProbeDef> {
    CATALOG.iter().find(|p| p.name == name)
}

/// The closest name among `candidates` to `name`, if close enough to suggest.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi;

    #[test]
    fn names_are_unique_and_slots_in_range() {
        for (i, p) in CATALOG.iter().enumerate() {
            assert!(
                CATALOG[i + 1..].iter().all(|q| q.name != p.name),
                "{} twice",
                p.name
            );
            assert!(
                crate::objects::object(p.object).is_some(),
                "{}: no object",
                p.name
            );
            for f in p.fields {
                match f.slot {
                    Slot::Num(s) => assert!((s as usize) < abi::NUM),
                    Slot::Addr(s) => assert!((s as usize) < abi::ADDR),
                    Slot::Dev => {}
                }
                let same_slot = p.fields.iter().filter(|g| g.slot == f.slot).count();
                assert_eq!(same_slot, 1, "{}.{} shares its slot", p.name, f.name);
            }
        }
    }

    #[test]
    fn generic_function_fields_fit_their_slots() {
        let latency = FUNC_FIELDS.iter().find(|f| f.name == "latency").unwrap();
        assert_eq!(latency.slot, Slot::Num(FUNC_LATENCY_SLOT));
        assert_eq!(generic("kprobe:tcp_sendmsg").unwrap().kind, "kprobe");
        assert_eq!(generic("uprobe:/bin/true:main").unwrap().kind, "uprobe");
        assert!(generic("skb.drop").is_none());
        assert!(generic("nope:x").is_none());
    }

    #[test]
    fn suggests_close_names_only() {
        let names = CATALOG.iter().map(|p| p.name);
        assert_eq!(suggest("skb.dorp", names.clone()), Some("skb.drop"));
        assert_eq!(
            suggest("tcp.retransmits", names.clone()),
            Some("tcp.retransmit")
        );
        assert_eq!(suggest("zzz", names), None);
    }
}
