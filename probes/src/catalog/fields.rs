//! Typed fields: where each lives in the shared record, how it is typed, and
//! the constructors the per-object modules share.

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
    /// TCP header flags (`tcp[13]`), shown as `SYN|ACK`; filters take a
    /// number or names joined by `|` (that exact set).
    TcpFlags,
    /// Why TCP sent a segment again (`timeout`, `tlp`, `fast`, `syn`,
    /// `synack`, `other`: [`crate::catalog::tcp::RETRANSMIT_KINDS`]).
    RetransmitKind,
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

/// A filterable, keyable field in `num[slot]`.
pub(super) const fn num(
    name: &'static str,
    slot: u8,
    kind: FieldKind,
    about: &'static str,
) -> FieldDef {
    FieldDef {
        name,
        slot: Slot::Num(slot),
        kind,
        filter: true,
        key: true,
        about,
    }
}

/// A yes/no field in `num[slot]`.
pub(super) const fn flag(name: &'static str, slot: u8, about: &'static str) -> FieldDef {
    num(name, slot, FieldKind::Bool, about)
}

/// An IP address in `addr[slot]`.
pub(super) const fn addr(name: &'static str, slot: u8, about: &'static str) -> FieldDef {
    FieldDef {
        name,
        slot: Slot::Addr(slot),
        kind: FieldKind::IpAddr,
        filter: true,
        key: true,
        about,
    }
}

/// The device name in `dev`.
pub(super) const DEV: FieldDef = FieldDef {
    name: "dev",
    slot: Slot::Dev,
    kind: FieldKind::Dev,
    filter: true,
    key: true,
    about: "device name (empty when the skb has none)",
};

/// A thread name in `dev`.
pub(super) const COMM: FieldDef = FieldDef {
    name: "comm",
    slot: Slot::Dev,
    kind: FieldKind::Comm,
    filter: true,
    key: true,
    about: "thread name",
};

/// Slot 0 of every device-side program (`vp_fill_dev()`).
pub(super) const DEV_IFINDEX: FieldDef = num(
    "ifindex",
    0,
    FieldKind::Ifindex,
    "interface index within its namespace",
);

/// Slot 1 of every device-side program (`vp_fill_dev()`).
pub(super) const DEV_NETNS: FieldDef = num(
    "netns",
    1,
    FieldKind::Netns,
    "network namespace inode of the device",
);

// Slots 2 and 3 of every drop program (skb_drop.bpf.c, tap.bpf.c).
pub(super) const DROP_REASON: FieldDef = num(
    "reason",
    2,
    FieldKind::DropReason,
    "drop reason (enum skb_drop_reason)",
);
pub(super) const DROP_LOCATION: FieldDef = num(
    "location",
    3,
    FieldKind::KernelAddr,
    "where the skb was freed (symbol+offset)",
);

// The flow of a dropped packet, from its headers (bpf/include/pkt.bpf.h).
pub(super) const SADDR_PKT: FieldDef =
    addr("saddr", 0, "source address from the packet's IP header");
pub(super) const DADDR_PKT: FieldDef = addr(
    "daddr",
    1,
    "destination address from the packet's IP header",
);
pub(super) const fn sport_pkt(slot: u8) -> FieldDef {
    num(
        "sport",
        slot,
        FieldKind::Port,
        "TCP/UDP source port from the packet",
    )
}
pub(super) const fn dport_pkt(slot: u8) -> FieldDef {
    num(
        "dport",
        slot,
        FieldKind::Port,
        "TCP/UDP destination port from the packet",
    )
}

// The TCP segment of a dropped packet, from its headers (bpf/include/pkt.bpf.h),
// in the slots each drop program gives them.
pub(super) const fn seq(slot: u8) -> FieldDef {
    num(
        "seq",
        slot,
        FieldKind::Uint,
        "TCP sequence number of the packet (0 when not TCP)",
    )
}
pub(super) const fn ack(slot: u8) -> FieldDef {
    num(
        "ack",
        slot,
        FieldKind::Uint,
        "TCP acknowledgment number of the packet",
    )
}
pub(super) const fn tcp_flags(slot: u8) -> FieldDef {
    num(
        "tcp_flags",
        slot,
        FieldKind::TcpFlags,
        "TCP flags of the packet (`ACK|PSH`)",
    )
}
pub(super) const fn tcp_len(slot: u8) -> FieldDef {
    num(
        "tcp_len",
        slot,
        FieldKind::Uint,
        "TCP payload bytes of the packet (0: a pure ACK, or not TCP)",
    )
}
