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
    /// A thread name (`comm`, 15 bytes); filters take names or globs (`vhost-*`).
    Comm,
    /// A time span in nanoseconds; filters take numbers (ns), durations
    /// (`2ms`) and duration ranges (`1ms..`, `..500us`, `1ms..5ms`).
    Duration,
    /// A yes/no flag stored as 0/1; filters take `true`, `false`, 0 or 1.
    Bool,
    /// A traffic-control handle `major:minor`, shown as tc shows it (`1:`, `1:10`, `root`).
    TcHandle,
    /// A stack layer (`tap`, `tun`, `qdisc`, `tcp`, …: [`crate::layers`]).
    Layer,
    /// An x86 KVM exit reason, stored `isa << 32 | exit_reason`; named from the
    /// running kernel's `kvm:kvm_exit` format (`HLT`, `EPT_VIOLATION`, `npf`).
    KvmExitReason,
    /// A short string (a task's comm, a tracepoint's `char[]` field), at most
    /// 15 bytes; filters take the string or a prefix glob (`vhost-*`).
    Str,
}

impl FieldKind {
    /// Whether a histogram of this field makes sense.
    pub fn is_quantity(self) -> bool {
        matches!(self, FieldKind::Uint | FieldKind::Int | FieldKind::Duration)
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

    /// Short label: `tp_btf/kfree_skb`, `tracepoint/skb/kfree_skb`, `kprobe/tap_handle_frame`;
    /// companions follow with `+` (`tp_btf/sched_switch+sched_wakeup+sched_wakeup_new`).
    pub fn label(&self) -> String {
        let mut l = match self {
            Mechanism::TpBtf { event, .. } => format!("tp_btf/{event}"),
            Mechanism::RawTracepoint { event, .. } => format!("raw_tracepoint/{event}"),
            Mechanism::Tracepoint { category, name, .. }
            | Mechanism::TracepointFormat { category, name, .. } => {
                format!("tracepoint/{category}/{name}")
            }
            Mechanism::Kprobe { function, .. } => format!("kprobe/{function}"),
            Mechanism::Fentry { function, .. } => format!("fentry/{function}"),
            Mechanism::Uprobe { target, symbol, .. } => format!("uprobe/{target}:{symbol}"),
        };
        for c in self.companions() {
            l.push('+');
            l.push_str(match c {
                Mechanism::TpBtf { event, .. } | Mechanism::RawTracepoint { event, .. } => event,
                Mechanism::Tracepoint { name, .. } | Mechanism::TracepointFormat { name, .. } => {
                    name
                }
                Mechanism::Kprobe { function, .. } | Mechanism::Fentry { function, .. } => function,
                Mechanism::Uprobe { symbol, .. } => symbol,
            });
        }
        l
    }
}

// Programs attached beside a mechanism's own program, from the same loaded
// object (so they share its maps): they keep state the main program reads.
// runqlat-style: the wakeup programs stamp a thread, the switch program
// measures. Keyed by the main program's name.
static COMPANIONS: &[(&str, &[Mechanism])] = &[
    (
        "vp_wakelat_btf",
        &[
            Mechanism::TpBtf {
                event: "sched_wakeup",
                program: "vp_wakeup_btf",
            },
            Mechanism::TpBtf {
                event: "sched_wakeup_new",
                program: "vp_wakeup_new_btf",
            },
        ],
    ),
    (
        "vp_wakelat_tp",
        &[
            Mechanism::Tracepoint {
                category: "sched",
                name: "sched_wakeup",
                program: "vp_wakeup_tp",
            },
            Mechanism::Tracepoint {
                category: "sched",
                name: "sched_wakeup_new",
                program: "vp_wakeup_new_tp",
            },
        ],
    ),
];

impl Mechanism {
    /// Programs of the same object and kind that must be attached with this
    /// one (they feed its state); empty for most attach points.
    pub fn companions(&self) -> &'static [Mechanism] {
        COMPANIONS
            .iter()
            .find(|(main, _)| *main == self.program())
            .map_or(&[], |(_, c)| c)
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

