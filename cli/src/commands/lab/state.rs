//! Lab state files: one per lab name in the state directory (`/run/vprobe`,
//! or `$VPROBE_STATE_DIR`), `lab-NAME.json`, saying where the lab's
//! namespaces are (`/proc/PID/fd/N`, which `nsenter --net=` takes).
//!
//! The file is also the name's lock. A holder takes the name with
//! [`Claim::take`] before it builds anything: it creates the file and holds
//! an exclusive `flock` on it for as long as it lives, so two `lab up` of one
//! name cannot both come up. It publishes the full state by renaming a
//! locked temporary file over it (readers never see it unlocked or half
//! written), and removes it when it ends or fails ([`Claim`]'s drop). A file
//! whose lock can be taken belongs to a dead holder (SIGKILL, a crash): any
//! reader ([`inspect`], [`scan`]) removes it and says so. The lab itself
//! needs no such cleanup: its namespaces die with the holder.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use vprobe_lab::Lab;

/// How long a claim waits for a reader that holds the lock a moment (to
/// look at the file) before it concludes a holder has the name.
const CONTENDED: Duration = Duration::from_millis(200);

/// What a lab's state file holds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LabState {
    pub name: String,
    pub pid: u32,
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
    pub fn of(name: &str, lab: &Lab) -> LabState {
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

    pub fn describe(&self, out: &mut String) {
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

/// What a claimed name's file holds until the lab is up.
#[derive(Debug, Serialize, Deserialize)]
struct Starting {
    name: String,
    pid: u32,
    starting: bool,
}

/// The state directory.
pub(super) fn state_dir() -> PathBuf {
    std::env::var_os("VPROBE_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/vprobe"))
}

pub(super) fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("lab-{name}.json"))
}

pub(super) fn check_name(name: &str) -> anyhow::Result<()> {
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

/// Whether the open file is (still) the one at `path`: it may have been
/// removed or replaced between the open and the lock.
fn is_at(file: &File, path: &Path) -> bool {
    match (nix::sys::stat::fstat(file), nix::sys::stat::stat(path)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// A lab name taken by this process: the exclusive lock on its state file,
/// held as long as the holder lives. Dropped, it removes the state file
/// first (while still holding the lock), so a holder that fails or ends,
/// for whatever reason, leaves nothing behind.
pub(super) struct Claim {
    path: PathBuf,
    /// The claimed file's lock, then the published one's (the claimed file
    /// is replaced by the rename, but stays locked until the end).
    locks: Vec<Flock<File>>,
}

impl Claim {
    /// Takes the name `name` in `dir`, or says who has it.
    pub fn take(dir: &Path, name: &str) -> anyhow::Result<Claim> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = state_path(dir, name);
        let contended_until = Instant::now() + CONTENDED;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) if Instant::now() < contended_until => {
                    // a reader looking, or a holder: look again in a moment
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if let Ok(s) = serde_json::from_str::<LabState>(&text) {
                        bail!(
                            "lab `{name}` is already up (holder pid {}); take it down with `vprobe lab down {name}` or choose another --name",
                            s.pid
                        );
                    }
                    let by = serde_json::from_str::<Starting>(&text)
                        .map_or(String::new(), |s| format!(" (holder pid {})", s.pid));
                    bail!("lab `{name}` is being set up{by}; choose another --name");
                }
                Err((_, e)) => bail!("cannot lock {}: {e}", path.display()),
            };
            // removed (by its ending holder, or a reader cleaning up) before we locked it
            if !is_at(&lock, &path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Ok(s) = serde_json::from_str::<LabState>(&text) {
                crate::say::note(format_args!(
                    "lab `{name}`: holder (pid {}) is gone; removed its stale state",
                    s.pid
                ));
            }
            let starting = Starting {
                name: name.to_string(),
                pid: std::process::id(),
                starting: true,
            };
            lock.set_len(0)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(serde_json::to_writer(&mut *lock, &starting)?))
                .with_context(|| format!("cannot write {}", path.display()))?;
            return Ok(Claim {
                path,
                locks: vec![lock],
            });
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the claimed file with the lab's state: written under a
    /// temporary name, locked, then renamed into place, so a reader sees the
    /// claim or the whole state, and always locked.
    pub fn publish(&mut self, state: &LabState) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
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
            .and_then(|()| Ok(std::fs::rename(&tmp, &self.path)?));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("cannot write {}", self.path.display())));
        }
        self.locks.push(lock);
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.locks.last().is_some_and(|l| is_at(l, &self.path)) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A state file seen by `status`/`down`: alive (its holder holds the lock),
/// being set up, or stale.
pub(super) enum Found {
    Alive(LabState),
    /// Claimed; the lab is being built.
    Starting {
        name: String,
        pid: Option<u32>,
    },
    /// Its holder is gone; the file was removed.
    Stale {
        name: String,
        pid: Option<u32>,
    },
}

impl Found {
    pub fn name(&self) -> &str {
        match self {
            Found::Alive(s) => &s.name,
            Found::Starting { name, .. } | Found::Stale { name, .. } => name,
        }
    }
}

/// The lab name of a state file's path.
fn name_of(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("lab-"))
        .unwrap_or("?")
        .to_string()
}

/// Looks at one state file; removes it if its holder is gone.
pub(super) fn inspect(path: &Path) -> anyhow::Result<Option<Found>> {
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
            if !is_at(&lock, path) {
                return Ok(None);
            }
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
            }
            // an empty file is a claim whose maker died before writing it, or
            // one being made (its maker notices the removal and makes another)
            if text.is_empty() {
                return Ok(None);
            }
            let pid = state
                .map(|s| s.pid)
                .or_else(|| serde_json::from_str::<Starting>(&text).ok().map(|s| s.pid));
            Ok(Some(Found::Stale {
                name: name_of(path),
                pid,
            }))
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(Some(match state {
            Some(s) => Found::Alive(s),
            None => Found::Starting {
                name: name_of(path),
                pid: serde_json::from_str::<Starting>(&text).ok().map(|s| s.pid),
            },
        })),
        Err((_, e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
    }
}

/// Every lab in the state directory; stale ones are removed and reported.
pub(super) fn scan(dir: &Path) -> anyhow::Result<Vec<Found>> {
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
        } else if name.starts_with(".lab-") && name.ends_with(".tmp") {
            // a holder killed between writing its state and publishing it:
            // the temporary file is locked while its writer lives
            remove_if_unlocked(&e.path());
        }
    }
    found.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(found)
}

fn remove_if_unlocked(path: &Path) {
    let Ok(file) = File::open(path) else { return };
    if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        if is_at(&lock, path) {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub(super) fn report_stale(found: &[Found]) {
    for f in found {
        if let Found::Stale { name, pid } = f {
            let pid = pid.map_or("?".to_string(), |p| p.to_string());
            crate::say::note(format_args!(
                "lab `{name}`: holder (pid {pid}) is gone; removed its stale state"
            ));
        }
    }
}
