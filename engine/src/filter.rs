//! Filter values → the in-kernel `settings` of a program instance.
//!
//! `validate` is what `vprobe check` and the script API call (no kernel needed
//! beyond readable BTF and kallsyms names); `settings` builds the load-time
//! settings and is the one place that knows the encoding of each field kind.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;

use vprobe_probes::abi::{self, Settings};
use vprobe_probes::{layers, suggest, FieldDef, FieldKind, Slot};

use crate::plan::{Carried, Consumer, Filter, FilterValue, HistKind, ProbeRequest};
use crate::symbols::{Symbols, SymbolsError, ISA_SVM, ISA_VMX};
use crate::value::{parse_tc_handle, parse_tcp_flags, ETHERTYPES, FAMILIES, TCP_STATES};

/// Why filter values do not suit their field, or do not fit the settings.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The field is not one the kernel side can filter on.
    #[error("field `{field}` cannot be filtered")]
    NotFilterable {
        /// The field.
        field: &'static str,
    },
    /// `.filter(field, [])`.
    #[error("filter on `{field}` needs at least one value")]
    NoValue {
        /// The field.
        field: &'static str,
    },
    /// More values than the settings have room for.
    #[error("filter on `{field}` takes at most {max} values, got {got}")]
    TooManyValues {
        /// The field.
        field: &'static str,
        /// Room in the settings.
        max: usize,
        /// Values given (after encoding: a range across zero is two).
        got: usize,
    },
    /// A value of the wrong type or form.
    #[error("filter on `{field}` expects {expected}, got {got}")]
    Expected {
        /// The field.
        field: &'static str,
        /// What its values look like ([`expected`]).
        expected: &'static str,
        /// The value, described: `the string "big"`.
        got: String,
    },
    /// A malformed duration or duration range.
    #[error("filter on `{field}`")]
    Duration {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: DurationRangeError,
    },
    /// A string pattern the kernel cannot match.
    #[error("{what} pattern `{pattern}`: only a trailing `*` can be matched in the kernel (`{example}`)")]
    Glob {
        /// `device`, `thread` or `string`.
        what: &'static str,
        /// The pattern.
        pattern: String,
        /// A pattern that works.
        example: &'static str,
    },
    /// A name longer than the kernel side keeps.
    #[error("{what} `{name}` is longer than {max} bytes, the most the kernel side keeps")]
    TooLong {
        /// `device`, `thread` or `string`.
        what: &'static str,
        /// The name.
        name: String,
        /// The most the kernel side keeps.
        max: usize,
    },
    /// A network namespace that is not there.
    #[error("network namespace `{name}`: cannot stat {path}")]
    Netns {
        /// As written.
        name: String,
        /// The path looked at.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A KVM exit reason this kernel does not name.
    #[error("unknown KVM exit reason `{name}`{}", did_you_mean(suggestion))]
    UnknownKvmExit {
        /// As written.
        name: String,
        /// The closest name.
        suggestion: Option<String>,
    },
    /// A KVM exit reason name on a host whose names are not at hand.
    #[error("cannot resolve KVM exit reason `{name}`")]
    UnresolvedKvmExit {
        /// As written.
        name: String,
        /// Why the names are not at hand.
        #[source]
        source: SymbolsError,
    },
    /// A kernel function name on a host whose addresses are not at hand.
    #[error("cannot resolve `{name}`")]
    UnresolvedFunction {
        /// As written.
        name: String,
        /// Why the addresses are not at hand.
        #[source]
        source: SymbolsError,
    },
    /// A drop reason on a kernel whose BTF names none.
    #[error(
        "cannot resolve drop reason `{name}`: this kernel's BTF has no `enum skb_drop_reason`"
    )]
    NoDropReasons {
        /// As written.
        name: String,
    },
    /// A drop reason this kernel does not name.
    #[error("unknown drop reason `{name}`{}", did_you_mean(suggestion))]
    UnknownDropReason {
        /// As written.
        name: String,
        /// The closest name.
        suggestion: Option<String>,
    },
    /// A kernel function that is not in /proc/kallsyms.
    #[error("unknown kernel function `{name}` (not in /proc/kallsyms)")]
    UnknownFunction {
        /// As written.
        name: String,
    },
    /// A layer name that is not one.
    #[error("unknown layer `{name}`{} (layers: {})", did_you_mean(suggestion), layers::NAMES.join(", "))]
    UnknownLayer {
        /// As written.
        name: String,
        /// The closest name.
        suggestion: Option<String>,
    },
    /// More values for a slot than the settings hold.
    #[error("too many filter values on `{field}`")]
    SlotFull {
        /// The field.
        field: &'static str,
    },
    /// Strings of different compare lengths in one address slot.
    #[error(
        "filter on `{field}`: its values must all be exact names, or all prefixes of one length"
    )]
    MixedPrefixes {
        /// The field.
        field: &'static str,
    },
    /// More device patterns than the settings hold.
    #[error("too many device patterns on `{field}`")]
    TooManyDevices {
        /// The field.
        field: &'static str,
    },
    /// An encoded value that does not fit the field's slot (a catalog error).
    #[error("field `{field}`: value does not fit its slot")]
    WrongSlot {
        /// The field.
        field: &'static str,
    },
    /// A histogram of a field that is not a number.
    #[error("cannot histogram `{field}`: not a number")]
    NotANumber {
        /// The field.
        field: &'static str,
    },
    /// A generic tracepoint request that was not narrowed first.
    #[error(
        "`{probe}`: field `{field}` has no place in the record (the request was not narrowed)"
    )]
    NotNarrowed {
        /// The attach point.
        probe: &'static str,
        /// The field.
        field: &'static str,
    },
}