    /// Filters applied when a script sets none on that field: (field, value as
    /// a script would write it).
    pub fn default_filters(&self) -> impl Iterator<Item = (&'static FieldDef, &'static str)> + '_ {
        DEFAULT_FILTERS
            .iter()
            .filter(move |(probe, _, _)| *probe == self.name)
            .filter_map(move |(_, field, value)| Some((self.field(field)?, *value)))
    }
}

// (probe, field, value): what an attach point watches unless told otherwise.
static DEFAULT_FILTERS: &[(&str, &str, &str)] = &[
    // every thread's wakeups would be a firehose; vhost workers are the usual suspects
    ("sched.wakeup_latency", "comm", "vhost-*"),
];

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

// ---- qdisc, softirq, socket, tcp.probe, scheduler and kvm attach points ----

const fn flag(name: &'static str, slot: u8, about: &'static str) -> FieldDef {
    num(name, slot, FieldKind::Bool, about)
}

const fn addr(name: &'static str, slot: u8, about: &'static str) -> FieldDef {
    FieldDef {
        name,
        slot: Slot::Addr(slot),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about,
    }
}

const COMM: FieldDef = FieldDef {
    name: "comm",
    slot: Slot::Dev,
    kind: FieldKind::Comm,
    filter: true,
    key: true,
    about: "thread name",
};

// keep in sync with bpf/qdisc.bpf.c
const QDISC_ENQUEUE_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num(
        "handle",
        2,
        FieldKind::TcHandle,
        "the qdisc's handle (`1:`)",
    ),
    num(
        "parent",
        3,
        FieldKind::TcHandle,
        "its parent (`root`, `1:1`)",
    ),
    num(
        "qlen",
        4,
        FieldKind::Uint,
        "packets queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
    ),
    num(
        "backlog",
        5,
        FieldKind::Uint,
        "bytes queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
    ),
    num("len", 6, FieldKind::Uint, "packet length in bytes"),
    num("queue", 8, FieldKind::Uint, "TX queue index on the device"),
];

const QDISC_DEQUEUE_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num(
        "handle",
        2,
        FieldKind::TcHandle,
        "the qdisc's handle (`1:`)",
    ),
    num(
        "parent",
        3,
        FieldKind::TcHandle,
        "its parent (`root`, `1:1`)",
    ),
    num(
        "qlen",
        4,
        FieldKind::Uint,
        "packets queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
    ),
    num(
        "backlog",
        5,
        FieldKind::Uint,
        "bytes queued after the operation (0 on per-CPU qdiscs such as pfifo_fast)",
    ),
    num(
        "len",
        6,
        FieldKind::Uint,
        "length of the first packet in bytes",
    ),
    num(
        "packets",
        7,
        FieldKind::Uint,
        "packets dequeued at once (bulk dequeue)",
    ),
    num("queue", 8, FieldKind::Uint, "TX queue index on the device"),
];

// keep in sync with bpf/napi.bpf.c
const NAPI_FIELDS: &[FieldDef] = &[
    DEV,
    DEV_IFINDEX,
    DEV_NETNS,
    num("work", 2, FieldKind::Uint, "packets processed in this poll"),
    num("budget", 3, FieldKind::Uint, "packets the poll was allowed"),
    flag(
        "exhausted",
        4,
        "the poll used its whole budget (the device has more: polled again)",
    ),
    num(
        "napi_id",
        5,
        FieldKind::Uint,
        "NAPI instance id (busy polling)",
    ),
    num("cpu", 6, FieldKind::Uint, "CPU that ran the poll"),
];

