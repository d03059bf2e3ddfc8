//! The exit statuses of `vprobe`, one per kind of ending, and how an error
//! is sorted into one. The table is the README's ("Exit status") and the man
//! page's; keep the three in step.

use std::fmt;
use std::process::ExitCode;

use vprobe_engine::session::SessionError;
use vprobe_lab::LabError;

/// How `vprobe` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done: the run ended (deadline, workloads, `exit()`, Ctrl-C, SIGTERM,
    /// SIGHUP), the check passed, the list matched; also a closed stdout.
    Success = 0,
    /// Done, and the answer is "no": a script's verdict (`verdict(false)`,
    /// `exit(1)`), `list` matched nothing, a `vprobe rr` stream failed.
    Verdict = 1,
    /// The command line is wrong: an unknown flag, a bad value, a file it
    /// names that cannot be read or written.
    Usage = 2,
    /// The script is wrong: it does not compile or plan, or its callbacks
    /// failed during the run.
    Script = 3,
    /// This host cannot: no privilege, no BTF, an attach point or mechanism
    /// this kernel lacks.
    Unsupported = 4,
    /// The run failed: a lab or workload could not start, writing the
    /// output failed, anything else.
    Failed = 5,
}

impl Status {
    /// Each status with what it means: the `--help` epilogue and the man
    /// page's EXIT STATUS section.
    pub const MEANINGS: &'static [(&'static str, &'static str)] = &[
        (
            "0",
            "done: the run ended (its duration, its workloads, exit(), Ctrl-C, SIGTERM, SIGHUP), the check passed, the list matched; also a closed stdout (`| head`)",
        ),
        (
            "1",
            "done, and the answer is no: a script's verdict (verdict(false), exit(1)), `list` matched nothing, a `vprobe rr` stream failed",
        ),
        (
            "2",
            "usage: the command line is wrong (a flag, a value, a file it names that cannot be read or written)",
        ),
        (
            "3",
            "script error: the script does not compile or plan, or a callback failed during the run",
        ),
        (
            "4",
            "this host cannot: no privilege (root, or CAP_BPF and CAP_PERFMON), no BTF, an attach point or mechanism this kernel lacks",
        ),
        (
            "5",
            "the run failed: a lab or workload could not start, writing the output failed (a full disk), any other error",
        ),
        ("10-125", "a script's own statuses (exit(n))"),
    ];

    /// The `--help` epilogue: [`Status::MEANINGS`] as aligned lines.
    pub fn help() -> String {
        let mut s = String::from("Exit status:\n");
        for (code, what) in Self::MEANINGS {
            s.push_str(&format!("  {code:<7} {what}\n"));
        }
        s
    }
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s as u8)
    }
}

/// An error the binary finds itself, with the status it ends with.
#[derive(Debug)]
pub struct Failure {
    /// How `vprobe` ends.
    pub status: Status,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A usage error: the command line is wrong.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure {
        status: Status::Usage,
        message: message.into(),
    }
    .into()
}

/// The status an error ends `vprobe` with.
pub fn status_of(e: &anyhow::Error) -> Status {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.status;
        }
        if let Some(e) = cause.downcast_ref::<vprobe_engine::Error>() {
            return match e {
                vprobe_engine::Error::Script(_) => Status::Script,
                vprobe_engine::Error::Session(s) => session_status(s),
                vprobe_engine::Error::Lab(l) => lab_status(l),
                // the caller's own requirement of the plan (`--plot`)
                vprobe_engine::Error::Refused(_) => Status::Usage,
                _ => Status::Failed,
            };
        }
        // a script named that is not there or cannot be read
        if cause.is::<vprobe_engine::library::LibraryError>() {
            return Status::Usage;
        }
        if cause.is::<vprobe_engine::script::ScriptError>() {
            return Status::Script;
        }
        if let Some(s) = cause.downcast_ref::<SessionError>() {
            return session_status(s);
        }
        if let Some(l) = cause.downcast_ref::<LabError>() {
            return lab_status(l);
        }
    }
    Status::Failed
}

fn session_status(e: &SessionError) -> Status {
    match e {
        SessionError::Privileges(_)
        | SessionError::Btf(_)
        | SessionError::Unavailable { .. }
        | SessionError::Attach { .. } => Status::Unsupported,
        SessionError::Request { .. } | SessionError::Filter { .. } => Status::Script,
        _ => Status::Failed,
    }
}

fn lab_status(e: &LabError) -> Status {
    match e {
        LabError::Privileges { .. } => Status::Unsupported,
        LabError::Spec { .. } => Status::Usage,
        _ => Status::Failed,
    }
}

/// Whether an error is a closed stdout (`vprobe … | head`): a normal end.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<vprobe_engine::Error>()
                .is_some_and(vprobe_engine::run::is_broken_pipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sort_into_statuses() {
        let script: anyhow::Error =
            vprobe_engine::Error::from(vprobe_engine::script::ScriptError {
                origin: Default::default(),
                message: "boom".into(),
            })
            .into();
        assert_eq!(status_of(&script), Status::Script);
        let bare: anyhow::Error = vprobe_engine::script::ScriptError {
            origin: Default::default(),
            message: "boom".into(),
        }
        .into();
        assert_eq!(status_of(&bare), Status::Script);
        let privileges = vprobe_engine::kernel::Privileges {
            root: false,
            sys_admin: false,
            bpf: false,
            perfmon: false,
        };
        let denied: anyhow::Error =
            vprobe_engine::Error::from(SessionError::Privileges(privileges)).into();
        assert_eq!(status_of(&denied), Status::Unsupported);
        assert_eq!(status_of(&usage("bad flag")), Status::Usage);
        let context = usage("x").context("while doing y");
        assert_eq!(status_of(&context), Status::Usage);
        let io: anyhow::Error = std::io::Error::from_raw_os_error(libc::ENOSPC).into();
        assert_eq!(status_of(&io), Status::Failed);
        assert!(!is_broken_pipe(&io));
        let pipe: anyhow::Error =
            vprobe_engine::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe)).into();
        assert!(is_broken_pipe(&pipe));
    }
}
