//! Running a case's commands: `sh -c RUN` in a process group of its own
//! (so a timeout or Ctrl-C ends everything it started), its output read as
//! it comes, and its `AFTER` commands started once it says its probes are
//! attached, stopped when it ends.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

/// What a case's RUN did.
pub struct Ran {
    /// The command line, as run.
    pub command: String,
    /// Its exit status; `None` when it could not start or was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Why the AFTER commands did not run, when they did not.
    pub after_error: Option<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Set by SIGINT or SIGTERM: the running case is ended, and no other starts.
pub struct Interrupted(());

impl Interrupted {
    /// Catches SIGINT and SIGTERM from now on.
    pub fn install() -> anyhow::Result<Self> {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only stores to an atomic
            unsafe { sigaction(sig, &action) }?;
        }
        Ok(Interrupted(()))
    }

    /// Whether a signal came.
    pub fn is_set(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

/// How long RUN's output may stay open after it ended (a process it
/// started elsewhere may hold it).
const DRAIN: Duration = Duration::from_secs(2);
/// How long an AFTER command has to end on SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).process_group(0);
    c
}

/// Whether a line says the run's probes are attached (text or JSON output).
fn says_attached(line: &str) -> bool {
    line.starts_with("Attached ") || line.contains("\"type\":\"start\"")
}

/// Reads `r` to its end into a string, telling `attached` (once) when a line
/// says the probes are attached.
fn reader(r: impl Read + Send + 'static, attached: mpsc::Sender<()>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut all = String::new();
        let mut buf = Vec::new();
        let mut told = false;
        while let Ok(n) = r.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            if !told && says_attached(&line) {
                told = attached.send(()).is_ok();
            }
            all.push_str(&line);
            buf.clear();
        }
        let _ = tx.send(all);
    });
    rx
}

fn kill_group(child: &Child, sig: Signal) {
    // the group may be gone already (ESRCH): nothing to do then
    let _ = killpg(Pid::from_raw(child.id() as i32), sig);
}

/// Runs `cmd` until it ends, `timeout` passes or a signal comes; starts each
/// of `after` once its output says it attached.
pub fn run(cmd: &str, after: &[String], timeout: Duration, interrupted: &Interrupted) -> Ran {
    let mut ran = Ran {
        command: cmd.to_string(),
        status: None,
        stdout: String::new(),
        stderr: String::new(),
        timed_out: false,
        after_error: None,
    };
    let mut child = match shell(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            ran.stderr = format!("cannot start sh: {e}");
            return ran;
        }
    };
    let (attached_tx, attached) = mpsc::channel();
    let out = child.stdout.take().map(|o| reader(o, attached_tx.clone()));
    let err = child.stderr.take().map(|e| reader(e, attached_tx));
    let deadline = Instant::now() + timeout;
    let mut helpers: Vec<Child> = Vec::new();
    let mut started = after.is_empty();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                ran.status = Some(status);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                ran.stderr.push_str(&format!("cannot wait for sh: {e}\n"));
                break;
            }
        }
        if interrupted.is_set() || Instant::now() >= deadline {
            ran.timed_out = !interrupted.is_set();
            kill_group(&child, Signal::SIGKILL);
            let _ = child.wait();
            break;
        }
        if !started && attached.try_recv().is_ok() {
            started = true;
            for a in after {
                match shell(a).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
                    Ok(h) => helpers.push(h),
                    Err(e) => ran.after_error = Some(format!("AFTER `{a}` cannot start: {e}")),
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // whatever RUN left running ends with it
    kill_group(&child, Signal::SIGKILL);
    for h in &helpers {
        kill_group(h, Signal::SIGTERM);
    }
    let until = Instant::now() + GRACE;
    for h in &mut helpers {
        while matches!(h.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(h, Signal::SIGKILL);
        let _ = h.wait();
    }
    if !started && ran.after_error.is_none() {
        ran.after_error = Some(
            "AFTER never ran: the run never said its probes were attached (an `Attached` line or a JSON `start` line)".into(),
        );
    }
    ran.stdout = out
        .and_then(|r| r.recv_timeout(DRAIN).ok())
        .unwrap_or_default();
    let stderr = err.and_then(|r| r.recv_timeout(DRAIN).ok());
    ran.stderr.push_str(&stderr.unwrap_or_default());
    ran
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_runs_and_its_output_is_kept() {
        let i = Interrupted(());
        let r = run(
            "echo out; echo err >&2; exit 3",
            &[],
            Duration::from_secs(10),
            &i,
        );
        assert_eq!(r.status.and_then(|s| s.code()), Some(3));
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
        assert!(!r.timed_out);
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let i = Interrupted(());
        let started = Instant::now();
        let r = run("sleep 30 & sleep 30", &[], Duration::from_millis(300), &i);
        assert!(r.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn after_runs_once_attached_and_not_otherwise() {
        let i = Interrupted(());
        let dir = std::env::temp_dir().join(format!("vprobe-after-{}", std::process::id()));
        let mark = dir.with_extension("mark");
        let _ = std::fs::remove_file(&mark);
        let after = [format!("touch {}", mark.display())];
        let r = run(
            &format!("echo 'Attached 1 probe'; for i in 1 2 3 4 5 6 7 8 9 10; do [ -e {} ] && exit 0; sleep 0.2; done; exit 1", mark.display()),
            &after,
            Duration::from_secs(10),
            &i,
        );
        assert_eq!(r.status.and_then(|s| s.code()), Some(0), "{}", r.stderr);
        assert!(r.after_error.is_none());
        let r = run("true", &after, Duration::from_secs(10), &i);
        assert!(r.after_error.unwrap().contains("never said"));
        let _ = std::fs::remove_file(&mark);
    }
}
