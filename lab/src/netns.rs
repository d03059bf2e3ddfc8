//! Anonymous network namespaces owned by the process.
//!
//! A helper thread unshares a new network namespace and opens
//! `/proc/thread-self/ns/net`; then the thread ends, and the fd is the only
//! thing that holds the namespace. Nothing is pinned under /run/netns, so when
//! the fds close — the lab is dropped, or the process ends, even by SIGKILL —
//! the kernel dismantles the namespace and every link in it.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{os, LabError};

/// A lab namespace: a name in the lab (`host-a`, `guest-b`) and the fd that keeps it.
#[derive(Debug, Clone)]
pub struct Namespace {
    name: String,
    fd: Arc<OwnedFd>,
    inode: u64,
}

impl Namespace {
    /// Makes a new, empty network namespace (IPv6 off, `lo` down, orphaned TCP
    /// connections short-lived) held only by the returned value.
    pub(crate) fn create(name: &str) -> Result<Namespace, LabError> {
        let fd = on_thread(&format!("ns-{name}"), || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(os("unshare(CLONE_NEWNET)"))?;
            let fd: OwnedFd = File::open("/proc/thread-self/ns/net")
                .map_err(|e| LabError::Os {
                    what: "open /proc/thread-self/ns/net".into(),
                    source: e,
                })?
                .into();
            // No router solicitations, DAD or MLD reports crossing the relays.
            for conf in ["all", "default"] {
                let p = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                match std::fs::write(&p, "1") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // no IPv6 at all
                    Err(e) => {
                        return Err(LabError::Os {
                            what: format!("write {p}"),
                            source: e,
                        })
                    }
                }
            }
            // A connection still open when the lab goes (its relays gone, a
            // SIGKILL) is orphaned and resends its FIN into the void; an
            // orphan keeps its namespace, and so the lab's devices, alive:
            // minutes by default. One resend, and FIN_WAIT2 for 1 s at most.
            for (key, value) in [("tcp_orphan_retries", "1"), ("tcp_fin_timeout", "1")] {
                let p = format!("/proc/sys/net/ipv4/{key}");
                std::fs::write(&p, value).map_err(|e| LabError::Os {
                    what: format!("write {p}"),
                    source: e,
                })?;
            }
            Ok(fd)
        })??;
        let inode = nix::sys::stat::fstat(&fd)
            .map_err(os("fstat a netns fd"))?
            .st_ino;
        Ok(Namespace {
            name: name.to_string(),
            fd: Arc::new(fd),
            inode,
        })
    }

    /// Its name in the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fd that holds it: `setns(fd, CLONE_NEWNET)` enters it.
    pub fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Its inode number (`ns.inum`: what `skb.drop`'s `netns` field and
    /// `lsns` show).
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Runs `f` on a new thread that has entered this namespace and returns
    /// its result. Sockets and devices `f` makes belong to the namespace and
    /// stay there after the thread ends.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R, LabError> {
        let name = self.name.clone();
        on_thread(&format!("in-{}", self.name), move || {
            setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(os(&format!("setns into lab namespace `{name}`")))?;
            Ok(f())
        })?
    }
}

/// Runs `f` on a scoped helper thread, so that what `f` changes about its
/// thread (namespaces, mounts) never touches the caller's.
pub(crate) fn on_thread<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> Result<R, LabError> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name(format!("vprobe-{name}"))
            .spawn_scoped(s, f)
            .map_err(|e| LabError::Os {
                what: "spawn a lab helper thread".into(),
                source: e,
            })?;
        Ok(handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}