// keep in sync with bpf/sock.bpf.c
const SOCK_RCVQ_FIELDS: &[FieldDef] = &[
    FieldDef {
        name: "dev",
        slot: Slot::Dev,
        kind: FieldKind::Dev,
        filter: true,
        key: true,
        about: "device the packet came from (tp_btf only)",
    },
    num(
        "ifindex",
        0,
        FieldKind::Ifindex,
        "its interface index (tp_btf only)",
    ),
    addr("saddr", 0, "local address of the socket (tp_btf only)"),
    addr("daddr", 1, "remote address, if connected (tp_btf only)"),
    num(
        "sport",
        1,
        FieldKind::Port,
        "local port (raw sockets: the protocol) (tp_btf only)",
    ),
    num(
        "dport",
        2,
        FieldKind::Port,
        "remote port, if connected (tp_btf only)",
    ),
    num(
        "family",
        3,
        FieldKind::Family,
        "address family (tp_btf only)",
    ),
    num(
        "netns",
        4,
        FieldKind::Netns,
        "network namespace inode of the socket (tp_btf only)",
    ),
    num(
        "protocol",
        5,
        FieldKind::Uint,
        "the socket's protocol number (tp_btf only)",
    ),
    num(
        "rmem",
        6,
        FieldKind::Uint,
        "bytes in the receive queue (sk_rmem_alloc)",
    ),
    num(
        "truesize",
        7,
        FieldKind::Uint,
        "memory the refused packet needed",
    ),
    num(
        "rcvbuf",
        8,
        FieldKind::Uint,
        "the receive buffer limit (sk_rcvbuf)",
    ),
];

// keep in sync with bpf/tcp.bpf.c
const TCP_PROBE_FIELDS: &[FieldDef] = &[
    addr("saddr", 0, "local address"),
    addr("daddr", 1, "remote address"),
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
    num(
        "srtt",
        5,
        FieldKind::Duration,
        "smoothed round-trip time, ns (µs precision)",
    ),
    num(
        "rttvar",
        6,
        FieldKind::Duration,
        "round-trip time mean deviation, ns (µs precision)",
    ),
    num("cwnd", 7, FieldKind::Uint, "congestion window, segments"),
    num(
        "ssthresh",
        8,
        FieldKind::Uint,
        "slow-start threshold, segments",
    ),
    num(
        "snd_wnd",
        9,
        FieldKind::Uint,
        "send window the peer advertised, bytes",
    ),
    num("rcv_wnd", 10, FieldKind::Uint, "receive window, bytes"),
    num(
        "len",
        11,
        FieldKind::Uint,
        "payload bytes of the received segment",
    ),
    num(
        "snd_nxt",
        12,
        FieldKind::Uint,
        "next sequence number to send",
    ),
    num(
        "snd_una",
        13,
        FieldKind::Uint,
        "first unacknowledged sequence number",
    ),
    num("mark", 14, FieldKind::Uint, "socket mark (SO_MARK)"),
];

// keep in sync with bpf/sched.bpf.c
const WAKEUP_LATENCY_FIELDS: &[FieldDef] = &[
    FieldDef {
        about: "thread name; only matching threads are timed (default `vhost-*`; `*` for all)",
        ..COMM
    },
    num("pid", 0, FieldKind::Uint, "thread id"),
    num(
        "tgid",
        1,
        FieldKind::Uint,
        "process id (0 on the classic tracepoint)",
    ),
    num(
        "latency",
        2,
        FieldKind::Duration,
        "from wakeup to running on a CPU, ns",
    ),
    num("cpu", 3, FieldKind::Uint, "CPU it ran on"),
    num(
        "prio",
        4,
        FieldKind::Uint,
        "kernel priority (100..139 = nice -20..19)",
    ),
    num(
        "prev_pid",
        5,
        FieldKind::Uint,
        "thread that had the CPU before it (0 = idle)",
    ),
];

