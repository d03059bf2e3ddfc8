//! Shared helpers: the root policy, temp dirs, bounded child processes, and a
//! running `vprobe --format json` session with its JSON Lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The `vprobe` binary cargo built for this test run.
pub const VPROBE: &str = env!("CARGO_BIN_EXE_vprobe");

/// How long a session may take to load and attach before its `start` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a session may take to end after a signal or its `--duration`.
pub const END_TIMEOUT: Duration = Duration::from_secs(20);

/// The repository root (the e2e binary lives in `cli/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether a skip is a failure here: in CI (`CI=true`) or when asked
/// (`VPROBE_REQUIRE_ROOT=1`), a test that cannot run must not pass quietly.
pub fn skips_are_failures() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("VPROBE_REQUIRE_ROOT").is_ok_and(|v| v == "1")
}

/// Gate for tests that load programs or make namespaces. Returns `false`
/// (after saying so loudly) when the test must be skipped; panics instead
/// where skips are failures.
///
/// The harness knows no skip (the test shows as `ok`) and swallows what a
/// passing test prints, so the notice goes straight to stderr, and the
/// skipped tests are counted and listed again when the test binary exits,
/// after the harness's own summary.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if skips_are_failures() {
        panic!("{test} needs root, and CI=true or VPROBE_REQUIRE_ROOT=1 forbids skipping it");
    }
    record_skip(test);
    false
}

static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_skip(test: &str) {
    let mut skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    if skipped.is_empty() {
        // SAFETY: registers a plain function that takes no arguments.
        unsafe { libc::atexit(report_skips) };
    }
    skipped.push(test.to_string());
    // std::io::stderr() directly: eprintln! would be captured with the test's output
    let _ = writeln!(std::io::stderr(), "SKIPPED (needs root): {test}");
}

/// At exit: how many tests were skipped, and which.
extern "C" fn report_skips() {
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n{} test{} SKIPPED, not run (they need root; as root, or with VPROBE_REQUIRE_ROOT=1 to make this an error):",
        skipped.len(),
        if skipped.len() == 1 { "" } else { "s" }
    );
    for t in skipped.iter() {
        let _ = writeln!(err, "  {t}");
    }
}

/// Tests that load programs into the kernel run one at a time even when the
/// harness runs tests in parallel, and even across concurrent `cargo test`
/// processes (other checkouts on the same machine): the leftover checks look at
/// every `vp_` program on the machine. The file lock is released when its fd
/// closes, so a killed test run cannot wedge the next one.
pub struct KernelLock {
    _guard: MutexGuard<'static, ()>,
    _file: nix::fcntl::Flock<std::fs::File>,
}

pub fn kernel_lock() -> KernelLock {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/vprobe-kernel.lock")
        .expect("open /tmp/vprobe-kernel.lock");
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock /tmp/vprobe-kernel.lock");
    KernelLock {
        _guard: guard,
        _file: file,
    }
}

/// A directory under /tmp removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vprobe-e2e-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` with `text` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs `cmd` to completion, killing it after `timeout`. Returns the output and
/// whether it timed out.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> (Output, bool) {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let out_t = drain(child.stdout.take().expect("piped"));
    let err_t = drain(child.stderr.take().expect("piped"));
    let (status, timed_out) = wait_within(&mut child, timeout);
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    (
        Output {
            status,
            stdout,
            stderr,
        },
        timed_out,
    )
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Waits for `child`; after `timeout` SIGKILLs its process group (it was
/// started with `process_group(0)`) and reaps it.
fn wait_within(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return (st, false);
        }
        if Instant::now() >= deadline {
            let _ = signal::killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            return (child.wait().expect("wait after kill"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the vprobe binary with `args` (bounded by `timeout`).
pub fn vprobe(args: &[&str], timeout: Duration) -> Run {
    let (out, timed_out) = output_within(Command::new(VPROBE).args(args), timeout);
    Run::from_output(format!("vprobe {args:?}"), out, timed_out)
}

/// A finished command.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Run {
    /// Its JSON lines must match docs/schema/.
    pub fn from_output(what: String, out: Output, timed_out: bool) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        super::schema::check_lines(&what, &stdout);
        Run {
            what,
            status: out.status,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            timed_out,
        }
    }

    /// Everything it printed, for assertions and failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{}: {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            if self.timed_out {
                " (timed out, killed)"
            } else {
                ""
            },
            self.stdout,
            self.stderr
        )
    }

    /// Panics unless it ended by itself, without a Rust panic message.
    pub fn assert_no_panic(&self) {
        assert!(!self.timed_out, "timed out\n{}", self.describe());
        assert!(
            !self.stdout.contains("panicked") && !self.stderr.contains("panicked"),
            "vprobe panicked\n{}",
            self.describe()
        );
        // A panic that aborts shows up as SIGABRT; 101 is Rust's panic exit code.
        assert_ne!(self.status.code(), Some(101), "{}", self.describe());
        assert!(
            self.status.code().is_some(),
            "killed by a signal\n{}",
            self.describe()
        );
    }
}