/// Why a duration (range) filter value is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationRangeError {
    /// Not a duration.
    #[error(transparent)]
    Duration(#[from] vprobe_time::DurationError),
    /// `5ms..1ms`.
    #[error("the range `{0}` is empty")]
    Empty(String),
}

/// `; did you mean `x`?` when there is a suggestion.
fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

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
        FieldKind::TcpFlags => "TCP flags (`SYN|ACK`, `ACK`) or a number",
        FieldKind::RetransmitKind => {
            "a retransmission kind (`timeout`, `tlp`, `fast`, `syn`, `synack`, `other`) or number"
        }
        FieldKind::Family => "`inet`, `inet6` or a number",
        FieldKind::Layer => "a layer name (`tap`, `tun`, `qdisc`, `tcp`, …; see `vprobe list`)",
        FieldKind::Comm => "a thread name or a glob ending in `*` (`vhost-*`)",
        FieldKind::Duration => {
            "nanoseconds, a duration (`2ms`) or a duration range (`1ms..`, `..500us`, `1ms..5ms`)"
        }
        FieldKind::Bool => "`true` or `false`",
        FieldKind::TcHandle => "a tc handle (`1:`, `1:10`, `root`) or number",
        FieldKind::KvmExitReason => "a KVM exit reason name (`HLT`, `npf`) or number",
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
pub fn validate(
    field: &FieldDef,
    values: &[FilterValue],
    symbols: &Symbols,
) -> Result<(), FilterError> {
    terms(field, values, symbols, false).map(|_| ())
}

fn terms(
    field: &FieldDef,
    values: &[FilterValue],
    symbols: &Symbols,
    resolve: bool,
) -> Result<Vec<Term>, FilterError> {
    if !field.filter {
        return Err(FilterError::NotFilterable { field: field.name });
    }
    if values.is_empty() {
        return Err(FilterError::NoValue { field: field.name });
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
        return Err(FilterError::TooManyValues {
            field: field.name,
            max,
            got: out.len(),
        });
    }
    Ok(out)
}

