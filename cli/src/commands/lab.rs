//! `vprobe lab up|down|status`: a lab held by a process.
//!
//! `up` builds the lab and holds it; a state file in the state directory
//! (`/run/vprobe`, or `$VPROBE_STATE_DIR`) says where its namespaces are
//! (`/proc/PID/fd/N`, which `nsenter --net=` takes). The holder keeps an
//! exclusive `flock` on its state file for as long as it lives, so a state file
//! whose lock can be taken belongs to a dead holder (SIGKILL, a crash) and is
//! removed by the next `status`, `down` or `up` of that name. The lab itself
//! needs no such cleanup: its namespaces die with the holder.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{self, SigSet, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use vprobe_lab::{Lab, LabSpec, Topology, CONTROL_KNOBS, KNOBS};

use crate::cli::{Format, OutputArgs};
use crate::say;

/// How long `down` waits for a holder to end after SIGTERM (then SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `up --detach` waits for its holder to report the lab up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY: &str = "READY";

/// The `--help` text on topologies and knobs.
pub fn knobs_help() -> String {
    let mut s = String::from("Topologies:\n");
    for t in Topology::ALL {
        let _ = writeln!(s, "  {:8} {}", t.name(), t.about());
    }
    s.push_str("\nKnobs (macvtap and bridge; veth takes none), TOPOLOGY:knob=value,…:\n");
    for k in KNOBS {
        let _ = writeln!(
            s,
            "  {:7} default {:8} {} ({})",
            k.name, k.default, k.about, k.values
        );
    }
    let _ = write!(
        s,
        "\nThe defaults reproduce the seed case (a 16-stream TCP_RR load overflows the macvtap ring);\n\
         `macvtap:{CONTROL_KNOBS}` is its control (same stalls, no drops).\n\
         Guests: guest-a 192.0.2.1/24, guest-b 192.0.2.2/24, interface eth0."
    );
    s
}

