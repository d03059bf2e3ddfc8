//! What a lab holder has of its own, to tell that it left nothing behind —
//! judged only by what the test created, never by whole-host views: other
//! namespaces and macvtaps come and go on a busy host (a developer's VMs and
//! containers, `tests/host-churn.sh`), and the kernel reuses namespace inode
//! numbers and device numbers. So a namespace is known by its inode *and*
//! its cookie (`SO_NETNS_COOKIE`, never reused while the system runs), and a
//! char device by its number *and* its sysfs node's inode (kernfs inode
//! numbers carry a generation: a new device with the old number has another).
//!
//! `/sys/dev/char/M:m` lists the char devices of every namespace, as
//! symlinks into the sysfs of the device's own namespace: from here they
//! dangle, so the link itself (its kernfs node) is what is looked at.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::CloneFlags;

use super::util;

/// How long the kernel may take to dismantle a namespace once nothing
/// holds it (it does so asynchronously, one batch after another).
pub const RELEASE_LIMIT: Duration = Duration::from_secs(20);

/// `SO_NETNS_COOKIE` (asm-generic/socket.h; x86 and arm64 alike), Linux 5.14+.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// A network namespace, told apart from a later one with its inode number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NsId {
    pub inode: u64,
    pub cookie: u64,
}

/// A character device, told apart from a later one with its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CharDev {
    pub major: u64,
    pub minor: u64,
    /// The inode of the symlink `/sys/dev/char/MAJOR:MINOR` (its kernfs node,
    /// made and removed with the device).
    pub sysfs_ino: u64,
}

impl CharDev {
    fn sysfs(major: u64, minor: u64) -> PathBuf {
        PathBuf::from(format!("/sys/dev/char/{major}:{minor}"))
    }

    /// Whether this very device still exists.
    pub fn exists(&self) -> bool {
        std::fs::symlink_metadata(Self::sysfs(self.major, self.minor))
            .is_ok_and(|m| m.ino() == self.sysfs_ino)
    }
}

/// The names in `dir` (none when it cannot be read).
pub fn list(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The cookie of the network namespace `ns` (an nsfs file: `/proc/PID/fd/N`,
/// `/proc/PID/task/T/ns/net`, a bind mount), read from a socket made inside
/// it on a thread of its own. `None` if it cannot be entered (gone).
pub fn netns_cookie(ns: &Path) -> Option<u64> {
    let fd = File::open(ns).ok()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET).ok()?;
            let sock = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Datagram,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )
            .ok()?;
            let mut cookie: u64 = 0;
            let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
            let rc = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    SO_NETNS_COOKIE,
                    (&mut cookie as *mut u64).cast(),
                    &mut len,
                )
            };
            (rc == 0).then_some(cookie)
        })
        .join()
        .ok()
        .flatten()
    })
}

/// `net:[INODE]` → INODE.
fn net_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The macvtap char devices' major number, if the module is loaded.
fn macvtap_major() -> Option<u64> {
    std::fs::read_to_string("/proc/devices")
        .ok()?
        .lines()
        .find_map(|l| l.trim().strip_suffix(" macvtap")?.trim().parse().ok())
}

/// What a lab holder has of its own: the network namespaces it refers to
/// (other than the test's own) and the macvtap char devices it has open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub namespaces: BTreeSet<NsId>,
    pub macvtaps: BTreeSet<CharDev>,
}

impl Footprint {
    /// What process `pid` holds now: namespaces its fds and threads refer to,
    /// macvtap char devices among its fds.
    pub fn of(pid: u32) -> Footprint {
        let own = std::fs::read_link("/proc/self/ns/net")
            .ok()
            .and_then(|l| net_inode(&l.to_string_lossy()));
        let major = macvtap_major();
        let base = format!("/proc/{pid}");
        let mut links: Vec<PathBuf> = list(&format!("{base}/task"))
            .into_iter()
            .map(|t| PathBuf::from(format!("{base}/task/{t}/ns/net")))
            .collect();
        links.extend(
            list(&format!("{base}/fd"))
                .into_iter()
                .map(|f| PathBuf::from(format!("{base}/fd/{f}"))),
        );
        let mut fp = Footprint::default();
        let mut seen = BTreeSet::new();
        for l in links {
            let Ok(target) = std::fs::read_link(&l) else {
                continue;
            };
            if let Some(inode) = net_inode(&target.to_string_lossy()) {
                if Some(inode) != own && seen.insert(inode) {
                    if let Some(cookie) = netns_cookie(&l) {
                        fp.namespaces.insert(NsId { inode, cookie });
                    }
                }
                continue;
            }
            // a char device: stat through the link, without opening it (an
            // open of a macvtap would add a queue)
            let Ok(m) = std::fs::metadata(&l) else {
                continue;
            };
            let rdev = m.rdev();
            let (maj, min) = (
                u64::from(nix::sys::stat::major(rdev) as u32),
                u64::from(nix::sys::stat::minor(rdev) as u32),
            );
            if m.file_type().is_char_device() && Some(maj) == major {
                if let Ok(s) = std::fs::symlink_metadata(CharDev::sysfs(maj, min)) {
                    fp.macvtaps.insert(CharDev {
                        major: maj,
                        minor: min,
                        sysfs_ino: s.ino(),
                    });
                }
            }
        }
        fp
    }

