//! Why a lab could not be built or read, and what is wrong with a lab spec.

use vprobe_time::DurationError;

/// Why a lab could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab spec did not parse, or asks for what this process cannot have.
    // The problem is part of the message (a knob's complaint sits in the
    // middle of a sentence), so it is a field and not also a source.
    #[error("lab `{spec}`: {problem}")]
    Spec {
        /// The spec as written.
        spec: String,
        /// What is wrong.
        problem: SpecError,
    },
    /// The lab needs privileges this process does not have.
    #[error("{what}: the lab needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")]
    Privileges {
        /// What was refused.
        what: String,
        /// The refusal.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}")]
    Os {
        /// What was attempted.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink in lab namespace `{ns}`: {what}")]
    Netlink {
        /// The lab namespace.
        ns: String,
        /// The request.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// No such device in that namespace.
    #[error("no device `{dev}` in lab namespace `{ns}`")]
    NoDevice {
        /// The lab namespace.
        ns: String,
        /// The device asked for.
        dev: String,
    },
    /// A device did not come up.
    #[error("device `{dev}` in lab namespace `{ns}` is not running {after:?} after it was set up")]
    NotRunning {
        /// The lab namespace.
        ns: String,
        /// The device.
        dev: String,
        /// How long the lab waited.
        after: std::time::Duration,
    },
    /// No such namespace in this lab.
    #[error("no namespace `{ns}` in this lab; it has {}", have.join(", "))]
    NoNamespace {
        /// The name asked for.
        ns: String,
        /// The names it has.
        have: Vec<String>,
    },
}

/// What is wrong with a lab spec (`macvtap:qlen=0`).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The part before `:` names no topology.
    #[error("unknown topology `{name}`; expected one of {expected}")]
    UnknownTopology {
        /// The name as written.
        name: String,
        /// The topologies there are, comma-separated.
        expected: String,
    },
    /// A knob without `=value`.
    #[error("expected knob=value, got `{item}`")]
    NotKnobValue {
        /// The item as written.
        item: String,
    },
    /// A knob given to a topology without relays.
    #[error("topology `{topology}` takes no knobs (got `{knob}`)")]
    NoKnobs {
        /// The topology's name.
        topology: &'static str,
        /// The knob given.
        knob: String,
    },
    /// No knob of that name.
    #[error("unknown knob `{knob}`; knobs are {known}")]
    UnknownKnob {
        /// The name as written.
        knob: String,
        /// The knobs there are, comma-separated.
        known: String,
    },
    /// A knob's value is not one it takes.
    #[error("knob `{knob}`: `{value}` {problem}; expected {expected}")]
    BadValue {
        /// The knob.
        knob: &'static str,
        /// The value as written.
        value: String,
        /// What is wrong with it.
        problem: ValueError,
        /// The values the knob takes.
        expected: &'static str,
    },
    /// The `cpu` knob names a CPU this process may not run on.
    #[error("knob `cpu`: cpu {cpu} is not one this process may run on")]
    CpuNotAllowed {
        /// The CPU asked for.
        cpu: usize,
    },
}

/// What is wrong with a knob's value; the end of a sentence that starts with the value.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// A number outside the knob's range (or no number).
    #[error("is out of range")]
    OutOfRange,
    /// Not a CPU number.
    #[error("is not a CPU number")]
    NotCpu,
    /// A stall without its `/`.
    #[error("is not PAUSE/PERIOD")]
    NotPausePeriod,
    /// A stall's pause or period is not a duration.
    #[error(transparent)]
    Duration(#[from] DurationError),
    /// A stall of no pause, or with a period under 1 ms.
    #[error("needs a pause above 0 and a period of at least 1ms")]
    TooShort,
    /// A stall whose pause fills its period.
    #[error("pauses as long as its period (the relay would never run)")]
    NeverRuns,
}

/// Maps a failed syscall to [`LabError::Os`] (or [`LabError::Privileges`] on EPERM).
pub(crate) fn os(what: &str) -> impl Fn(nix::errno::Errno) -> LabError + '_ {
    move |e| {
        let what = what.to_string();
        let source = std::io::Error::from(e);
        if e == nix::errno::Errno::EPERM {
            LabError::Privileges { what, source }
        } else {
            LabError::Os { what, source }
        }
    }
}