/// What a lab's state file holds.
#[derive(Debug, Serialize, Deserialize)]
struct LabState {
    name: String,
    pid: u32,
    spec: String,
    topology: String,
    namespaces: Vec<NsState>,
    guests: Vec<GuestState>,
    devices: Vec<DeviceState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NsState {
    name: String,
    inode: u64,
    /// A path to the namespace while the holder lives.
    path: String,
    /// A shell command that enters it.
    enter: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct GuestState {
    name: String,
    addr: String,
    dev: String,
    mac: String,
    namespace: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeviceState {
    name: String,
    kind: String,
    ifindex: u32,
    namespace: String,
}

impl LabState {
    fn of(name: &str, lab: &Lab) -> LabState {
        let pid = std::process::id();
        LabState {
            name: name.to_string(),
            pid,
            spec: lab.spec().to_string(),
            topology: lab.spec().topology.to_string(),
            namespaces: lab
                .namespaces()
                .iter()
                .map(|ns| {
                    let path = format!("/proc/{pid}/fd/{}", ns.fd().as_raw_fd());
                    NsState {
                        name: ns.name().to_string(),
                        inode: ns.inode(),
                        enter: format!("nsenter --net={path}"),
                        path,
                    }
                })
                .collect(),
            guests: lab
                .guests()
                .iter()
                .map(|g| GuestState {
                    name: g.name.clone(),
                    addr: format!("{}/{}", g.addr, g.prefix),
                    dev: g.dev.clone(),
                    mac: g.mac.map(|b| format!("{b:02x}")).join(":"),
                    namespace: g.name.clone(),
                })
                .collect(),
            devices: lab
                .devices()
                .iter()
                .map(|d| DeviceState {
                    name: d.name.clone(),
                    kind: d.kind.to_string(),
                    ifindex: d.ifindex,
                    namespace: d.namespace.clone(),
                })
                .collect(),
        }
    }

    fn describe(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "lab `{}`: {} (holder pid {})",
            self.name, self.spec, self.pid
        );
        for ns in &self.namespaces {
            let what = match self.guests.iter().find(|g| g.namespace == ns.name) {
                Some(g) => format!("{} {} {}", g.dev, g.addr, g.mac),
                None => self
                    .devices
                    .iter()
                    .filter(|d| d.namespace == ns.name)
                    .map(|d| format!("{} ({})", d.name, d.kind))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let _ = writeln!(
                out,
                "  {:8} netns {:<11} {:<42} {what}",
                ns.name, ns.inode, ns.enter
            );
        }
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("VPROBE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/vprobe"))
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("lab-{name}.json"))
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("invalid lab name `{name}`: use 1 to 32 letters, digits, `-` or `_`");
    }
    Ok(())
}

/// A state file seen by `status`/`down`: alive (its holder holds the lock) or stale.
enum Found {
    Alive(LabState),
    /// Its holder is gone; the file was removed.
    Stale {
        name: String,
        pid: Option<u32>,
    },
}

/// Looks at one state file; removes it if its holder is gone.
fn inspect(path: &Path) -> anyhow::Result<Option<Found>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let state: Option<LabState> = serde_json::from_str(&text).ok();
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            // We hold the lock: nobody else does, the holder is gone. Unless the
            // holder removed it meanwhile and a new one took the name.
            let ours = nix::sys::stat::fstat(&*lock).ok();
            let there = nix::sys::stat::stat(path).ok();
            match (ours, there) {
                (Some(a), Some(b)) if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) => {}
                _ => return Ok(None),
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("lab-"))
                .unwrap_or("?")
                .to_string();
            Ok(Some(Found::Stale {
                name,
                pid: state.map(|s| s.pid),
            }))
        }
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => match state {
            Some(s) => Ok(Some(Found::Alive(s))),
            // Locked but not yet (or no longer) readable: being written or removed.
            None => Ok(None),
        },
        Err((_, e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

/// Every lab in the state directory; stale ones are removed and reported.
fn scan(dir: &Path) -> anyhow::Result<Vec<Found>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("lab-") && name.ends_with(".json") {
            if let Some(f) = inspect(&e.path())? {
                found.push(f);
            }
        } else if let Some(pid) = temp_owner(&name) {
            // A holder killed between creating its state and publishing it.
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    found.sort_by(|a, b| found_name(a).cmp(found_name(b)));
    Ok(found)
}

fn found_name(f: &Found) -> &str {
    match f {
        Found::Alive(s) => &s.name,
        Found::Stale { name, .. } => name,
    }
}

/// `.lab-NAME.PID.tmp` → PID.
fn temp_owner(file: &str) -> Option<u32> {
    let rest = file.strip_prefix(".lab-")?.strip_suffix(".tmp")?;
    rest.rsplit_once('.')?.1.parse().ok()
}

fn report_stale(found: &[Found]) {
    for f in found {
        if let Found::Stale { name, pid } = f {
            let pid = pid.map_or("?".to_string(), |p| p.to_string());
            say::note(format_args!(
                "lab `{name}`: holder (pid {pid}) is gone; removed its stale state"
            ));
        }
    }
}

/// `vprobe lab up`.
pub fn up(
    spec: &LabSpec,
    name: Option<String>,
    detach: bool,
    notify_ready: bool,
) -> anyhow::Result<ExitCode> {
    let name = name.unwrap_or_else(|| spec.topology.name().to_string());
    check_name(&name)?;
    let dir = state_dir();
    let path = state_path(&dir, &name);
    if let Some(Found::Alive(s)) = inspect(&path)? {
        bail!(
            "lab `{name}` is already up (holder pid {}); take it down with `vprobe lab down {name}` or choose another --name",
            s.pid
        );
    }
    if detach {
        return detached(spec, &name, &path);
    }
    hold(spec, &name, &dir, &path, notify_ready)
}

/// Builds the lab and holds it until a signal.
fn hold(
    spec: &LabSpec,
    name: &str,
    dir: &Path,
    path: &Path,
    notify_ready: bool,
) -> anyhow::Result<ExitCode> {
    // Blocked before any thread exists, so that every lab thread inherits the
    // mask and the signals wait for sigwait below.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGHUP);
    signals.thread_block().context("cannot block signals")?;
    if notify_ready {
        // Detached: the terminal going away is not a reason to stop.
        signals.remove(Signal::SIGHUP);
    }

    let lab = Lab::up(spec)?;
    let state = LabState::of(name, &lab);
    let _lock = publish(dir, path, &state)?;

    let mut text = String::new();
    state.describe(&mut text);
    let _ = writeln!(text, "state: {}", path.display());
    let _ = writeln!(
        text,
        "Ctrl-C, SIGTERM or `vprobe lab down {name}` takes it down."
    );
    let mut stdout = std::io::stdout();
    if notify_ready {
        writeln!(stdout, "{READY}")?;
        stdout.flush()?;
        // Nobody reads our output from now on.
        let null = File::options().write(true).open("/dev/null")?;
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    } else {
        write!(stdout, "{text}")?;
        stdout.flush()?;
    }

    let sig = signals.wait().context("sigwait")?;
    lab.down();
    let _ = std::fs::remove_file(path);
    say::note(format_args!("lab `{name}` down ({sig})"));
    Ok(ExitCode::SUCCESS)
}

/// Writes the state under a temporary name, locks it, and renames it into
/// place, so a state file is never seen unlocked while its holder lives.
fn publish(dir: &Path, path: &Path, state: &LabState) -> anyhow::Result<Flock<File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".lab-{}.{}.tmp", state.name, state.pid));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}: {e}", tmp.display()))?;
    let written = serde_json::to_writer_pretty(&mut *lock, state)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(lock.write_all(b"\n")?))
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", path.display())));
    }
    Ok(lock)
}