// keep in sync with bpf/kvm.bpf.c
const KVM_EXIT_FIELDS: &[FieldDef] = &[
    FieldDef {
        about: "name of the VMM's vCPU thread (`CPU 0/KVM`)",
        ..COMM
    },
    num(
        "reason",
        0,
        FieldKind::KvmExitReason,
        "exit reason, named from this kernel's kvm:kvm_exit format",
    ),
    num(
        "exit_reason",
        1,
        FieldKind::Uint,
        "exit reason as the hardware reports it (VMX basic reason and flags, SVM exit code)",
    ),
    num("isa", 2, FieldKind::Uint, "1 = VMX (Intel), 2 = SVM (AMD)"),
    num("vcpu", 3, FieldKind::Uint, "vCPU index in its VM"),
    num("pid", 4, FieldKind::Uint, "vCPU thread id"),
    num("tgid", 5, FieldKind::Uint, "VMM process id"),
    num("rip", 6, FieldKind::Uint, "guest instruction pointer"),
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
    // ---- qdisc, softirq, socket, tcp.probe, scheduler and kvm attach points ----
    // Kernels: tp_btf needs BTF and 5.5+; each entry says when its event appeared.
    // qdisc_enqueue: 5.14+ (both mechanisms).
    ProbeDef {
        name: "qdisc.enqueue",
        layer: "qdisc",
        about: "a packet accepted by a qdisc (not fired for packets that bypass an empty pfifo/pfifo_fast)",
        object: "qdisc",
        fields: QDISC_ENQUEUE_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "qdisc_enqueue",
                program: "vp_qdisc_enq_btf",
            },
            Mechanism::Tracepoint {
                category: "qdisc",
                name: "qdisc_enqueue",
                program: "vp_qdisc_enq_tp",
            },
        ],
    },
    // qdisc_dequeue: 4.16+.
    ProbeDef {
        name: "qdisc.dequeue",
        layer: "qdisc",
        about: "packets taken from a qdisc for transmission (one event per dequeue, `packets` of them)",
        object: "qdisc",
        fields: QDISC_DEQUEUE_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "qdisc_dequeue",
                program: "vp_qdisc_deq_btf",
            },
            Mechanism::Tracepoint {
                category: "qdisc",
                name: "qdisc_dequeue",
                program: "vp_qdisc_deq_tp",
            },
        ],
    },
    // napi_poll with work/budget: 4.6+.
    ProbeDef {
        name: "napi.poll",
        layer: "softirq",
        about: "one NAPI poll of a device in softirq: work done out of its budget",
        object: "napi",
        fields: NAPI_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "napi_poll",
                program: "vp_napi_btf",
            },
            Mechanism::Tracepoint {
                category: "napi",
                name: "napi_poll",
                program: "vp_napi_tp",
            },
        ],
    },
    // sock_rcvqueue_full: any kernel; the classic record has no socket, so only
    // rmem, truesize and rcvbuf are filled there.
    ProbeDef {
        name: "sock.rcvqueue_full",
        layer: "socket",
        about: "a packet refused by a full socket receive queue (raw and other sock_queue_rcv_skb users; UDP drops show in skb.drop as SOCKET_RCVBUFF)",
        object: "sock",
        fields: SOCK_RCVQ_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "sock_rcvqueue_full",
                program: "vp_rcvq_btf",
            },
            Mechanism::Tracepoint {
                category: "sock",
                name: "sock_rcvqueue_full",
                program: "vp_rcvq_tp",
            },
        ],
    },
    // tcp_probe: 4.16+; the classic record carries the socket on recent kernels
    // (else state, netns and rttvar read 0).
    ProbeDef {
        name: "tcp.probe",
        layer: "tcp",
        about: "a segment received on an established TCP socket, with its RTT, congestion and window state",
        object: "tcp",
        fields: TCP_PROBE_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "tcp_probe",
                program: "vp_probe_btf",
            },
            Mechanism::Tracepoint {
                category: "tcp",
                name: "tcp_probe",
                program: "vp_probe_tp",
            },
        ],
    },
    // sched_wakeup/_new + sched_switch: any kernel (tp_btf 5.5+); three programs
    // per mechanism (COMPANIONS). The classic records have no tgid.
    ProbeDef {
        name: "sched.wakeup_latency",
        layer: "vhost",
        about: "wakeup-to-run latency of threads by name (default `vhost-*`): a late vhost worker fills macvtap rings",
        object: "sched",
        fields: WAKEUP_LATENCY_FIELDS,
        mechanisms: &[
            Mechanism::TpBtf {
                event: "sched_switch",
                program: "vp_wakelat_btf",
            },
            Mechanism::Tracepoint {
                category: "sched",
                name: "sched_switch",
                program: "vp_wakelat_tp",
            },
        ],
    },
    // kvm_exit: x86 with KVM built in or kvm_intel/kvm_amd loaded. Classic only:
    // the BTF-typed arguments (vcpu, isa) do not carry the exit reason.
    ProbeDef {
        name: "kvm.exit",
        layer: "kvm",
        about: "a guest vCPU exit to the host (x86 KVM), with its reason",
        object: "kvm",
        fields: KVM_EXIT_FIELDS,
        mechanisms: &[Mechanism::Tracepoint {
            category: "kvm",
            name: "kvm_exit",
            program: "vp_kvm_exit_tp",
        }],
    },
    // macvtap.drop / tun.drop: kfree_skb restricted in the kernel to the
    // driver's drop site (sites(), resolved in /proc/kallsyms: root or
    // CAP_SYSLOG). Kernels: tp_btf 5.5+ with BTF, the classic tracepoint any;
    // named reasons (FULL_RING, DEV_READY) where the drivers pass them (6.x),
    // else NOT_SPECIFIED. The ring fields need ptr_ring queues (4.16+) and
    // the drivers' types in vmlinux BTF (tap/tun built in; as modules the
    // loader cannot relocate against them and the ring fields read 0).
    // Preferred where the kernel allows them: fentry (5.5+ with BTF and
    // trampolines) or a kprobe on macvtap_count_rx_dropped, the function that
    // bumps rx_dropped; the kfree_skb ones need the site table.
    ProbeDef {
        name: "macvtap.drop",
        layer: "macvtap",
        about: "a packet dropped on its way into a macvtap/ipvtap queue (tap_handle_frame), with the queue's ring at that moment; counts as the device's rx_dropped",
        object: "tap",
        fields: TAP_RING_FIELDS,
        mechanisms: &[
            // the rx-dropped counting path itself: no site table, nothing else to filter
            Mechanism::Fentry {
                function: "macvtap_count_rx_dropped",
                program: "vp_mvtap_fentry",
                exit: None,
            },
            Mechanism::Kprobe {
                function: "macvtap_count_rx_dropped",
                program: "vp_mvtap_kprobe",
                exit: None,
            },
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

    #[test]
    fn companions_share_their_mechanism_kind() {
        let p = find("sched.wakeup_latency").unwrap();
        for m in p.mechanisms {
            assert_eq!(m.companions().len(), 2, "{}", m.label());
            assert!(m.companions().iter().all(|c| c.kind() == m.kind()));
            assert!(m.companions().iter().all(|c| c.companions().is_empty()));
        }
        assert_eq!(
            p.mechanisms[0].label(),
            "tp_btf/sched_switch+sched_wakeup+sched_wakeup_new"
        );
        assert!(find("skb.drop").unwrap().mechanisms[0]
            .companions()
            .is_empty());
    }

    #[test]
    fn default_filters_name_real_fields() {
        for (probe, field, _) in DEFAULT_FILTERS {
            let p = find(probe).unwrap_or_else(|| panic!("no probe {probe}"));
            assert!(p.field(field).is_some(), "{probe}.{field}");
        }
        let p = find("sched.wakeup_latency").unwrap();
        let d: Vec<_> = p.default_filters().map(|(f, v)| (f.name, v)).collect();
        assert_eq!(d, vec![("comm", "vhost-*")]);
    }
}
