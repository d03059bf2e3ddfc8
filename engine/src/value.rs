//! Typed field values, decoded from kernel records for display, JSON and scripts.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;
use vprobe_probes::abi::Record;
use vprobe_probes::{FieldDef, FieldKind, Slot};

use crate::symbols::Symbols;

/// A decoded field value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Unsigned number.
    Uint(u64),
    /// Signed number.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// Name, address or symbol.
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Uint(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// The raw number in a numeric slot (0 for non-numeric fields).
pub fn raw(field: &FieldDef, rec: &Record) -> u64 {
    match field.slot {
        Slot::Num(i) => rec.num[i as usize],
        _ => 0,
    }
}

/// Decodes `field` from `rec`, naming what can be named.
pub fn decode(field: &FieldDef, rec: &Record, symbols: &Symbols) -> Value {
    match field.slot {
        // device name or thread name (FieldKind::Dev, FieldKind::Comm)
        Slot::Dev => Value::Str(cstr(&rec.dev)),
        // an address slot holds an address, or a string of a generic tracepoint
        Slot::Addr(i) if field.kind == FieldKind::Str => Value::Str(cstr(&rec.addr[i as usize])),
        Slot::Addr(i) => Value::Str(addr_string(&rec.addr[i as usize])),
        Slot::Num(i) => {
            let v = rec.num[i as usize];
            match field.kind {
                FieldKind::Int => Value::Int(v as i64),
                FieldKind::DropReason => Value::Str(symbols.reason_name(v)),
                FieldKind::KernelAddr => Value::Str(symbols.kernel_addr(v)),
                FieldKind::EtherType => Value::Str(ethertype_name(v)),
                FieldKind::TcpState => Value::Str(tcp_state_name(v)),
                FieldKind::TcpFlags => Value::Str(tcp_flags_string(v)),
                FieldKind::RetransmitKind => Value::Str(retransmit_kind_name(v)),
                FieldKind::Family => Value::Str(family_name(v)),
                FieldKind::Layer => Value::Str(vprobe_probes::layers::name(v).to_string()),
                FieldKind::Uint
                | FieldKind::Ifindex
                | FieldKind::Netns
                | FieldKind::Port
                | FieldKind::Duration => Value::Uint(v),
                FieldKind::Bool => Value::Bool(v != 0),
                FieldKind::TcHandle => Value::Str(tc_handle_string(v as u32)),
                FieldKind::KvmExitReason => Value::Str(symbols.kvm_exit_name(v)),
                FieldKind::Dev | FieldKind::Comm | FieldKind::IpAddr | FieldKind::Str => {
                    Value::Uint(v)
                }
            }
        }
    }
}

/// A NUL-padded C string.
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// `::ffff:a.b.c.d` is shown as `a.b.c.d`.
pub fn addr_string(b: &[u8; 16]) -> String {
    let v6 = Ipv6Addr::from(*b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4).to_string(),
        None => IpAddr::V6(v6).to_string(),
    }
}

/// EtherType names for the common protocols.
pub const ETHERTYPES: &[(u64, &str)] = &[
    (0x0800, "IP"),
    (0x86dd, "IPV6"),
    (0x0806, "ARP"),
    (0x8100, "8021Q"),
];

fn ethertype_name(v: u64) -> String {
    ETHERTYPES
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("0x{v:04x}"))
}

/// TCP states as include/net/tcp_states.h numbers them.
pub const TCP_STATES: &[&str] = &[
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
    "BOUND_INACTIVE",
];

fn tcp_state_name(v: u64) -> String {
    TCP_STATES
        .get(v as usize)
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .unwrap_or_else(|| v.to_string())
}

/// TCP header flags by bit (`tcp[13]`), lowest first.
pub const TCP_FLAGS: &[&str] = &["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

/// `SYN|ACK`; `none` for no flag.
pub fn tcp_flags_string(v: u64) -> String {
    let names: Vec<&str> = TCP_FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| v & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

/// `SYN|ACK` (any case, any order) → its bits; None for an unknown name.
pub fn parse_tcp_flags(s: &str) -> Option<u64> {
    if s.eq_ignore_ascii_case("none") {
        return Some(0);
    }
    s.split('|').try_fold(0u64, |acc, name| {
        let i = TCP_FLAGS
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name.trim()))?;
        Some(acc | 1 << i)
    })
}

fn retransmit_kind_name(v: u64) -> String {
    vprobe_probes::catalog::tcp::RETRANSMIT_KINDS
        .get(v as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| v.to_string())
}

/// `TC_H_ROOT`: the parent of a root qdisc.
pub const TC_H_ROOT: u32 = 0xffff_ffff;

/// A tc handle as `tc` prints it: `1:`, `1:10`, `root`, `none` (hex major:minor).
pub fn tc_handle_string(h: u32) -> String {
    match h {
        TC_H_ROOT => "root".into(),
        0 => "none".into(),
        h if h & 0xffff == 0 => format!("{:x}:", h >> 16),
        h => format!("{:x}:{:x}", h >> 16, h & 0xffff),
    }
}

/// Parses what [`tc_handle_string`] writes, plus `1:0` and plain numbers as strings.
pub fn parse_tc_handle(s: &str) -> Option<u32> {
    let s = s.trim();
    match s {
        "root" => return Some(TC_H_ROOT),
        "none" => return Some(0),
        _ => {}
    }
    let hex = |p: &str| {
        if p.is_empty() {
            Some(0)
        } else if p.len() <= 4 {
            u32::from_str_radix(p, 16).ok()
        } else {
            None
        }
    };
    match s.split_once(':') {
        Some((maj, min)) if !maj.is_empty() => Some((hex(maj)? << 16) | hex(min)?),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

/// Address families vprobe names.
pub const FAMILIES: &[(u64, &str)] = &[(2, "inet"), (10, "inet6")];

fn family_name(v: u64) -> String {
    FAMILIES
        .iter()
        .find(|(n, _)| *n == v)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_addresses_print_as_v4() {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(addr_string(&b), "192.0.2.1");
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr_string(&v6.octets()), "2001:db8::1");
    }

    #[test]
    fn names_known_numbers_and_shows_others() {
        assert_eq!(ethertype_name(0x0800), "IP");
        assert_eq!(ethertype_name(0x1234), "0x1234");
        assert_eq!(tcp_state_name(1), "ESTABLISHED");
        assert_eq!(tcp_state_name(99), "99");
        assert_eq!(cstr(b"mvt0\0\0\0"), "mvt0");
    }

    #[test]
    fn tc_handles_read_and_print_like_tc() {
        for (h, s) in [
            (0x0001_0000, "1:"),
            (0x0001_0010, "1:10"),
            (0x8001_0000, "8001:"),
            (0xffff_fff1, "ffff:fff1"),
            (TC_H_ROOT, "root"),
            (0, "none"),
        ] {
            assert_eq!(tc_handle_string(h), s);
            assert_eq!(parse_tc_handle(s), Some(h), "{s}");
        }
        assert_eq!(parse_tc_handle("1:0"), Some(0x0001_0000));
        assert_eq!(parse_tc_handle("65536"), Some(0x0001_0000));
        assert_eq!(parse_tc_handle(":1"), None);
        assert_eq!(parse_tc_handle("1:fffff"), None);
        assert_eq!(parse_tc_handle("x:1"), None);
    }
}