/// Starts a holder in the background and returns once it reports the lab up.
fn detached(spec: &LabSpec, name: &str, path: &Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the vprobe executable")?;
    let mut child = Command::new(exe)
        .args([
            "lab",
            "up",
            &spec.to_string(),
            "--name",
            name,
            "--notify-ready",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        // Out of the terminal's process group: Ctrl-C there does not reach it.
        .process_group(0)
        .spawn()
        .context("cannot start the lab holder")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let ready = rx
        .recv_timeout(READY_TIMEOUT)
        .is_ok_and(|l| l.trim() == READY);
    if !ready {
        let _ = child.kill();
        let status = child.wait()?;
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let err = err.trim().trim_start_matches("vprobe: ");
        bail!("the lab holder failed ({status}): {err}");
    }
    let Some(Found::Alive(state)) = inspect(path)? else {
        bail!(
            "the lab holder reported ready but {} is not there",
            path.display()
        );
    };
    let mut text = String::new();
    state.describe(&mut text);
    let _ = writeln!(text, "state: {}", path.display());
    let _ = writeln!(text, "`vprobe lab down {name}` takes it down.");
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `vprobe lab status`.
pub fn status(output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let json = output.format() == Format::Json;
    let dir = state_dir();
    let found = scan(&dir)?;
    report_stale(&found);
    let alive: Vec<&LabState> = found
        .iter()
        .filter_map(|f| match f {
            Found::Alive(s) => Some(s),
            Found::Stale { .. } => None,
        })
        .collect();
    let mut out = say::data(output.file.as_deref())?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&alive)?)?;
    } else if alive.is_empty() {
        say::note("no lab is up");
    } else {
        let mut text = String::new();
        for s in alive {
            s.describe(&mut text);
        }
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `vprobe lab down`.
pub fn down(name: Option<&str>, all: bool) -> anyhow::Result<ExitCode> {
    let dir = state_dir();
    let found = scan(&dir)?;
    report_stale(&found);
    let alive: Vec<LabState> = found
        .into_iter()
        .filter_map(|f| match f {
            Found::Alive(s) => Some(s),
            Found::Stale { .. } => None,
        })
        .collect();
    let names = || {
        alive
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let targets: Vec<&LabState> = match (name, all) {
        (_, true) => alive.iter().collect(),
        (Some(n), false) => {
            check_name(n)?;
            match alive.iter().find(|s| s.name == n) {
                Some(s) => vec![s],
                None if alive.is_empty() => bail!("no lab `{n}` is up (no lab is up)"),
                None => bail!("no lab `{n}` is up; labs up: {}", names()),
            }
        }
        (None, false) => match alive.as_slice() {
            [] => bail!("no lab is up"),
            [one] => vec![one],
            _ => bail!("several labs are up ({}); name one, or use --all", names()),
        },
    };
    for s in targets {
        stop_holder(&dir, s)?;
        say::note(format_args!("lab `{}` down", s.name));
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM, then wait until its state file's lock is free (the holder has
/// exited); SIGKILL after [`STOP_TIMEOUT`].
fn stop_holder(dir: &Path, s: &LabState) -> anyhow::Result<()> {
    let path = state_path(dir, &s.name);
    let pid = Pid::from_raw(i32::try_from(s.pid).context("bad pid in state file")?);
    let gone = |deadline: Instant| -> anyhow::Result<bool> {
        loop {
            if !matches!(inspect(&path)?, Some(Found::Alive(_))) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    match signal::kill(pid, Signal::SIGTERM) {
        Ok(()) => {}
        Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => bail!("cannot signal lab `{}` holder (pid {pid}): {e}", s.name),
    }
    if gone(Instant::now() + STOP_TIMEOUT)? {
        return Ok(());
    }
    say::warn(format_args!(
        "lab `{}` holder (pid {pid}) did not end within {STOP_TIMEOUT:?}; killing it",
        s.name
    ));
    let _ = signal::kill(pid, Signal::SIGKILL);
    if gone(Instant::now() + Duration::from_secs(5))? {
        return Ok(());
    }
    bail!("lab `{}` holder (pid {pid}) is still running", s.name)
}
