//! How a program attaches: the mechanisms of an attach point, in preference
//! order, and their kinds (what `--disable-mechanism` takes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::fields::Slot;

/// The kind of a mechanism, spelled as `--disable-mechanism` and `vprobe list` spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MechanismKind {
    /// BTF-typed tracepoints: typed arguments, no tracefs (5.5+ with BTF).
    #[cfg_attr(feature = "clap", value(name = "tp_btf"))]
    TpBtf,
    /// Raw tracepoints: the arguments untyped (4.17+).
    #[cfg_attr(feature = "clap", value(name = "raw_tracepoint"))]
    RawTracepoint,
    /// Classic tracepoints, found through tracefs.
    #[cfg_attr(feature = "clap", value(name = "tracepoint"))]
    Tracepoint,
    /// kprobes on kernel functions (kretprobes for latency).
    #[cfg_attr(feature = "clap", value(name = "kprobe"))]
    Kprobe,
    /// fentry programs on kernel functions, BPF trampolines (fexit for latency).
    #[cfg_attr(feature = "clap", value(name = "fentry"))]
    Fentry,
    /// uprobes on user-space functions (uretprobes for latency).
    #[cfg_attr(feature = "clap", value(name = "uprobe"))]
    Uprobe,
}

impl MechanismKind {
    /// Every kind.
    pub const ALL: [MechanismKind; 6] = [
        MechanismKind::TpBtf,
        MechanismKind::RawTracepoint,
        MechanismKind::Tracepoint,
        MechanismKind::Kprobe,
        MechanismKind::Fentry,
        MechanismKind::Uprobe,
    ];

    /// Its name: `tp_btf`, `raw_tracepoint`, `tracepoint`, `kprobe`, `fentry`, `uprobe`.
    pub fn as_str(self) -> &'static str {
        match self {
            MechanismKind::TpBtf => "tp_btf",
            MechanismKind::RawTracepoint => "raw_tracepoint",
            MechanismKind::Tracepoint => "tracepoint",
            MechanismKind::Kprobe => "kprobe",
            MechanismKind::Fentry => "fentry",
            MechanismKind::Uprobe => "uprobe",
        }
    }

    /// Whether programs of this kind hang off a tracepoint (not a function).
    pub fn is_tracepoint(self) -> bool {
        matches!(
            self,
            MechanismKind::TpBtf | MechanismKind::RawTracepoint | MechanismKind::Tracepoint
        )
    }

    /// What the kernel needs for it, for `vprobe list`.
    pub fn needs(self) -> &'static str {
        match self {
            MechanismKind::TpBtf => "Linux 5.5+ with BTF (CONFIG_DEBUG_INFO_BTF=y)",
            MechanismKind::RawTracepoint => "Linux 4.17+",
            MechanismKind::Tracepoint => "Linux 4.7+ and tracefs",
            MechanismKind::Kprobe => "CONFIG_KPROBE_EVENTS=y (the kprobe PMU: Linux 4.17+)",
            MechanismKind::Fentry => {
                "Linux 5.5+ with BTF and BPF trampolines (x86-64, arm64 6.0+), not refused by lockdown or an LSM"
            }
            MechanismKind::Uprobe => "CONFIG_UPROBE_EVENTS=y (the uprobe PMU: Linux 4.17+)",
        }
    }
}

impl fmt::Display for MechanismKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mechanism kind that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown mechanism kind `{0}` (one of tp_btf, raw_tracepoint, tracepoint, kprobe, fentry, uprobe)")]
pub struct UnknownMechanismKind(pub String);

impl FromStr for MechanismKind {
    type Err = UnknownMechanismKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MechanismKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownMechanismKind(s.to_string()))
    }
}

