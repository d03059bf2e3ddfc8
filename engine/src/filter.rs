//! Filter values → the in-kernel `settings` of a program instance.
//!
//! `validate` is what `vprobe check` and the script API call (no kernel needed
//! beyond readable BTF and kallsyms names); `settings` builds the load-time
//! settings and is the one place that knows the encoding of each field kind.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;

use vprobe_probes::abi::{self, Settings};
use vprobe_probes::{suggest, FieldDef, FieldKind, Slot};

use crate::plan::{Consumer, FilterValue, HistKind, ProbeRequest};
use crate::symbols::Symbols;
use crate::value::{ETHERTYPES, FAMILIES, TCP_STATES};

/// What a value of this kind looks like, for error messages.
pub fn expected(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Uint | FieldKind::Port | FieldKind::Ifindex => {
            "a number, a range (`a..b`) or a list of them"
        }
        FieldKind::Int => "an integer, a range or a list of them",
        FieldKind::Netns => {
            "a namespace inode, a name from `ip netns`, or a path like /proc/PID/ns/net"
        }
        FieldKind::Dev => "a device name or a glob ending in `*` (`macvtap*`)",
        FieldKind::DropReason => "a drop reason name (`FULL_RING`) or number",
        FieldKind::KernelAddr => "a kernel function name (`tap_handle_frame`) or address",
        FieldKind::EtherType => "an EtherType number or `ip`, `ipv6`, `arp`",
        FieldKind::IpAddr => "an IP address string (`192.0.2.1`, `2001:db8::1`)",
        FieldKind::TcpState => "a TCP state (`ESTABLISHED`) or number",
        FieldKind::Family => "`inet`, `inet6` or a number",
        FieldKind::Str => "a string or a prefix glob ending in `*` (`vhost-*`)",
    }
}

/// One encoded filter term.
#[derive(Clone, Debug, PartialEq)]
enum Term {
    Range(u64, u64),
    Addr([u8; 16]),
    /// A string compared over `len` bytes: its NUL too (exact) or not (prefix).
    Str {
        bytes: [u8; abi::DEV_LEN],
        len: u32,
    },
}

/// Checks that `values` suit `field`; the error says what was expected.
pub fn validate(field: &FieldDef, values: &[FilterValue], symbols: &Symbols) -> Result<(), String> {
    terms(field, values, symbols, false).map(|_| ())
}

fn terms(
    field: &FieldDef,
    values: &[FilterValue],
    symbols: &Symbols,
    resolve: bool,
) -> Result<Vec<Term>, String> {
    if !field.filter {
        return Err(format!("field `{}` cannot be filtered", field.name));
    }
    if values.is_empty() {
        return Err(format!(
            "filter on `{}` needs at least one value",
            field.name
        ));
    }
    let mut out = Vec::new();
    for v in values {
        term(field, v, symbols, resolve, &mut out)?;
    }
    let max = if field.slot == Slot::Dev {
        abi::DEV_MAX
    } else {
        abi::FILTER_MAX
    };
    if out.len() > max {
        return Err(format!(
            "filter on `{}` takes at most {max} values, got {}",
            field.name,
            out.len()
        ));
    }
    Ok(out)
}

