//! Why loading or attaching failed: the session's error, and why each
//! mechanism of an attach point did not work.
//!
//! A [`SessionError`] about an attach point lists one [`Reason`] per
//! mechanism tried, on one line. So a [`MechanismError`]'s message carries its
//! cause, as aya's errors do; the cause is also its `source()`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use aya::programs::ProgramError;
use vprobe_probes::Mechanism;

use super::tables::TableError;
use crate::filter::FilterError;
use crate::generic::GenericError;
use crate::kernel::{Privileges, TracefsError, KPROBES_ABSENT, UPROBES_ABSENT};
use crate::message::with_causes;
use crate::plan::Origin;

/// Why loading or attaching failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Not enough privilege to load BPF programs.
    #[error("{}", .0.missing())]
    Privileges(Privileges),
    /// The kernel's BTF could not be read.
    // The message carries aya's error; not also a `source()`, or a chain
    // would print it twice.
    #[error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): {0}; vprobe needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")]
    Btf(aya::BtfError),
    /// A generic attach point's request cannot be narrowed to its fields.
    #[error("{origin}: {}", with_causes(error))]
    Request {
        /// Where the probe was requested.
        origin: Origin,
        /// What is wrong (boxed: errors stay small on the happy path).
        error: Box<GenericError>,
    },
    /// A filter could not be turned into settings.
    #[error("{origin}: {}", with_causes(error))]
    Filter {
        /// Where the probe was requested.
        origin: Origin,
        /// What is wrong (boxed: errors stay small on the happy path).
        error: Box<FilterError>,
    },
    /// The kernel-text tables a request needs could not be computed.
    #[error("{origin}: {error}")]
    Tables {
        /// Where the probe was requested.
        origin: Origin,
        /// What is wrong.
        error: TableError,
    },
    /// No mechanism of this attach point works on this kernel.
    #[error("{origin}: `{probe}` is not available on this kernel: {}{}", join(.reasons), hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    Unavailable {
        /// Where the probe was requested.
        origin: Origin,
        /// Attach point.
        probe: String,
        /// Per mechanism, why it failed.
        reasons: Vec<Reason>,
        /// What to use instead, when an attach point that works covers the same events.
        hint: Option<String>,
    },
    /// The attach point works on this kernel, but attaching this request failed
    /// (a function or symbol that is not there, ...).
    #[error("{origin}: cannot attach `{probe}`: {}", join(.reasons))]
    Attach {
        /// Where the probe was requested.
        origin: Origin,
        /// Attach point.
        probe: String,
        /// Per mechanism, why attaching failed.
        reasons: Vec<Reason>,
    },
    /// A map could not be read.
    #[error("reading map `{map}` of `{probe}`: {error}")]
    Map {
        /// Attach point.
        probe: String,
        /// Map name.
        map: &'static str,
        /// What failed (in the message, so not also a `source()`).
        error: MapAccess,
    },
}