/// What the kernel needs for a mechanism kind, for `vprobe list`.
pub fn needs(kind: MechanismKind) -> &'static str {
    kind.needs()
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
        /// Programs of the same object attached with this one (they feed its state).
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        companions: &'static [Mechanism],
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
        /// Programs of the same object attached with this one (they feed its state).
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        companions: &'static [Mechanism],
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
    /// `tp_btf/EVENT` with `program`.
    pub const fn tp_btf(event: &'static str, program: &'static str) -> Self {
        Mechanism::TpBtf {
            event,
            program,
            companions: &[],
        }
    }

    /// `raw_tp/EVENT` with `program`.
    pub const fn raw_tracepoint(event: &'static str, program: &'static str) -> Self {
        Mechanism::RawTracepoint { event, program }
    }

    /// `tracepoint/CATEGORY/NAME` with `program`.
    pub const fn tracepoint(
        category: &'static str,
        name: &'static str,
        program: &'static str,
    ) -> Self {
        Mechanism::Tracepoint {
            category,
            name,
            program,
            companions: &[],
        }
    }

    /// A kprobe on `function` with `program`, no return side.
    pub const fn kprobe(function: &'static str, program: &'static str) -> Self {
        Mechanism::Kprobe {
            function,
            program,
            exit: None,
        }
    }

    /// An fentry program on `function`, no return side.
    pub const fn fentry(function: &'static str, program: &'static str) -> Self {
        Mechanism::Fentry {
            function,
            program,
            exit: None,
        }
    }

    /// This tracepoint mechanism with `companions`: programs of the same
    /// object and kind that must be attached with it (they feed its state).
    /// Only `tp_btf` and classic tracepoints take companions.
    pub const fn with_companions(self, companions: &'static [Mechanism]) -> Self {
        match self {
            Mechanism::TpBtf { event, program, .. } => Mechanism::TpBtf {
                event,
                program,
                companions,
            },
            Mechanism::Tracepoint {
                category,
                name,
                program,
                ..
            } => Mechanism::Tracepoint {
                category,
                name,
                program,
                companions,
            },
            _ => panic!("only tp_btf and classic tracepoints take companions"),
        }
    }

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

    /// Programs of the same object and kind that must be attached with this
    /// one (they feed its state); empty for most attach points.
    pub fn companions(&self) -> &'static [Mechanism] {
        match self {
            Mechanism::TpBtf { companions, .. } | Mechanism::Tracepoint { companions, .. } => {
                companions
            }
            _ => &[],
        }
    }

    /// The mechanism kind (what `--disable-mechanism` takes).
    pub fn kind(&self) -> MechanismKind {
        match self {
            Mechanism::TpBtf { .. } => MechanismKind::TpBtf,
            Mechanism::RawTracepoint { .. } => MechanismKind::RawTracepoint,
            Mechanism::Tracepoint { .. } | Mechanism::TracepointFormat { .. } => {
                MechanismKind::Tracepoint
            }
            Mechanism::Kprobe { .. } => MechanismKind::Kprobe,
            Mechanism::Fentry { .. } => MechanismKind::Fentry,
            Mechanism::Uprobe { .. } => MechanismKind::Uprobe,
        }
    }

    /// What the kernel needs for this mechanism, for `vprobe list`.
    pub fn needs(&self) -> &'static str {
        self.kind().needs()
    }

    /// The hook without the kind: the event, function or symbol.
    fn hook(&self) -> &'static str {
        match self {
            Mechanism::TpBtf { event, .. } | Mechanism::RawTracepoint { event, .. } => event,
            Mechanism::Tracepoint { name, .. } | Mechanism::TracepointFormat { name, .. } => name,
            Mechanism::Kprobe { function, .. } | Mechanism::Fentry { function, .. } => function,
            Mechanism::Uprobe { symbol, .. } => symbol,
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
            l.push_str(c.hook());
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_spelled_as_before_everywhere() {
        let names = [
            "tp_btf",
            "raw_tracepoint",
            "tracepoint",
            "kprobe",
            "fentry",
            "uprobe",
        ];
        for (k, n) in MechanismKind::ALL.into_iter().zip(names) {
            assert_eq!(k.to_string(), n);
            assert_eq!(n.parse::<MechanismKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{n}\""));
            assert_eq!(
                serde_json::from_str::<MechanismKind>(&format!("\"{n}\"")).unwrap(),
                k
            );
        }
        assert_eq!(
            "tp-btf".parse::<MechanismKind>(),
            Err(UnknownMechanismKind("tp-btf".into()))
        );
    }

    #[test]
    fn every_kind_says_what_it_needs() {
        for k in MechanismKind::ALL {
            assert!(!needs(k).is_empty(), "{k}");
        }
    }
}