/// A running `vprobe … --format json` whose stdout lines are read as they come.
pub struct Session {
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    threads: Vec<JoinHandle<()>>,
    what: String,
}

impl Session {
    /// Starts vprobe with `args` (which should include `--format json`).
    pub fn spawn(args: &[&str]) -> Session {
        let mut cmd = Command::new(VPROBE);
        cmd.args(args);
        Session::start(cmd, format!("vprobe {args:?}"))
    }

    /// [`Session::spawn`] inside `ns` (`ip netns exec`, which remounts /sys
    /// for it and then becomes vprobe: the pid is vprobe's).
    pub fn spawn_in(ns: &super::netns::Netns, args: &[&str]) -> Session {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name(), VPROBE]).args(args);
        Session::start(cmd, format!("vprobe {args:?} in {}", ns.name()))
    }

    fn start(mut cmd: Command, what: String) -> Session {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so a Ctrl-C at the terminal running the tests
            // does not reach it before the test decides to send one.
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let t_out = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        let t_err = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Session {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            stderr,
            threads: vec![t_out, t_err],
            what,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    fn context(&self) -> String {
        format!(
            "{}\n--- stdout so far ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.seen.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// Waits for the `{"type":"start"}` line, which vprobe prints once every
    /// probe is attached, and returns it.
    pub fn wait_start(&mut self) -> Value {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["type"] == "start" {
                            return v;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no start line within {START_TIMEOUT:?}\n{}", self.context())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Let stderr's reader catch up before reporting.
                    let status = self.child.as_mut().map(|c| c.wait());
                    std::thread::sleep(Duration::from_millis(50));
                    panic!(
                        "vprobe ended ({status:?}) before its start line\n{}",
                        self.context()
                    )
                }
            }
        }
    }

    pub fn signal(&self, sig: Signal) {
        signal::kill(self.pid(), sig).unwrap_or_else(|e| panic!("kill({sig}): {e}"));
    }

    /// Waits (bounded) for vprobe to end and collects everything it printed.
    pub fn finish(self) -> Finished {
        self.finish_within(END_TIMEOUT)
    }

    /// [`Session::finish`] for a session that runs for a while by itself.
    pub fn finish_within(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().expect("running");
        let (status, timed_out) = wait_within(&mut child, limit);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.seen.extend(self.lines.try_iter());
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        let f = Finished {
            what: std::mem::take(&mut self.what),
            status,
            lines: std::mem::take(&mut self.seen),
            stderr,
        };
        assert!(
            !timed_out,
            "vprobe did not end within {limit:?}; killed\n{}",
            f.describe()
        );
        super::schema::check_lines(&f.what, &f.lines.join("\n"));
        f
    }
}

impl Drop for Session {
    /// A test that panics must not leave a tracer attached.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An ended session.
pub struct Finished {
    pub what: String,
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Finished {
    pub fn describe(&self) -> String {
        format!(
            "{}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            self.lines.join("\n"),
            self.stderr
        )
    }

    /// Panics unless it exited 0 without panicking.
    pub fn assert_success(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.lines.iter().any(|l| l.contains("panicked")),
            "vprobe panicked\n{}",
            self.describe()
        );
        assert!(self.status.success(), "vprobe failed\n{}", self.describe());
    }

    /// The `event` lines (`emit(e)` in callbacks), in order.
    pub fn events(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "event")
            .collect()
    }

    /// The `summary` object, which must be the last line.
    pub fn summary(&self) -> Value {
        let last = self
            .lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no output\n{}", self.describe()));
        let v: Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("last line is not JSON ({e})\n{}", self.describe()));
        assert_eq!(
            v["type"],
            "summary",
            "last line is not the summary\n{}",
            self.describe()
        );
        v
    }
}

/// Renders a JSON scalar the way scripts write it (`"mvt0"` → `mvt0`, `80` → `80`).
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Sums the values of the entries of count map `map` in a summary whose keys
/// match every `(field, value)` in `want`.
pub fn count_where(summary: &Value, map: &str, want: &[(&str, &str)]) -> u64 {
    let m = &summary["maps"][map];
    assert!(
        m.is_object(),
        "summary has no map `{map}`: {}",
        serde_json::to_string_pretty(&summary["maps"]).unwrap_or_default()
    );
    let entries = m["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("map `{map}` has no entries array: {m}"));
    entries
        .iter()
        .filter(|e| want.iter().all(|(k, v)| scalar(&e["key"][*k]) == *v))
        .map(|e| {
            e["value"]
                .as_u64()
                .unwrap_or_else(|| panic!("entry value is not a count: {e}"))
        })
        .sum()
}

/// The summary's loss counters, for failure messages.
pub fn losses(summary: &Value) -> BTreeMap<String, u64> {
    summary["lost"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(u64::MAX)))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `cond` every 50 ms until it returns true or `limit` passes.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