    /// What `self` has that `before` had not (what a lab added to a process
    /// that held other things already, such as the test itself).
    pub fn since(&self, before: &Footprint) -> Footprint {
        Footprint {
            namespaces: self
                .namespaces
                .difference(&before.namespaces)
                .copied()
                .collect(),
            macvtaps: self
                .macvtaps
                .difference(&before.macvtaps)
                .copied()
                .collect(),
        }
    }

    /// The namespaces' inode numbers.
    pub fn inodes(&self) -> Vec<u64> {
        self.namespaces.iter().map(|n| n.inode).collect()
    }
}

/// Every process (thread, fd or mount) that still refers to one of `ours`:
/// the inode matches and so does the cookie.
pub fn holders(ours: &BTreeSet<NsId>) -> Vec<String> {
    let inodes: BTreeSet<u64> = ours.iter().map(|n| n.inode).collect();
    let is_ours = |path: &Path, inode: u64| {
        inodes.contains(&inode)
            && netns_cookie(path).is_some_and(|c| ours.contains(&NsId { inode, cookie: c }))
    };
    let mut found = Vec::new();
    for pid in list("/proc")
        .into_iter()
        .filter(|p| p.parse::<u32>().is_ok())
    {
        let base = format!("/proc/{pid}");
        let mut links: Vec<String> = list(&format!("{base}/task"))
            .into_iter()
            .map(|t| format!("{base}/task/{t}/ns/net"))
            .collect();
        links.extend(
            list(&format!("{base}/fd"))
                .into_iter()
                .map(|f| format!("{base}/fd/{f}")),
        );
        for l in links {
            let Ok(target) = std::fs::read_link(&l) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = net_inode(&target) {
                if is_ours(Path::new(&l), inode) {
                    found.push(format!("{l} -> {target}"));
                }
            }
        }
        // a bind mount of the namespace (`ip netns add` pins one so)
        let mounts = std::fs::read_to_string(format!("{base}/mountinfo")).unwrap_or_default();
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
                continue;
            };
            if let Some(inode) = net_inode(root) {
                let path = format!("{base}/root{point}");
                if is_ours(Path::new(&path), inode) {
                    found.push(format!("{base}/mountinfo mounts {root} at {point}"));
                }
            }
        }
    }
    found
}

/// What the kernel is doing about dying namespaces, for a failure message:
/// the netns cleanup worker's stack if it is busy, and the kernel's own
/// complaints about devices whose references do not go.
pub fn teardown_diagnostics() -> String {
    let mut out = String::new();
    for pid in list("/proc")
        .into_iter()
        .filter(|p| p.parse::<u32>().is_ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.contains("+netns") {
            let stack = std::fs::read_to_string(format!("/proc/{pid}/stack")).unwrap_or_default();
            out.push_str(&format!("{} (pid {pid}) is at:\n{stack}", comm.trim()));
        }
    }
    if let Ok(o) = std::process::Command::new("dmesg").output() {
        let text = String::from_utf8_lossy(&o.stdout);
        let waits: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("unregister_netdevice") || l.contains("hung_task"))
            .collect();
        for l in &waits[waits.len().saturating_sub(10)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("(no netns cleanup running, no unregister_netdevice waits in dmesg)\n");
    }
    out
}

/// Asserts that, within [`RELEASE_LIMIT`], nothing refers to the lab's
/// namespaces any more and none of its macvtap char devices exists.
pub fn assert_gone(what: &str, ours: &Footprint) {
    let mut left = (Vec::new(), Vec::new());
    let since = std::time::Instant::now();
    let ok = util::poll_until(RELEASE_LIMIT, || {
        left = (
            holders(&ours.namespaces),
            ours.macvtaps
                .iter()
                .filter(|d| d.exists())
                .copied()
                .collect(),
        );
        left.0.is_empty() && left.1.is_empty()
    });
    if ok {
        eprintln!(
            "{what}: the lab's namespaces and devices went in {:?}",
            since.elapsed()
        );
    }
    assert!(
        ok,
        "{what}: {RELEASE_LIMIT:?} later, its namespaces are still held: {:?}; its macvtap char devices still exist: {:?} (the lab's: {ours:?})\n{}",
        left.0,
        left.1,
        teardown_diagnostics()
    );
}

/// What a lab holder has while up: `namespaces` namespaces and `macvtaps`
/// macvtap char devices, and none of its namespaces pinned or entered by
/// anyone else (its devices live in them, never among the host's).
pub fn assert_lab_shape(what: &str, ours: &Footprint, namespaces: usize, macvtaps: usize) {
    assert_eq!(
        ours.namespaces.len(),
        namespaces,
        "{what}: namespaces: {ours:?}"
    );
    assert_eq!(
        ours.macvtaps.len(),
        macvtaps,
        "{what}: macvtap char devices: {ours:?}"
    );
    let pinned: Vec<String> = holders(&ours.namespaces)
        .into_iter()
        .filter(|h| h.contains("mountinfo"))
        .collect();
    assert!(
        pinned.is_empty(),
        "{what}: a lab namespace is pinned: {pinned:?}"
    );
}
