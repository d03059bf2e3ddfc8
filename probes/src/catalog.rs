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
    /// A stack layer (`tap`, `tun`, `qdisc`, `tcp`, …: [`crate::layers`]).
    Layer,
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
    /// A classic tracepoint (`tracepoint/CAT/NAME`); needs tracefs.
    Tracepoint {
        /// Category (`skb`).
        category: &'static str,
        /// Event (`kfree_skb`).
        name: &'static str,
        /// Program name in the object.
        program: &'static str,
    },
}

impl Mechanism {
    /// The program to load from the object.
    pub fn program(&self) -> &'static str {
        match self {
            Mechanism::TpBtf { program, .. } | Mechanism::Tracepoint { program, .. } => program,
        }
    }

    /// The mechanism kind: `tp_btf`, `tracepoint`.
    pub fn kind(&self) -> &'static str {
        match self {
            Mechanism::TpBtf { .. } => "tp_btf",
            Mechanism::Tracepoint { .. } => "tracepoint",
        }
    }

    /// Short label: `tp_btf/kfree_skb`, `tracepoint/skb/kfree_skb`.
    pub fn label(&self) -> String {
        match self {
            Mechanism::TpBtf { event, .. } => format!("tp_btf/{event}"),
            Mechanism::Tracepoint { category, name, .. } => format!("tracepoint/{category}/{name}"),
        }
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
    num(
        "layer",
        6,
        FieldKind::Layer,
        "stack layer of the location (tap, tun, macvlan, bridge, veth, qdisc, core, ip, tcp, udp, ...; from kallsyms)",
    ),
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

// ---- macvtap.drop / tun.drop (keep in sync with bpf/tap.bpf.c) ----

// Both probes share one slot layout; the ring is the tap queue's ptr_ring.
const TAP_RING_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
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
    num(
        "queue",
        4,
        FieldKind::Uint,
        "index of the device queue (open of its char device) the packet was for",
    ),
    num(
        "queues",
        5,
        FieldKind::Uint,
        "number of queues of the device at the drop",
    ),
    num(
        "ring_size",
        6,
        FieldKind::Uint,
        "slots in the queue's ring (the device's txqueuelen when the queue was opened); 0 when unreadable",
    ),
    num(
        "ring_producer",
        7,
        FieldKind::Uint,
        "ring slot the next packet goes into",
    ),
    num(
        "ring_consumer_head",
        8,
        FieldKind::Uint,
        "ring slot the reader takes next",
    ),
    num(
        "ring_consumer_tail",
        9,
        FieldKind::Uint,
        "first slot the reader has taken but not yet handed back",
    ),
    num(
        "ring_occupancy",
        10,
        FieldKind::Uint,
        "packets waiting in the ring, not yet taken by the reader",
    ),
    num(
        "ring_unreleased",
        11,
        FieldKind::Uint,
        "slots taken by the reader but not yet handed back (batched); occupancy + unreleased = size when the ring is full",
    ),
    num("len", 13, FieldKind::Uint, "skb length in bytes"),
    num("protocol", 14, FieldKind::EtherType, "EtherType of the skb"),
    FieldDef {
        name: "saddr",
        slot: Slot::Addr(0),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about: "source address from the packet's IP header",
    },
    FieldDef {
        name: "daddr",
        slot: Slot::Addr(1),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about: "destination address from the packet's IP header",
    },
    num("sport", 12, FieldKind::Port, "TCP/UDP source port from the packet"),
    num("dport", 15, FieldKind::Port, "TCP/UDP destination port from the packet"),
];

/// Kernel functions a site-restricted attach point accepts drops in (each with
/// its compiler-split parts such as `NAME.cold`), resolved in /proc/kallsyms
/// when the probe attaches; the restriction itself runs in the kernel
/// (`bpf/include/sites.bpf.h`). Empty for other attach points.
pub fn sites(probe: &str) -> &'static [&'static str] {
    match probe {
        "macvtap.drop" => &["tap_handle_frame"],
        "tun.drop" => &["tun_net_xmit"],
        _ => &[],
    }
}

// ---- end of macvtap.drop / tun.drop ----

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
            Mechanism::Tracepoint {
                category: "net",
                name: "net_dev_queue",
                program: "vp_queue_tp",
            },
        ],
    },
    // macvtap.drop / tun.drop: kfree_skb restricted in the kernel to the
    // driver's drop site (sites(), resolved in /proc/kallsyms: root or
    // CAP_SYSLOG). Kernels: tp_btf 5.5+ with BTF, the classic tracepoint any;
    // named reasons (FULL_RING, DEV_READY) where the drivers pass them (6.x),
    // else NOT_SPECIFIED. The ring fields need ptr_ring queues (4.16+) and
    // the drivers' types in vmlinux BTF (tap/tun built in; as modules the
    // loader cannot relocate against them and the ring fields read 0).
    // fentry/kprobe programs on macvtap_count_rx_dropped are in the object
    // too (vp_mvtap_fentry, vp_mvtap_kprobe) for kernels that allow them.
    ProbeDef {
        name: "macvtap.drop",
        layer: "macvtap",
        about: "a packet dropped on its way into a macvtap/ipvtap queue (tap_handle_frame), with the queue's ring at that moment; counts as the device's rx_dropped",
        object: "tap",
        fields: TAP_RING_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "kfree_skb",
                program: "vp_mvtap_btf",
            },
            Mechanism::Tracepoint {
                category: "skb",
                name: "kfree_skb",
                program: "vp_mvtap_tp",
            },
        ],
    },
    ProbeDef {
        name: "tun.drop",
        layer: "tun",
        about: "a packet a tun/tap device could not queue for its reader (tun_net_xmit), with the queue's ring at that moment; counts as the device's tx_dropped",
        object: "tap",
        fields: TAP_RING_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "kfree_skb",
                program: "vp_tun_btf",
            },
            Mechanism::Tracepoint {
                category: "skb",
                name: "kfree_skb",
                program: "vp_tun_tp",
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
