//! `sock.rcvqueue_full` (bpf/sock.bpf.c).

use super::fields::{addr, num};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef, Slot};
use crate::object::object;

/// `prebuilt/sock.o`.
pub static OBJECT: Object = object!("sock");

// keep in sync with bpf/sock.bpf.c (S_*, A_*, D_*; the catalog tests check)
const FIELDS: &[FieldDef] = &[
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

/// `sock.rcvqueue_full`. sock_rcvqueue_full: any kernel; the classic record
/// has no socket, so only rmem, truesize and rcvbuf are filled there. UDP's
/// own queue (udp_fail_queue_rcv_skb, companion): the classic record has the
/// flow since 6.10, not the queue.
pub const RCVQUEUE_FULL: ProbeDef = ProbeDef {
    name: "sock.rcvqueue_full",
    subsystem: "socket",
    about: "a packet refused by a full socket receive queue: UDP over IPv4 and IPv6 (what the kernel counts as RcvbufErrors), ping sockets and other sock_queue_rcv_skb users. Not raw sockets on recent kernels (6.18 measured): raw_v4_input/raw_v6_input skip a full socket before cloning the packet, so its drop makes no event and shows only in /proc/net/raw's drops column",
    object: &OBJECT,
    fields: FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("sock_rcvqueue_full", "vp_rcvq_btf")
            .with_companions(&[Mechanism::tp_btf("udp_fail_queue_rcv_skb", "vp_rcvq_udp_btf")]),
        Mechanism::tracepoint("sock", "sock_rcvqueue_full", "vp_rcvq_tp").with_companions(&[
            Mechanism::tracepoint("udp", "udp_fail_queue_rcv_skb", "vp_rcvq_udp_tp"),
        ]),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::Packet { without: &[] },
    unseen: "",
};
