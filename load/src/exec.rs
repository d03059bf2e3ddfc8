//! An external command as a workload: netperf, iperf3, a user's program.
//!
//! The command runs in its own process group with stdin from /dev/null and
//! its stdout and stderr captured (the last [`ExecOptions::max_output`] bytes
//! of each). Stopping it, its timeout, dropping its handle, or its own exit
//! ends the whole group: SIGTERM, then SIGKILL after [`ExecOptions::kill_grace`]
//! (at its exit, what is left of the group gets SIGKILL at once). The command
//! gets `PR_SET_PDEATHSIG(SIGKILL)`, so if vprobe itself is killed the command
//! dies with it.
//!
//! Limits: the death signal reaches the command, not processes it started
//! (those are killed with the group on every other path); a process that left
//! the group (`setsid`) is out of reach.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, CloneFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, getppid, Pid};
use serde::Serialize;

use crate::{LoadError, Netns};

/// How long captured output is still read after the command exits, when
/// something it started keeps its stdout or stderr open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecOptions {
    /// The program (looked up in `PATH` like a shell does).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// End it after this long (counted as `timed_out`).
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL when it is ended.
    pub kill_grace: Duration,
    /// Bytes kept of each of stdout and stderr (the last ones).
    pub max_output: usize,
}

impl ExecOptions {
    /// `program args…`, no timeout, 2 s grace, 1 MiB of each output kept.
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> ExecOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        ExecOptions {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: None,
            kill_grace: Duration::from_secs(2),
            max_output: 1 << 20,
        }
    }

    fn command_line(&self) -> Vec<String> {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecResult {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Its process id (and process group).
    pub pid: u32,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Exit code 0.
    pub success: bool,
    /// From start to exit, seconds.
    pub duration_s: f64,
    /// Ended because of its timeout.
    pub timed_out: bool,
    /// Ended because it was stopped.
    pub stopped: bool,
    /// The end of its stdout (lossy UTF-8).
    pub stdout: String,
    /// The end of its stderr (lossy UTF-8).
    pub stderr: String,
    /// Bytes of stdout dropped from the beginning to keep the limit.
    pub stdout_dropped: u64,
    /// Bytes of stderr dropped from the beginning.
    pub stderr_dropped: u64,
}

/// A running command. Dropping it ends the command's group and waits.
pub struct ExecHandle {
    pid: u32,
    started: Instant,
    stop: Arc<EventFd>,
    /// None from the thread only if the command did not start (then there is no handle).
    thread: Option<JoinHandle<Option<ExecResult>>>,
}

/// Starts the command, in `netns` when given (only the network namespace:
/// /sys is not remounted as `ip netns exec` does); returns once it runs (or
/// with why it could not start).
///
/// ```no_run
/// use std::time::Duration;
/// use vprobe_load::exec::{spawn, ExecOptions};
/// let mut o = ExecOptions::new("ping", ["-c", "3", "192.0.2.1"]);
/// o.timeout = Some(Duration::from_secs(10));
/// let r = spawn(o, None)?.join();
/// println!("exit {:?}: {}", r.exit_code, r.stdout);
/// # Ok::<(), vprobe_load::LoadError>(())
/// ```
pub fn spawn(opts: ExecOptions, netns: Option<Netns>) -> Result<ExecHandle, LoadError> {
    let what = format!("`{}`", opts.command_line().join(" "));
    let spawn_err = |source: io::Error| LoadError::Spawn {
        what: what.clone(),
        source,
    };
    let stop = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| spawn_err(e.into()))?;
    let stop = Arc::new(stop);
    let (tx, rx) = mpsc::channel();
    let stop2 = stop.clone();
    // The command is forked from this thread, which lives until the command
    // is reaped: PR_SET_PDEATHSIG fires when the forking *thread* ends.
    let thread = std::thread::Builder::new()
        .name("vprobe-exec".into())
        .spawn(move || {
            let started = Instant::now();
            let child = match start_child(&opts, netns) {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return None;
                }
            };
            let _ = tx.send(Ok((child.id(), started)));
            Some(supervise(child, &opts, &stop2, started))
        })
        .map_err(spawn_err)?;
    match rx.recv() {
        Ok(Ok((pid, started))) => Ok(ExecHandle {
            pid,
            started,
            stop,
            thread: Some(thread),
        }),
        Ok(Err(source)) => {
            let _ = thread.join();
            Err(spawn_err(source))
        }
        Err(_) => {
            let _ = thread.join();
            Err(spawn_err(io::Error::other("the exec thread ended")))
        }
    }
}