fn term(
    field: &FieldDef,
    v: &FilterValue,
    symbols: &Symbols,
    resolve: bool,
    out: &mut Vec<Term>,
) -> Result<(), FilterError> {
    let bad = || FilterError::Expected {
        field: field.name,
        expected: expected(field.kind),
        got: show(v),
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
        (FieldKind::Dev, FilterValue::Str(s)) => out.push(str_term(s, "device")?),
        (FieldKind::Comm, FilterValue::Str(s)) => out.push(str_term(s, "thread")?),
        (FieldKind::Duration, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::Duration, FilterValue::Range(lo, hi)) if *lo >= 0 && lo <= hi => {
            out.push(Term::Range(*lo as u64, *hi as u64))
        }
        (FieldKind::Duration, FilterValue::Str(s)) => {
            let (lo, hi) = duration_range(s).map_err(|source| FilterError::Duration {
                field: field.name,
                source,
            })?;
            out.push(Term::Range(lo, hi))
        }
        (FieldKind::Bool, FilterValue::Int(n)) if (0..=1).contains(n) => out.push(exact(*n as u64)),
        (FieldKind::Bool, FilterValue::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" => out.push(exact(1)),
            "false" | "no" => out.push(exact(0)),
            _ => return Err(bad()),
        },
        (FieldKind::TcHandle, FilterValue::Int(n)) if (0..=i64::from(u32::MAX)).contains(n) => {
            out.push(exact(*n as u64))
        }
        (FieldKind::TcHandle, FilterValue::Str(s)) => {
            out.push(exact(u64::from(parse_tc_handle(s).ok_or_else(bad)?)))
        }
        (FieldKind::KvmExitReason, FilterValue::Int(n))
            if (0..=i64::from(u32::MAX)).contains(n) =>
        {
            // a hardware number means the same reason on either vendor's table
            for isa in [ISA_VMX, ISA_SVM] {
                out.push(exact(isa << 32 | *n as u64));
            }
        }
        (FieldKind::KvmExitReason, FilterValue::Str(s)) => match symbols.kvm_exits() {
            Ok(k) => {
                let values = k.values(s);
                if values.is_empty() {
                    return Err(FilterError::UnknownKvmExit {
                        name: s.clone(),
                        suggestion: suggest(s, k.names()).map(str::to_string),
                    });
                }
                out.extend(values.into_iter().map(exact));
            }
            Err(source) if resolve => {
                return Err(FilterError::UnresolvedKvmExit {
                    name: s.clone(),
                    source,
                })
            }
            // `vprobe check` without root or without KVM: checked when it runs
            Err(_) => {}
        },
        (FieldKind::Str, FilterValue::Str(s)) => out.push(str_term(s, "string")?),
        (FieldKind::DropReason, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::DropReason, FilterValue::Str(s)) => match symbols.reason_value(s) {
            Some(n) => out.push(exact(n)),
            None if !symbols.has_reasons() => {
                return Err(FilterError::NoDropReasons { name: s.clone() })
            }
            None => {
                return Err(FilterError::UnknownDropReason {
                    name: s.clone(),
                    suggestion: suggest(&s.to_ascii_uppercase(), symbols.reason_names())
                        .map(str::to_string),
                });
            }
        },
        (FieldKind::KernelAddr, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::KernelAddr, FilterValue::Str(s)) => {
            let unresolved = |source| FilterError::UnresolvedFunction {
                name: s.clone(),
                source,
            };
            if !symbols.has_kallsyms() {
                if resolve {
                    return Err(unresolved(SymbolsError::KallsymsUnreadable));
                }
            } else {
                match symbols.symbol_range(s) {
                    Some((0, _)) if resolve => {
                        return Err(unresolved(SymbolsError::AddressesHidden))
                    }
                    Some((lo, hi)) => out.push(Term::Range(lo, hi.saturating_sub(1))),
                    None => return Err(FilterError::UnknownFunction { name: s.clone() }),
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
        (FieldKind::TcpFlags, FilterValue::Int(n)) if (0..256).contains(n) => {
            out.push(exact(*n as u64))
        }
        (FieldKind::TcpFlags, FilterValue::Str(s)) => {
            out.push(exact(parse_tcp_flags(s).ok_or_else(bad)?))
        }
        (FieldKind::RetransmitKind, FilterValue::Int(n)) if *n >= 0 => out.push(exact(*n as u64)),
        (FieldKind::RetransmitKind, FilterValue::Str(s)) => {
            let n = vprobe_probes::catalog::tcp::RETRANSMIT_KINDS
                .iter()
                .position(|k| k.eq_ignore_ascii_case(s))
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
        (FieldKind::Layer, FilterValue::Str(s)) => match layers::id(s) {
            Some(n) => out.push(exact(u64::from(n))),
            None => {
                return Err(FilterError::UnknownLayer {
                    name: s.clone(),
                    suggestion: suggest(&s.to_ascii_lowercase(), layers::NAMES.iter().copied())
                        .map(str::to_string),
                });
            }
        },
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

/// A name or a prefix glob (`macvtap*`, `vhost-*`) for a 16-byte string slot.
/// `what` names it in errors: `device`, `thread`, `string`.
fn str_term(s: &str, what: &'static str) -> Result<Term, FilterError> {
    let (name, prefix) = match s.strip_suffix('*') {
        Some(p) => (p, true),
        None => (s, false),
    };
    if name.contains(['*', '?', '[', ']']) {
        let example = if what == "device" {
            "macvtap*"
        } else {
            "vhost-*"
        };
        return Err(FilterError::Glob {
            what,
            pattern: s.to_string(),
            example,
        });
    }
    if name.len() >= abi::DEV_LEN {
        return Err(FilterError::TooLong {
            what,
            name: s.to_string(),
            max: abi::DEV_LEN - 1,
        });
    }
    let mut bytes = [0u8; abi::DEV_LEN];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    // exact: compare the terminating NUL too
    let len = if prefix { name.len() } else { name.len() + 1 } as u32;
    Ok(Term::Str { bytes, len })
}

/// `2ms` → [2ms, 2ms]; `1ms..` → [1ms, max]; `..500us` → [0, 500us); `1ms..5ms`
/// → [1ms, 5ms); `1ms..=5ms` → [1ms, 5ms]; in nanoseconds.
fn duration_range(s: &str) -> Result<(u64, u64), DurationRangeError> {
    let ns = |p: &str| -> Result<u64, DurationRangeError> {
        let d = vprobe_time::duration::parse(p)?;
        Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    };
    let Some((a, b)) = s.split_once("..") else {
        let v = ns(s)?;
        return Ok((v, v));
    };
    let lo = if a.trim().is_empty() { 0 } else { ns(a)? };
    let hi = match b.strip_prefix('=') {
        Some(b) => ns(b)?,
        None if b.trim().is_empty() => u64::MAX,
        None => ns(b)?
            .checked_sub(1)
            .ok_or_else(|| DurationRangeError::Empty(s.to_string()))?,
    };
    if lo > hi {
        return Err(DurationRangeError::Empty(s.to_string()));
    }
    Ok((lo, hi))
}

/// Inode of a network namespace given by `ip netns` name or by path.
pub fn netns_inode(s: &str) -> Result<u64, FilterError> {
    let path = if s.contains('/') {
        s.to_string()
    } else {
        format!("/run/netns/{s}")
    };
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|source| FilterError::Netns {
            name: s.to_string(),
            path: path.clone(),
            source,
        })
}

pub(crate) fn key_bit(field: &FieldDef) -> u32 {
    match field.slot {
        Slot::Num(i) => 1 << i,
        Slot::Addr(i) => 1 << (abi::KEY_ADDR0 + i as u32),
        Slot::Dev => 1 << abi::KEY_DEV,
    }
}

/// The load-time settings of one request. `wake_bytes` is set by the session.
pub fn settings(req: &ProbeRequest, symbols: &Symbols) -> Result<Settings, FilterError> {
    let mut s = Settings::default();
    let mut filtered = 0u32;
    // The attach point's own defaults (sched.wakeup_latency: comm `vhost-*`)
    // stand unless the script filters that field itself.
    let defaults: Vec<Filter> = req
        .probe
        .default_filters()
        .filter(|(field, _)| !req.filters.iter().any(|f| f.field.name == field.name))
        .map(|(field, value)| Filter {
            field,
            values: vec![FilterValue::Str(value.to_string())],
        })
        .collect();
    for f in req.filters.iter().chain(&defaults) {
        filtered |= key_bit(f.field);
        for t in terms(f.field, &f.values, symbols, true)? {
            match (t, f.field.slot) {
                (Term::Range(lo, hi), Slot::Num(i)) => {
                    let i = i as usize;
                    let n = s.filter_n[i] as usize;
                    if n >= abi::FILTER_MAX {
                        return Err(FilterError::SlotFull {
                            field: f.field.name,
                        });
                    }
                    s.filter_lo[i][n] = lo;
                    s.filter_hi[i][n] = hi;
                    s.filter_n[i] += 1;
                }
                (Term::Addr(a), Slot::Addr(i)) => {
                    let i = i as usize;
                    let n = s.addr_filter_n[i] as usize;
                    if n >= abi::FILTER_MAX {
                        return Err(FilterError::SlotFull {
                            field: f.field.name,
                        });
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
                        return Err(FilterError::SlotFull {
                            field: f.field.name,
                        });
                    }
                    if n > 0 && s.addr_filter_len[i] != len {
                        return Err(FilterError::MixedPrefixes {
                            field: f.field.name,
                        });
                    }
                    s.addr_filter[i][n] = bytes;
                    s.addr_filter_len[i] = len;
                    s.addr_filter_n[i] += 1;
                }
                (Term::Str { bytes, len }, Slot::Dev) => {
                    let n = s.dev_filter_n as usize;
                    if n >= abi::DEV_MAX {
                        return Err(FilterError::TooManyDevices {
                            field: f.field.name,
                        });
                    }
                    s.dev_filter[n] = bytes;
                    s.dev_filter_len[n] = len;
                    s.dev_filter_n += 1;
                }
                (_, _) => {
                    return Err(FilterError::WrongSlot {
                        field: f.field.name,
                    })
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
                _ => return Err(FilterError::NotANumber { field: field.name }),
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
        Consumer::Capture(target) => {
            s.mode = abi::MODE_CAPTURE;
            s.snaplen = target.snaplen.min(abi::SNAP_MAX);
        }
    }
    if let Some(rate) = req.rate {
        s.rate_max = rate.max;
        s.rate_period_ns = u64::try_from(rate.period.as_nanos()).unwrap_or(u64::MAX);
    }
    // A ring record carries the attach point's fields (those its callback
    // reads, when that is known) and no other slot.
    if req.consumer.emits() {
        s.event_fields = carried(req).fold(0, |a, f| a | key_bit(f));
        s.event_bytes = abi::event_bytes(s.event_fields) as u32;
    }
    // Read what is keyed, filtered, histogrammed or carried.
    s.need_mask = match req.consumer {
        Consumer::Events {
            fields: Carried::All,
            ..
        }
        | Consumer::Capture(_) => u32::MAX,
        Consumer::Events { .. } => s.event_fields | filtered,
        Consumer::Hist { .. } => s.key_mask | filtered | (1 << s.hist_slot),
        Consumer::Count { .. } => s.key_mask | filtered,
    };
    generic_settings(req, &mut s)?;
    Ok(s)
}

/// The fields an event record of `req` carries: those of its attach point
/// its consumer wants (none for a count or a histogram).
fn carried(req: &ProbeRequest) -> impl Iterator<Item = &'static FieldDef> + '_ {
    let wanted = |f: &&'static FieldDef| match &req.consumer {
        Consumer::Events { fields, .. } => fields.includes(f.name),
        Consumer::Capture(_) => true,
        Consumer::Count { .. } | Consumer::Hist { .. } => false,
    };
    req.probe.fields.iter().filter(wanted)
}

/// The parts of the settings only the generic programs read: where a
/// tracepoint's fields lie in its record, and whether calls are timed.
fn generic_settings(req: &ProbeRequest, s: &mut Settings) -> Result<(), FilterError> {
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
            Consumer::Events { .. } | Consumer::Capture(_) => carried(req).collect(),
        });
    for f in used {
        if !layout.iter().any(|l| l.slot == f.slot) {
            return Err(FilterError::NotNarrowed {
                probe: req.probe.name,
                field: f.name,
            });
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
            rate: None,
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
        .unwrap_err()
        .to_string();
        assert!(e.contains("expects a number"), "{e}");
        let e = validate(
            p.field("reason").unwrap(),
            &[FilterValue::Str("FULL_RNG".into())],
            &syms(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("did you mean `FULL_RING`"), "{e}");
        let e = validate(
            p.field("dev").unwrap(),
            &[FilterValue::Str("m?vt".into())],
            &syms(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("trailing `*`"), "{e}");
    }

    #[test]
    fn layers_filter_by_name() {
        let s = settings(
            &req(vec![(
                "layer",
                vec![
                    FilterValue::Str("tap".into()),
                    FilterValue::Str("TUN".into()),
                ],
            )]),
            &syms(),
        )
        .unwrap();
        let tap = u64::from(layers::id("tap").unwrap());
        let tun = u64::from(layers::id("tun").unwrap());
        assert_eq!(s.filter_n[6], 2);
        assert_eq!((s.filter_lo[6][0], s.filter_hi[6][0]), (tap, tap));
        assert_eq!((s.filter_lo[6][1], s.filter_hi[6][1]), (tun, tun));
        assert_ne!(s.need_mask & (1 << 6), 0);
        let e = validate(
            probe().field("layer").unwrap(),
            &[FilterValue::Str("tpa".into())],
            &syms(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("did you mean `tap`"), "{e}");
        // numbers are ids; ranges of names make no sense
        assert!(validate(
            probe().field("layer").unwrap(),
            &[FilterValue::Range(1, 3)],
            &syms()
        )
        .is_err());
    }

    #[test]
    fn function_probes_time_calls_only_when_latency_is_read() {
        let p = crate::generic::resolve("uprobe:libc:usleep")
            .unwrap()
            .unwrap();
        let count = |keys: &[&str], filters: Vec<Filter>| ProbeRequest {
            rate: None,
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
        events.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Default::default(),
        };
        assert_eq!(settings(&events, &syms()).unwrap().timing, 1);
        // a callback that never reads the latency does not time calls
        events.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Carried::Only(vec!["pid"]),
        };
        let s = settings(&events, &syms()).unwrap();
        assert_eq!(s.timing, 0);
        assert_eq!(s.event_fields, key_bit(p.field("pid").unwrap()));
        // comm filters take a prefix in the dev slot
        let comm = Filter {
            field: p.field("comm").unwrap(),
            values: vec![FilterValue::Str("qemu-*".into())],
        };
        let s = settings(&count(&[], vec![comm]), &syms()).unwrap();
        assert_eq!((s.dev_filter_n, s.dev_filter_len[0]), (1, 5));
    }

    #[test]
    fn events_read_and_record_only_the_fields_carried() {
        let p = probe();
        let mut r = req(vec![("dev", vec![FilterValue::Str("eth0".into())])]);
        let all = p.fields.iter().fold(0, |a, f| a | key_bit(f));
        r.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Carried::All,
        };
        let s = settings(&r, &syms()).unwrap();
        assert_eq!((s.event_fields, s.need_mask), (all, u32::MAX));
        r.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Carried::Only(vec!["len"]),
        };
        let s = settings(&r, &syms()).unwrap();
        let (len, dev) = (key_bit(p.field("len").unwrap()), 1 << abi::KEY_DEV);
        // the filtered field is read, not recorded
        assert_eq!((s.event_fields, s.need_mask), (len, len | dev));
        assert_eq!(s.event_bytes as usize, abi::event_bytes(len));
        r.consumer = Consumer::Events {
            callback: crate::plan::CallbackId(0),
            fields: Carried::Only(vec![]),
        };
        let s = settings(&r, &syms()).unwrap();
        assert_eq!((s.event_fields, s.need_mask), (0, dev));
        assert_eq!(s.event_bytes as usize, abi::EVENT_HEAD);
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

    fn field(probe: &str, name: &str) -> &'static FieldDef {
        vprobe_probes::find(probe).unwrap().field(name).unwrap()
    }

    /// The terms, or the error as a user reads it (with its causes).
    fn terms_of(probe: &str, name: &str, v: FilterValue) -> Result<Vec<Term>, String> {
        let mut out = Vec::new();
        term(field(probe, name), &v, &syms(), true, &mut out)
            .map(|()| out)
            .map_err(|e| crate::message::with_causes(&e))
    }

    #[test]
    fn durations_take_numbers_units_and_open_ranges() {
        let lat = |v| terms_of("sched.wakeup_latency", "latency", v);
        assert_eq!(
            lat(FilterValue::Int(1500)).unwrap(),
            vec![Term::Range(1500, 1500)]
        );
        assert_eq!(
            lat(FilterValue::Str("2ms".into())).unwrap(),
            vec![Term::Range(2_000_000, 2_000_000)]
        );
        assert_eq!(
            lat(FilterValue::Str("1ms..".into())).unwrap(),
            vec![Term::Range(1_000_000, u64::MAX)]
        );
        assert_eq!(
            lat(FilterValue::Str("..500us".into())).unwrap(),
            vec![Term::Range(0, 499_999)]
        );
        assert_eq!(
            lat(FilterValue::Str("1ms..=5ms".into())).unwrap(),
            vec![Term::Range(1_000_000, 5_000_000)]
        );
        assert!(lat(FilterValue::Str("5ms..1ms".into()))
            .unwrap_err()
            .contains("empty"));
        assert!(lat(FilterValue::Str("soon".into()))
            .unwrap_err()
            .contains("invalid duration"));
    }

    #[test]
    fn flags_handles_and_comms_encode() {
        assert_eq!(
            terms_of("napi.poll", "exhausted", FilterValue::Str("true".into())).unwrap(),
            vec![Term::Range(1, 1)]
        );
        assert!(terms_of("napi.poll", "exhausted", FilterValue::Int(2)).is_err());
        assert_eq!(
            terms_of("qdisc.enqueue", "handle", FilterValue::Str("1:".into())).unwrap(),
            vec![Term::Range(0x1_0000, 0x1_0000)]
        );
        assert_eq!(
            terms_of("qdisc.enqueue", "parent", FilterValue::Str("root".into())).unwrap(),
            vec![Term::Range(0xffff_ffff, 0xffff_ffff)]
        );
        assert!(
            terms_of("qdisc.enqueue", "handle", FilterValue::Str("x:y".into()))
                .unwrap_err()
                .contains("tc handle")
        );
        let comm = terms_of(
            "sched.wakeup_latency",
            "comm",
            FilterValue::Str("vhost-*".into()),
        );
        assert!(matches!(comm.unwrap()[..], [Term::Str { len: 6, .. }]));
        let e = terms_of(
            "sched.wakeup_latency",
            "comm",
            FilterValue::Str("v?host".into()),
        );
        assert!(e.unwrap_err().contains("thread pattern"));
    }

    #[test]
    fn kvm_exit_reasons_resolve_by_name_in_both_tables() {
        let names = crate::symbols::KvmExitNames::parse(
            "print fmt: \"%s\", (REC->isa == 1) ? __print_symbolic(REC->exit_reason & 0xffff, { 12, \"HLT\" }) : __print_symbolic(REC->exit_reason, { 0x078, \"hlt\" }, { 0x400, \"npf\" })",
        )
        .unwrap();
        let symbols = syms().with_kvm_exits(names);
        let f = field("kvm.exit", "reason");
        let mut out = Vec::new();
        term(f, &FilterValue::Str("HLT".into()), &symbols, true, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Term::Range(1 << 32 | 12, 1 << 32 | 12),
                Term::Range(2 << 32 | 0x78, 2 << 32 | 0x78)
            ]
        );
        let e = validate(f, &[FilterValue::Str("npff".into())], &symbols)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `npf`"), "{e}");
    }

    // The default is what makes the probe cheap on a busy host: every thread's
    // wakeups would be timed without it.
    #[test]
    fn wakeup_latency_watches_vhost_threads_unless_told_otherwise() {
        let p = vprobe_probes::find("sched.wakeup_latency").unwrap();
        let req = |filters: Vec<Filter>| ProbeRequest {
            rate: None,
            probe: p,
            filters,
            consumer: Consumer::Hist {
                name: "lat".into(),
                field: p.field("latency").unwrap(),
                keys: vec![],
                kind: HistKind::Log2,
            },
            origin: Origin::default(),
        };
        let s = settings(&req(vec![]), &syms()).unwrap();
        assert_eq!(s.dev_filter_n, 1);
        assert_eq!(
            (&s.dev_filter[0][..6], s.dev_filter_len[0]),
            (&b"vhost-"[..], 6)
        );
        assert_ne!(s.need_mask & (1 << abi::KEY_DEV), 0);
        let all = Filter {
            field: p.field("comm").unwrap(),
            values: vec![FilterValue::Str("*".into())],
        };
        let s = settings(&req(vec![all]), &syms()).unwrap();
        assert_eq!((s.dev_filter_n, s.dev_filter_len[0]), (1, 0));
    }
}