fn term(
    field: &FieldDef,
    v: &FilterValue,
    symbols: &Symbols,
    resolve: bool,
    out: &mut Vec<Term>,
) -> Result<(), String> {
    let bad = || {
        format!(
            "filter on `{}` expects {}, got {}",
            field.name,
            expected(field.kind),
            show(v)
        )
    };
    let exact = |n: u64| Term::Range(n, n);
    match (field.kind, v) {
        (
            FieldKind::Uint | FieldKind::Port | FieldKind::Ifindex | FieldKind::Netns,
            FilterValue::Int(n),
        ) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::Uint | FieldKind::Port | FieldKind::Ifindex, FilterValue::Range(lo, hi))
            if *lo >= 0 && lo <= hi =>
        {
            out.push(Term::Range(*lo as u64, *hi as u64))
        }
        (FieldKind::Int, FilterValue::Int(n)) => out.push(exact(*n as u64)),
        (FieldKind::Int, FilterValue::Range(lo, hi)) if lo <= hi => {
            // two's complement: a range across zero is two ranges of u64
            if *lo < 0 && *hi >= 0 {
                out.push(Term::Range(*lo as u64, u64::MAX));
                out.push(Term::Range(0, *hi as u64));
            } else {
                out.push(Term::Range(*lo as u64, *hi as u64));
            }
        }
        (FieldKind::Netns, FilterValue::Str(s)) => out.push(exact(netns_inode(s)?)),
        (FieldKind::Dev, FilterValue::Str(s)) => out.push(str_term(s, "device name")?),
        (FieldKind::Str, FilterValue::Str(s)) => out.push(str_term(s, "string")?),
        (FieldKind::DropReason, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::DropReason, FilterValue::Str(s)) => match symbols.reason_value(s) {
            Some(n) => out.push(exact(n)),
            None if !symbols.has_reasons() => {
                return Err(format!(
                "cannot resolve drop reason `{s}`: this kernel's BTF has no `enum skb_drop_reason`"
            ))
            }
            None => {
                let hint = suggest(&s.to_ascii_uppercase(), symbols.reason_names())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(format!("unknown drop reason `{s}`{hint}"));
            }
        },
        (FieldKind::KernelAddr, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::KernelAddr, FilterValue::Str(s)) => {
            if !symbols.has_kallsyms() {
                if resolve {
                    return Err(format!(
                        "cannot resolve `{s}`: /proc/kallsyms is not readable"
                    ));
                }
            } else {
                match symbols.symbol_range(s) {
                    Some((0, _)) if resolve => {
                        return Err(format!(
                            "cannot resolve `{s}`: /proc/kallsyms shows no addresses (needs root or CAP_SYSLOG)"
                        ))
                    }
                    Some((lo, hi)) => out.push(Term::Range(lo, hi.saturating_sub(1))),
                    None => return Err(format!("unknown kernel function `{s}` (not in /proc/kallsyms)")),
                }
            }
        }
        (FieldKind::EtherType, FilterValue::Int(n)) if (0..=0xffff).contains(n) => {
            out.push(exact(*n as u64))
        }
        (FieldKind::EtherType, FilterValue::Str(s)) => {
            let n = ETHERTYPES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(s))
                .ok_or_else(bad)?
                .0;
            out.push(exact(n))
        }
        (FieldKind::TcpState, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::TcpState, FilterValue::Str(s)) => {
            let up = s.to_ascii_uppercase();
            let up = up.strip_prefix("TCP_").unwrap_or(&up);
            let n = TCP_STATES
                .iter()
                .position(|t| !t.is_empty() && *t == up)
                .ok_or_else(bad)?;
            out.push(exact(n as u64))
        }
        (FieldKind::Family, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::Family, FilterValue::Str(s)) => {
            let n = FAMILIES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(s))
                .ok_or_else(bad)?
                .0;
            out.push(exact(n))
        }
        (FieldKind::IpAddr, FilterValue::Str(s)) => {
            let ip: IpAddr = s.parse().map_err(|_| bad())?;
            let v6 = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(Term::Addr(v6.octets()))
        }
        _ => return Err(bad()),
    }
    Ok(())
}

fn show(v: &FilterValue) -> String {
    match v {
        FilterValue::Int(n) => format!("the number {n}"),
        FilterValue::Str(s) => format!("the string \"{s}\""),
        FilterValue::Range(lo, hi) => format!("the range {lo}..={hi}"),
    }
}

