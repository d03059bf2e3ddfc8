//! `vprobe lab up|down|status`: a lab held by a process.
//!
//! `up` takes the lab's name (its state file, see [`state`]), builds the lab
//! and holds it until a signal; `status` and `down` find holders through
//! their state files.

mod state;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{self, SigSet, Signal};
use nix::unistd::Pid;
use vprobe_lab::{Lab, LabSpec};

use crate::cli::{Format, OutputArgs};
use crate::say;

use state::{
    check_name, inspect, report_stale, scan, state_dir, state_path, Claim, Found, LabState,
};

/// How long `down` waits for a holder to end after SIGTERM (then SIGKILL).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `up --detach` waits for its holder to report the lab up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY: &str = "READY";

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
    if detach {
        // a quick answer when the name is taken; the holder's claim decides
        match inspect(&path)? {
            Some(Found::Alive(s)) => bail!(
                "lab `{name}` is already up (holder pid {}); take it down with `vprobe lab down {name}` or choose another --name",
                s.pid
            ),
            Some(Found::Starting { .. }) => {
                bail!("lab `{name}` is being set up; choose another --name")
            }
            _ => {}
        }
        return detached(spec, &name, &path);
    }
    hold(spec, &name, &dir, notify_ready)
}

/// Takes the name, builds the lab and holds it until a signal. However this
/// ends — a signal, an error building the lab or writing what it says — the
/// name is given back and its state file removed (the [`Claim`] is dropped).
fn hold(spec: &LabSpec, name: &str, dir: &Path, notify_ready: bool) -> anyhow::Result<ExitCode> {
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

    // the name first: two `lab up` of one name cannot both build
    let mut claim = Claim::take(dir, name)?;
    let lab = Lab::up(spec)?;
    let state = LabState::of(name, &lab);
    claim.publish(&state)?;

    let mut text = String::new();
    state.describe(&mut text);
    let _ = writeln!(text, "state: {}", claim.path().display());
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
    drop(claim);
    say::note(format_args!("lab `{name}` down ({sig})"));
    Ok(ExitCode::SUCCESS)
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
            _ => None,
        })
        .collect();
    let starting: Vec<String> = found
        .iter()
        .filter_map(|f| match f {
            Found::Starting { name, pid } => Some(match pid {
                Some(p) => format!("lab `{name}`: being set up (holder pid {p})"),
                None => format!("lab `{name}`: being set up"),
            }),
            _ => None,
        })
        .collect();
    let mut out = say::data(output.file.as_deref())?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&alive)?)?;
        for s in &starting {
            say::note(s);
        }
    } else if alive.is_empty() && starting.is_empty() {
        say::note("no lab is up");
    } else {
        let mut text = String::new();
        for s in alive {
            s.describe(&mut text);
        }
        for s in &starting {
            let _ = writeln!(text, "{s}");
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
            _ => None,
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