fn start_child(opts: &ExecOptions, netns: Option<Netns>) -> io::Result<Child> {
    let mut cmd = Command::new(&opts.program);
    cmd.args(&opts.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = getpid();
    // SAFETY: std's only way to run code between fork and exec, which nix
    // cannot replace without doing the fork itself. The closure makes only
    // async-signal-safe calls (prctl, getppid, setns) and does not allocate:
    // nix's errors are plain errnos, as is the io::Error made of them.
    unsafe {
        cmd.pre_exec(move || {
            set_pdeathsig(Signal::SIGKILL)?;
            // vprobe died before the death signal was armed: do not run
            if getppid() != parent {
                return Err(Errno::ESRCH.into());
            }
            if let Some(ns) = &netns {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The last `max` bytes of a stream, and how many were dropped before them.
struct Tail {
    buf: Vec<u8>,
    max: usize,
    dropped: u64,
}

impl Tail {
    fn new(max: usize) -> Tail {
        Tail {
            buf: Vec::new(),
            max,
            dropped: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Compact only when twice over the limit: amortized O(1) per byte.
        if self.buf.len() > self.max.saturating_mul(2).max(4096) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > self.max {
            let cut = self.buf.len() - self.max;
            self.buf.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    fn finish(mut self) -> (String, u64) {
        self.trim();
        (
            String::from_utf8_lossy(&self.buf).into_owned(),
            self.dropped,
        )
    }
}

/// A pipe being captured.
struct Capture {
    fd: Option<OwnedFd>,
    tail: Tail,
}

impl Capture {
    fn new(fd: Option<OwnedFd>, max: usize) -> Capture {
        if let Some(fd) = &fd {
            if let Ok(fl) = fcntl(fd, FcntlArg::F_GETFL) {
                let fl = OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK;
                let _ = fcntl(fd, FcntlArg::F_SETFL(fl));
            }
        }
        Capture {
            fd,
            tail: Tail::new(max),
        }
    }

    /// Reads what is there; closes the pipe at its end.
    fn read(&mut self) {
        let mut buf = [0u8; 16384];
        while let Some(fd) = &self.fd {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => self.fd = None,
                Ok(n) => self.tail.push(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => self.fd = None,
            }
        }
    }
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) (Linux 5.3) takes a pid and flags, no pointer.
    // Neither nix 0.30 nor stable std (PidFd is unstable) wraps it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the new fd the call returned, owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Signals the command's process group (its pgid is its pid).
fn signal_group(pgid: u32, sig: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), sig);
}

/// Captures output and ends the command on stop or timeout; returns once it
/// is reaped.
fn supervise(mut child: Child, opts: &ExecOptions, stop: &EventFd, started: Instant) -> ExecResult {
    let pid = child.id();
    let pidfd = pidfd_open(pid);
    let mut out = Capture::new(child.stdout.take().map(OwnedFd::from), opts.max_output);
    let mut err = Capture::new(child.stderr.take().map(OwnedFd::from), opts.max_output);
    let deadline = opts.timeout.map(|t| started + t);
    let (mut timed_out, mut stopped) = (false, false);
    let mut sigkill_at: Option<Instant> = None;
    let mut status: Option<(ExitStatus, Instant)> = None;
    loop {
        let now = Instant::now();
        if status.is_none() && !timed_out && !stopped && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            signal_group(pid, Signal::SIGTERM);
            sigkill_at = Some(now + opts.kill_grace);
        }
        if status.is_none() && sigkill_at.is_some_and(|t| now >= t) {
            signal_group(pid, Signal::SIGKILL);
            sigkill_at = None;
        }
        if status.is_none() {
            // Once it has exited (a zombie, not yet reaped, so its pid and
            // group id cannot be reused), end the rest of its group, then reap.
            let exited = match &pidfd {
                Some(fd) => poll_fds(&[fd.as_fd()], Duration::ZERO)[0],
                None => false,
            };
            if exited {
                signal_group(pid, Signal::SIGKILL);
                status = child.wait().ok().map(|st| (st, Instant::now()));
            } else if pidfd.is_none() {
                // No pidfd (before Linux 5.3): polled. Its pid may be reused
                // after this reap, so the group is not signalled afterwards.
                status = child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|st| (st, Instant::now()));
            }
        }
        if let Some((_, at)) = status {
            if (out.fd.is_none() && err.fd.is_none()) || now >= at + DRAIN_AFTER_EXIT {
                break;
            }
        }
        // Wait for output, the exit, a stop or the next deadline.
        let mut wake = vec![now + Duration::from_secs(1)];
        wake.extend(deadline.filter(|_| !timed_out && !stopped));
        wake.extend(sigkill_at);
        match (&status, &pidfd) {
            (Some((_, at)), _) => wake.push(*at + DRAIN_AFTER_EXIT),
            (None, None) => wake.push(now + Duration::from_millis(50)),
            (None, Some(_)) => {}
        }
        let timeout = wake
            .into_iter()
            .min()
            .unwrap_or(now)
            .saturating_duration_since(now);
        let mut fds = vec![stop.as_fd()];
        if let (Some(p), None) = (&pidfd, &status) {
            fds.push(p.as_fd()); // the exit is handled at the top of the loop
        }
        let out_idx = fds.len();
        fds.extend(out.fd.as_ref().map(|f| f.as_fd()));
        let err_idx = fds.len();
        fds.extend(err.fd.as_ref().map(|f| f.as_fd()));
        let ready = poll_fds(&fds, timeout);
        if ready[0] {
            let _ = stop.read();
            if status.is_none() && !stopped && !timed_out {
                stopped = true;
                signal_group(pid, Signal::SIGTERM);
                sigkill_at = Some(Instant::now() + opts.kill_grace);
            }
        }
        if out.fd.is_some() && ready.get(out_idx).copied().unwrap_or(false) {
            out.read();
        }
        if err.fd.is_some() && ready.get(err_idx).copied().unwrap_or(false) {
            err.read();
        }
    }
    // What arrived in the last instant.
    out.read();
    err.read();
    let (st, ended) = status.expect("loop ends once reaped");
    let (stdout, stdout_dropped) = out.tail.finish();
    let (stderr, stderr_dropped) = err.tail.finish();
    ExecResult {
        command: opts.command_line(),
        pid,
        exit_code: st.code(),
        signal: st.signal(),
        success: st.success(),
        duration_s: ended.duration_since(started).as_secs_f64(),
        timed_out,
        stopped,
        stdout,
        stderr,
        stdout_dropped,
        stderr_dropped,
    }
}

/// poll(2) for readability (or hang-up) of `fds`; which are ready.
fn poll_fds(fds: &[BorrowedFd<'_>], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<PollFd> = fds
        .iter()
        .map(|&fd| PollFd::new(fd, PollFlags::POLLIN))
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // Round up so a deadline is not polled for in a busy loop.
    let ms = if timeout > Duration::from_millis(u64::from(ms as u32)) {
        ms.saturating_add(1)
    } else {
        ms
    };
    match poll(
        &mut p,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(n) if n > 0 => p.iter().map(|x| x.any() == Some(true)).collect(),
        _ => vec![false; fds.len()],
    }
}

impl ExecHandle {
    /// The command's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Time since it started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it has exited and been reaped ([`ExecHandle::join`] returns at once).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ends its process group (SIGTERM, SIGKILL after the grace); returns at once.
    pub fn stop(&self) {
        let _ = self.stop.write(1);
    }

    /// Waits for it to end; how it ended and what it printed.
    pub fn join(mut self) -> ExecResult {
        let t = self.thread.take().expect("joined once");
        t.join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .expect("a handle exists only for a started command")
    }
}

impl Drop for ExecHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ExecOptions {
        ExecOptions::new("sh", ["-c", script])
    }

    /// Exists and is not a zombie (an orphan waits for init to reap it).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    }

    #[test]
    fn captures_output_and_exit_code() {
        let r = spawn(sh("echo out; echo err >&2; exit 3"), None)
            .unwrap()
            .join();
        assert_eq!(r.exit_code, Some(3));
        assert!(!r.success && !r.timed_out && !r.stopped);
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
        assert_eq!(
            r.command,
            vec!["sh", "-c", "echo out; echo err >&2; exit 3"]
        );
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let e = spawn(
            ExecOptions::new("/nonexistent/vprobe-test", Vec::<String>::new()),
            None,
        )
        .err()
        .unwrap();
        assert!(matches!(e, LoadError::Spawn { .. }), "{e}");
        assert!(e.to_string().contains("vprobe-test"), "{e}");
    }

    #[test]
    fn timeout_ends_the_whole_group() {
        // The background sleep is in the group too; it must die with it.
        let mut o = sh("sleep 30 & echo $!; wait");
        o.timeout = Some(Duration::from_millis(300));
        let t0 = Instant::now();
        let r = spawn(o, None).unwrap().join();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert!(r.timed_out, "{r:?}");
        assert_eq!(r.signal, Some(Signal::SIGTERM as i32), "{r:?}");
        let bg: i32 = r.stdout.trim().parse().unwrap();
        let t0 = Instant::now();
        while alive(bg) && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(bg), "background child {bg} survived");
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        let mut o = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done");
        o.kill_grace = Duration::from_millis(200);
        let h = spawn(o, None).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        h.stop();
        let r = h.join();
        assert!(r.stopped, "{r:?}");
        assert_eq!(r.signal, Some(Signal::SIGKILL as i32), "{r:?}");
        assert_eq!(r.stdout, "ready\n");
    }

    #[test]
    fn output_keeps_the_tail() {
        let mut o = sh("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done");
        o.max_output = 100;
        let r = spawn(o, None).unwrap().join();
        assert!(r.success);
        assert!(r.stdout.len() <= 100);
        assert!(r.stdout.ends_with("line1999\n"), "{}", r.stdout);
        assert!(r.stdout_dropped > 0);
        let total: u64 = (0..2000).map(|i| format!("line{i}\n").len() as u64).sum();
        assert_eq!(r.stdout_dropped + r.stdout.len() as u64, total);
    }

    #[test]
    fn drop_kills_it() {
        let h = spawn(sh("sleep 30"), None).unwrap();
        let pid = h.pid() as i32;
        drop(h);
        assert!(!alive(pid));
    }

    #[test]
    fn tail_trims_to_the_limit() {
        let mut t = Tail::new(4);
        for _ in 0..10000 {
            t.push(b"abc");
        }
        assert!(t.buf.len() <= 8192);
        let (s, dropped) = t.finish();
        assert_eq!(s, "cabc");
        assert_eq!(dropped, 30000 - 4);
    }
}