/// A name or a prefix glob (`macvtap*`) for a 16-byte string slot.
fn str_term(s: &str, what: &str) -> Result<Term, String> {
    let (name, prefix) = match s.strip_suffix('*') {
        Some(p) => (p, true),
        None => (s, false),
    };
    if name.contains(['*', '?', '[', ']']) {
        return Err(format!(
            "pattern `{s}`: only a trailing `*` can be matched in the kernel (`macvtap*`)"
        ));
    }
    if name.len() >= abi::DEV_LEN {
        return Err(format!(
            "{what} `{s}` is longer than {} bytes, the most the kernel side keeps",
            abi::DEV_LEN - 1
        ));
    }
    let mut bytes = [0u8; abi::DEV_LEN];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    // exact: compare the terminating NUL too
    let len = if prefix { name.len() } else { name.len() + 1 } as u32;
    Ok(Term::Str { bytes, len })
}

/// Inode of a network namespace given by `ip netns` name or by path.
pub fn netns_inode(s: &str) -> Result<u64, String> {
    let path = if s.contains('/') {
        s.to_string()
    } else {
        format!("/run/netns/{s}")
    };
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|e| format!("network namespace `{s}`: cannot stat {path}: {e}"))
}

fn key_bit(field: &FieldDef) -> u32 {
    match field.slot {
        Slot::Num(i) => 1 << i,
        Slot::Addr(i) => 1 << (abi::KEY_ADDR0 + i as u32),
        Slot::Dev => 1 << abi::KEY_DEV,
    }
}

/// The load-time settings of one request. `wake_bytes` is set by the session.
pub fn settings(req: &ProbeRequest, symbols: &Symbols) -> Result<Settings, String> {
    let mut s = Settings::default();
    let mut filtered = 0u32;
    for f in &req.filters {
        filtered |= key_bit(f.field);
        for t in terms(f.field, &f.values, symbols, true)? {
            match (t, f.field.slot) {
                (Term::Range(lo, hi), Slot::Num(i)) => {
                    let i = i as usize;
                    let n = s.filter_n[i] as usize;
                    if n >= abi::FILTER_MAX {
                        return Err(format!("too many filter values on `{}`", f.field.name));
                    }
                    s.filter_lo[i][n] = lo;
                    s.filter_hi[i][n] = hi;
                    s.filter_n[i] += 1;
                }
                (Term::Addr(a), Slot::Addr(i)) => {
                    let i = i as usize;
                    let n = s.addr_filter_n[i] as usize;
                    if n >= abi::FILTER_MAX {
                        return Err(format!("too many filter values on `{}`", f.field.name));
                    }
                    s.addr_filter[i][n] = a;
                    s.addr_filter_n[i] += 1;
                }
                // a string in an address slot: one compare length for the slot,
                // so an exact name and a prefix cannot be mixed there
                (Term::Str { bytes, len }, Slot::Addr(i)) => {
                    let i = i as usize;
                    let n = s.addr_filter_n[i] as usize;
                    if n >= abi::FILTER_MAX {
                        return Err(format!("too many filter values on `{}`", f.field.name));
                    }
                    if n > 0 && s.addr_filter_len[i] != len {
                        return Err(format!(
                            "filter on `{}`: its values must all be exact names, or all prefixes of one length",
                            f.field.name
                        ));
                    }
                    s.addr_filter[i][n] = bytes;
                    s.addr_filter_len[i] = len;
                    s.addr_filter_n[i] += 1;
                }
                (Term::Str { bytes, len }, Slot::Dev) => {
                    let n = s.dev_filter_n as usize;
                    if n >= abi::DEV_MAX {
                        return Err(format!("too many device patterns on `{}`", f.field.name));
                    }
                    s.dev_filter[n] = bytes;
                    s.dev_filter_len[n] = len;
                    s.dev_filter_n += 1;
                }
                (_, _) => {
                    return Err(format!(
                        "field `{}`: value does not fit its slot",
                        f.field.name
                    ))
                }
            }
        }
    }
    match &req.consumer {
        Consumer::Count { keys, .. } => {
            s.mode = abi::MODE_COUNT;
            s.key_mask = keys.iter().map(|k| key_bit(k)).fold(0, |a, b| a | b);
        }
        Consumer::Hist {
            field, keys, kind, ..
        } => {
            s.mode = abi::MODE_HIST;
            s.key_mask = keys.iter().map(|k| key_bit(k)).fold(0, |a, b| a | b);
            s.hist_slot = match field.slot {
                Slot::Num(i) => i as u32,
                _ => return Err(format!("cannot histogram `{}`: not a number", field.name)),
            };
            match kind {
                HistKind::Log2 => s.hist_kind = abi::HIST_LOG2,
                HistKind::Linear { step } => {
                    s.hist_kind = abi::HIST_LINEAR;
                    s.hist_step = (*step).max(1);
                }
            }
        }
        Consumer::Events { .. } => {
            s.mode = abi::MODE_EVENTS;
        }
    }
    // Read what is keyed, filtered or histogrammed; an event carries every field.
    s.need_mask = match req.consumer {
        Consumer::Events { .. } => u32::MAX,
        Consumer::Hist { .. } => s.key_mask | filtered | (1 << s.hist_slot),
        Consumer::Count { .. } => s.key_mask | filtered,
    };
    generic_settings(req, &mut s)?;
    Ok(s)
}

