//! `tcp.retransmit` and `tcp.probe` (bpf/tcp.bpf.c).

use super::fields::{addr, num};
use super::{Capture, FieldDef, FieldKind, Mechanism, Object, ProbeDef};
use crate::object::object;

/// Names of `tcp.retransmit`'s `kind` values, by number (keep in sync with
/// KIND_* in bpf/tcp.bpf.c).
pub const RETRANSMIT_KINDS: &[&str] = &["other", "timeout", "tlp", "fast", "syn", "synack"];

/// `prebuilt/tcp.o`.
pub static OBJECT: Object = object!("tcp");

// The socket's slots (SOCK_SLOTS in bpf/tcp.bpf.c), first in both programs.
const SADDR: FieldDef = addr("saddr", 0, "local address");
const DADDR: FieldDef = addr("daddr", 1, "remote address");
const SPORT: FieldDef = num("sport", 0, FieldKind::Port, "local port");
const DPORT: FieldDef = num("dport", 1, FieldKind::Port, "remote port");
const STATE: FieldDef = num("state", 2, FieldKind::TcpState, "TCP state of the socket");
const FAMILY: FieldDef = num("family", 3, FieldKind::Family, "address family");
const NETNS: FieldDef = num(
    "netns",
    4,
    FieldKind::Netns,
    "network namespace inode of the socket",
);

// Payload bytes of a segment; the same slot in both programs.
const LEN: FieldDef = num("len", 11, FieldKind::Uint, "payload bytes of the segment");

// keep in sync with bpf/tcp.bpf.c (S_*, A_*; the catalog tests check)
const RETRANSMIT_FIELDS: &[FieldDef] = &[
    SADDR,
    DADDR,
    SPORT,
    DPORT,
    STATE,
    FAMILY,
    NETNS,
    num(
        "seq",
        15,
        FieldKind::Uint,
        "first sequence number of the segment sent again",
    ),
    LEN,
    num(
        "ack",
        16,
        FieldKind::Uint,
        "acknowledgment number it carries (rcv_nxt)",
    ),
    num(
        "segs",
        17,
        FieldKind::Uint,
        "segments it counts for (tcp_skb_pcount: what TcpRetransSegs adds when err is 0, and when the transmit itself failed, which TCPRetransFail also counts)",
    ),
    num(
        "err",
        18,
        FieldKind::Int,
        "0 if it was sent; else why not (-EBUSY: the original is still in a queue of this host, -ENOMEM, ..., or the transmit's own error); 0 before Linux 6.13, which traced only what was sent",
    ),
    num(
        "kind",
        19,
        FieldKind::RetransmitKind,
        "why: timeout (after an RTO), tlp (tail-loss probe), fast (fast retransmit/recovery), syn, synack, other",
    ),
    num(
        "tcp_flags",
        20,
        FieldKind::TcpFlags,
        "TCP flags of the segment (SYN, FIN, ...)",
    ),
];

const PROBE_FIELDS: &[FieldDef] = &[
    SADDR,
    DADDR,
    SPORT,
    DPORT,
    STATE,
    FAMILY,
    NETNS,
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
    LEN,
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

/// `tcp.retransmit`.
pub const RETRANSMIT: ProbeDef = ProbeDef {
    name: "tcp.retransmit",
    subsystem: "tcp",
    about: "a TCP segment retransmitted (also a listener's SYN-ACK), with its sequence, length, segments, error and kind",
    object: &OBJECT,
    fields: RETRANSMIT_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("tcp_retransmit_skb", "vp_retx_btf")
            .with_companions(&[Mechanism::tp_btf("tcp_retransmit_synack", "vp_synack_btf")]),
        Mechanism::tracepoint("tcp", "tcp_retransmit_skb", "vp_retx_tp").with_companions(&[
            Mechanism::tracepoint("tcp", "tcp_retransmit_synack", "vp_synack_tp"),
        ]),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::Segment,
    unseen: "retransmissions made while the kernel runs no BPF program: on a Firecracker guest's Linux 6.18 none runs while a thread of PID 1 is the current task, so tail-loss probes and RTOs whose timer (tcp_write_timer) fires in softirq on top of one make no event; TcpRetransSegs counts them and ftrace records them (docs/DESIGN.md, Counter fidelity)",
};

/// `tcp.probe`. tcp_probe: 4.16+; the classic record carries the socket on
/// recent kernels (else state, netns and rttvar read 0).
pub const PROBE: ProbeDef = ProbeDef {
    name: "tcp.probe",
    subsystem: "tcp",
    about:
        "a segment received on an established TCP socket, with its RTT, congestion and window state",
    object: &OBJECT,
    fields: PROBE_FIELDS,
    mechanisms: &[
        Mechanism::tp_btf("tcp_probe", "vp_probe_btf"),
        Mechanism::tracepoint("tcp", "tcp_probe", "vp_probe_tp"),
    ],
    default_filters: &[],
    sites: &[],
    site_calls: &[],
    capture: Capture::None,
    unseen: "",
};