fn join(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a map of a loaded instance could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MapAccess {
    /// The object has no such map (or it was taken).
    #[error("missing")]
    Missing,
    /// aya could not open, read or change it.
    #[error(transparent)]
    Map(#[from] aya::maps::MapError),
}

/// Why one mechanism did not work for a request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MechanismError {
    /// `--disable-mechanism` turned it off.
    #[error("disabled by request")]
    Disabled,
    /// A capture was asked, and this mechanism's program has no packet.
    #[error("its program sees no packet to capture")]
    NoPacket,
    /// The object did not load (its maps, its BTF relocations).
    #[error("loading the object failed: {0}")]
    Object(#[source] Arc<aya::EbpfError>),
    /// The kernel-text tables could not be written.
    #[error(transparent)]
    Tables(#[from] TableError),
    /// The catalog names a program the object does not have.
    #[error("program {0} missing from the object")]
    NoProgram(String),
    /// The program is not of the mechanism's type.
    #[error("program {program}: {source}")]
    ProgramType {
        /// Program name.
        program: String,
        /// aya's complaint.
        #[source]
        source: Arc<ProgramError>,
    },
    /// The verifier rejected the program; the tail of its log says why.
    #[error("the verifier rejected the program: {}: {}", load_errno(.source), .log_tail.join(" | "))]
    Rejected {
        /// The load error, with the whole verifier log.
        #[source]
        source: Arc<ProgramError>,
        /// The last lines of the verifier log.
        log_tail: Vec<String>,
    },
    /// The kernel refused the program without a verifier log.
    #[error("the kernel refused to load the program: {} (empty verifier log)", load_errno(.0))]
    Refused(#[source] Arc<ProgramError>),
    /// The kernel refuses BPF trampolines (EPERM, empty verifier log).
    #[error("this kernel refuses fentry/fexit programs (BPF_PROG_LOAD: EPERM with an empty verifier log): BPF trampolines are not permitted here; {}", match .lockdown { Some(mode) => format!("kernel lockdown is on ({mode})"), None => "most likely kernel lockdown or a security module (LSM) policy".into() })]
    Trampolines {
        /// The kernel's lockdown mode, if on.
        lockdown: Option<String>,
        /// The load error.
        #[source]
        source: Arc<ProgramError>,
    },
    /// Loading or attaching failed otherwise.
    #[error("{}", with_causes(.0))]
    Program(#[source] Arc<ProgramError>),
    /// The kernel's BTF, needed to look up the hook, could not be read.
    #[error("the kernel's BTF could not be read: {}", with_causes(.0))]
    Btf(#[source] Arc<aya::BtfError>),
    /// The kernel has no such tracepoint (no `btf_trace_EVENT` in its BTF).
    #[error("the kernel's BTF has no tracepoint `{0}`")]
    NoBtfTracepoint(String),
    /// The kernel's BTF has no such function.
    #[error("the kernel's BTF has no function `{0}`")]
    NoBtfFunction(String),
    /// The kernel has no kprobe PMU.
    #[error("{KPROBES_ABSENT}")]
    NoKprobes,
    /// The kernel has no uprobe PMU.
    #[error("{UPROBES_ABSENT}")]
    NoUprobes,
    /// tracefs cannot be used.
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// tracefs has no such tracepoint.
    #[error("no tracepoint {category}:{event} in {}", .tracefs.display())]
    NoTracepoint {
        /// Category.
        category: String,
        /// Event.
        event: String,
        /// The tracefs looked in.
        tracefs: PathBuf,
    },
    /// Attaching to a kernel function failed.
    #[error("kernel function `{function}`: {source}")]
    Function {
        /// The function.
        function: String,
        /// Why.
        #[source]
        source: Box<MechanismError>,
    },
    /// The uprobe target has no such symbol.
    #[error("no symbol `{symbol}` in {target} (nor in its debug file)")]
    NoSymbol {
        /// The symbol.
        symbol: String,
        /// The binary or library.
        target: String,
        /// aya's error.
        #[source]
        source: Arc<ProgramError>,
    },
    /// The uprobe target is neither a file nor a known library.
    #[error("no library or file `{target}` (a library name is looked up in /etc/ld.so.cache)")]
    NoTarget {
        /// The path or library name.
        target: String,
        /// aya's error.
        #[source]
        source: Arc<ProgramError>,
    },
    /// Attaching a uprobe failed otherwise.
    #[error("`{symbol}` in {target}: {source}")]
    Symbol {
        /// The symbol.
        symbol: String,
        /// The binary or library.
        target: String,
        /// Why.
        #[source]
        source: Box<MechanismError>,
    },
    /// A companion program (one that feeds the main program's state) failed.
    #[error("with {program}: {source}")]
    Companion {
        /// The companion's program name.
        program: &'static str,
        /// Why.
        #[source]
        source: Box<MechanismError>,
    },
}

/// The errno of a program load that failed, as aya words it.
fn load_errno(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError { io_error, .. } => io_error.to_string(),
        other => other.to_string(),
    }
}

impl MechanismError {
    /// Classifies a program load or attach error: the verifier's verdict with
    /// the tail of its log, a refusal without one, or anything else.
    pub(super) fn program(e: ProgramError) -> Self {
        let ProgramError::LoadError { verifier_log, .. } = &e else {
            return MechanismError::Program(Arc::new(e));
        };
        let log = verifier_log.to_string();
        if log.trim().is_empty() {
            return MechanismError::Refused(Arc::new(e));
        }
        let mut log_tail: Vec<String> = log.lines().rev().take(8).map(String::from).collect();
        log_tail.reverse();
        MechanismError::Rejected {
            source: Arc::new(e),
            log_tail,
        }
    }

    /// This error of a companion program.
    pub(super) fn companion(self, program: &'static str) -> Self {
        MechanismError::Companion {
            program,
            source: Box::new(self),
        }
    }
}

/// Why one mechanism of an attach point did not work, as a [`SessionError`]
/// lists it: after the mechanism's label when the attach point has several.
#[derive(Clone, Debug)]
pub struct Reason {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Whether the message names it (the attach point has several).
    pub labelled: bool,
    /// What went wrong.
    pub error: MechanismError,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            // named even when alone: the user turned this one off
            MechanismError::Disabled => {
                write!(f, "{} is disabled by request", self.mechanism.label())
            }
            e if self.labelled => write!(f, "{}: {e}", self.mechanism.label()),
            e => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(labelled: bool, error: MechanismError) -> Reason {
        Reason {
            mechanism: vprobe_probes::find("skb.drop").unwrap().mechanisms[0],
            labelled,
            error,
        }
    }

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(
            reason(false, MechanismError::Disabled).to_string(),
            "tp_btf/kfree_skb is disabled by request"
        );
        assert_eq!(
            reason(true, MechanismError::NoBtfTracepoint("kfree_skb".into())).to_string(),
            "tp_btf/kfree_skb: the kernel's BTF has no tracepoint `kfree_skb`"
        );
        assert_eq!(
            reason(false, MechanismError::NoKprobes).to_string(),
            "kprobes are not built in (no /sys/bus/event_source/devices/kprobe)"
        );
        let nested = MechanismError::Function {
            function: "tcp_sendmsg".into(),
            source: Box::new(MechanismError::NoProgram("vp_kprobe".into())),
        }
        .companion("vp_x");
        assert_eq!(
            nested.to_string(),
            "with vp_x: kernel function `tcp_sendmsg`: program vp_kprobe missing from the object"
        );
        let e = SessionError::Unavailable {
            origin: Origin::default(),
            probe: "skb.drop".into(),
            reasons: vec![
                reason(true, MechanismError::NoUprobes),
                reason(true, MechanismError::Disabled),
            ],
            hint: Some("use x".into()),
        };
        assert!(e.to_string().ends_with(
            "`skb.drop` is not available on this kernel: tp_btf/kfree_skb: uprobes are not built in (no /sys/bus/event_source/devices/uprobe); tp_btf/kfree_skb is disabled by request; use x"
        ), "{e}");
    }

    #[test]
    fn a_verifier_rejection_keeps_the_log_tail() {
        let log: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let e = MechanismError::program(ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EACCES),
            verifier_log: aya_obj::VerifierLog::new(log),
        });
        let MechanismError::Rejected { log_tail, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(log_tail.len(), 8);
        assert_eq!(log_tail[0], "line 3");
        assert_eq!(
            e.to_string(),
            "the verifier rejected the program: Permission denied (os error 13): line 3 | line 4 | line 5 | line 6 | line 7 | line 8 | line 9 | line 10"
        );
        assert!(std::error::Error::source(&e).is_some());
        let refused = MechanismError::program(ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        });
        assert_eq!(
            refused.to_string(),
            "the kernel refused to load the program: Operation not permitted (os error 1) (empty verifier log)"
        );
    }
}