/// The parts of the settings only the generic programs read: where a
/// tracepoint's fields lie in its record, and whether calls are timed.
fn generic_settings(req: &ProbeRequest, s: &mut Settings) -> Result<(), String> {
    // Function probes: time calls (entry stores, return submits) when the
    // latency is read at all.
    let latency = 1u32 << vprobe_probes::catalog::FUNC_LATENCY_SLOT;
    if req.probe.mechanisms.iter().any(|m| m.exit().is_some()) && s.need_mask & latency != 0 {
        s.timing = 1;
    }
    let Some(layout) = req.probe.mechanisms.iter().find_map(|m| m.layout()) else {
        return Ok(());
    };
    for f in layout {
        match f.slot {
            Slot::Num(i) => s.raw_num[i as usize] = f.raw,
            Slot::Addr(i) => s.raw_addr[i as usize] = f.raw,
            Slot::Dev => s.raw_dev = f.raw,
        }
    }
    // Every field used must have come with the layout (the session narrows
    // generic tracepoint requests first); a placeholder slot would read nothing.
    let used = req
        .filters
        .iter()
        .map(|f| f.field)
        .chain(match &req.consumer {
            Consumer::Count { keys, .. } => keys.clone(),
            Consumer::Hist { field, keys, .. } => keys.iter().copied().chain([*field]).collect(),
            Consumer::Events { .. } => req.probe.fields.iter().collect(),
        });
    for f in used {
        if !layout.iter().any(|l| l.slot == f.slot) {
            return Err(format!(
                "`{}`: field `{}` has no place in the record (the request was not narrowed)",
                req.probe.name, f.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Filter, Origin};

    fn probe() -> &'static vprobe_probes::ProbeDef {
        vprobe_probes::find("skb.drop").unwrap()
    }

    fn syms() -> Symbols {
        Symbols::from_parts(
            None,
            vec![(2, "NOT_SPECIFIED".into()), (80, "FULL_RING".into())],
        )
    }

    fn req(filters: Vec<(&str, Vec<FilterValue>)>) -> ProbeRequest {
        let p = probe();
        ProbeRequest {
            probe: p,
            filters: filters
                .into_iter()
                .map(|(f, values)| Filter {
                    field: p.field(f).unwrap(),
                    values,
                })
                .collect(),
            consumer: Consumer::Count {
                name: "c".into(),
                keys: vec![p.field("dev").unwrap(), p.field("reason").unwrap()],
            },
            origin: Origin::default(),
        }
    }

    #[test]
    fn encodes_reason_dev_and_ranges() {
        let s = settings(
            &req(vec![
                ("reason", vec![FilterValue::Str("full_ring".into())]),
                (
                    "dev",
                    vec![
                        FilterValue::Str("mvt0".into()),
                        FilterValue::Str("macvtap*".into()),
                    ],
                ),
                ("len", vec![FilterValue::Range(64, 1500)]),
            ]),
            &syms(),
        )
        .unwrap();
        assert_eq!(
            (s.filter_n[2], s.filter_lo[2][0], s.filter_hi[2][0]),
            (1, 80, 80)
        );
        assert_eq!(
            (s.filter_n[5], s.filter_lo[5][0], s.filter_hi[5][0]),
            (1, 64, 1500)
        );
        assert_eq!(s.dev_filter_n, 2);
        assert_eq!(
            (&s.dev_filter[0][..5], s.dev_filter_len[0]),
            (&b"mvt0\0"[..], 5)
        );
        assert_eq!(
            (&s.dev_filter[1][..7], s.dev_filter_len[1]),
            (&b"macvtap"[..], 7)
        );
        assert_eq!(s.key_mask, (1 << abi::KEY_DEV) | (1 << 2));
        assert_eq!(s.mode, abi::MODE_COUNT);
        // keyed dev+reason, filtered len (slot 5): nothing else is read
        assert_eq!(s.need_mask, (1 << abi::KEY_DEV) | (1 << 2) | (1 << 5));
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let p = probe();
        let e = validate(
            p.field("len").unwrap(),
            &[FilterValue::Str("big".into())],
            &syms(),
        )
        .unwrap_err();
        assert!(e.contains("expects a number"), "{e}");
        let e = validate(
            p.field("reason").unwrap(),
            &[FilterValue::Str("FULL_RNG".into())],
            &syms(),
        )
        .unwrap_err();
        assert!(e.contains("did you mean `FULL_RING`"), "{e}");
        let e = validate(
            p.field("dev").unwrap(),
            &[FilterValue::Str("m?vt".into())],
            &syms(),
        )
        .unwrap_err();
        assert!(e.contains("trailing `*`"), "{e}");
    }

    #[test]
    fn function_probes_time_calls_only_when_latency_is_read() {
        let p = crate::generic::resolve("uprobe:libc:usleep")
            .unwrap()
            .unwrap();
        let count = |keys: &[&str], filters: Vec<Filter>| ProbeRequest {
            probe: p,
            filters,
            consumer: Consumer::Count {
                name: "c".into(),
                keys: keys.iter().map(|k| p.field(k).unwrap()).collect(),
            },
            origin: Origin::default(),
        };
        let s = settings(&count(&["comm"], vec![]), &syms()).unwrap();
        assert_eq!(s.timing, 0);
        assert_eq!(s.key_mask, 1 << abi::KEY_DEV);
        let slow = Filter {
            field: p.field("latency").unwrap(),
            values: vec![FilterValue::Range(1_000_000, 9_000_000)],
        };
        assert_eq!(
            settings(&count(&["pid"], vec![slow]), &syms())
                .unwrap()
                .timing,
            1
        );
        let mut events = count(&[], vec![]);
        events.consumer = Consumer::Events { callback: 0 };
        assert_eq!(settings(&events, &syms()).unwrap().timing, 1);
        // comm filters take a prefix in the dev slot
        let comm = Filter {
            field: p.field("comm").unwrap(),
            values: vec![FilterValue::Str("qemu-*".into())],
        };
        let s = settings(&count(&[], vec![comm]), &syms()).unwrap();
        assert_eq!((s.dev_filter_n, s.dev_filter_len[0]), (1, 5));
    }

    #[test]
    fn negative_ranges_split_across_zero() {
        let f = vprobe_probes::find("dev.xmit")
            .unwrap()
            .field("rc")
            .unwrap();
        let mut out = Vec::new();
        term(f, &FilterValue::Range(-5, 3), &syms(), true, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Term::Range(-5i64 as u64, u64::MAX), Term::Range(0, 3)]
        );
    }
}
