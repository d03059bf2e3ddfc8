//! tracefs: where classic tracepoints and their format files are found.

use std::path::{Path, PathBuf};

/// Where tracefs is, as this process sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracefs {
    /// Mounted and readable.
    Ready(&'static Path),
    /// Mounted, but this process cannot read it (tracefs is root-only by default).
    Unreadable(PathBuf),
    /// Not mounted.
    Missing,
}

/// Why tracefs cannot be used.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TracefsError {
    /// Mounted, but not readable by this process.
    #[error("tracefs at {} is readable by root only", .0.display())]
    Unreadable(PathBuf),
    /// Not mounted, and mounting it failed.
    #[error("tracefs is not mounted and mounting it at {} failed: {source}", .target.display())]
    Mount {
        /// Where it was to be mounted.
        target: &'static Path,
        /// Why mount(2) failed.
        #[source]
        source: nix::Error,
    },
    /// Mounted by us, but without the `events/` directory.
    #[error("tracefs mounted but has no events/")]
    NoEvents,
}

const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where [`ensure_tracefs`] mounts tracefs.
const MOUNT_POINT: &str = "/sys/kernel/tracing";

/// Path of a mounted, readable tracefs, if any.
pub fn tracefs() -> Option<&'static Path> {
    TRACEFS_PATHS
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Whether tracefs is mounted and readable here. A tracefs that is mounted but
/// unreadable (not root) is found in /proc/self/mountinfo.
pub fn tracefs_state() -> Tracefs {
    if let Some(p) = tracefs() {
        return Tracefs::Ready(p);
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    match tracefs_mount(&mounts) {
        Some(p) => Tracefs::Unreadable(p),
        None => Tracefs::Missing,
    }
}

/// The tracefs mount point in a mountinfo text (`… /sys/kernel/tracing … - tracefs …`),
/// or debugfs's `tracing` directory.
fn tracefs_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut debugfs = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(point), Some(fstype)) = (
            pre.split_whitespace().nth(4),
            post.split_whitespace().next(),
        ) else {
            continue;
        };
        match fstype {
            "tracefs" => return Some(PathBuf::from(point)),
            "debugfs" => debugfs = Some(Path::new(point).join("tracing")),
            _ => {}
        }
    }
    debugfs
}

/// Mounts tracefs at /sys/kernel/tracing when nothing is mounted (root only).
/// Classic tracepoints are found through it; many minimal hosts leave it unmounted.
pub fn ensure_tracefs() -> Result<&'static Path, TracefsError> {
    match tracefs_state() {
        Tracefs::Ready(p) => return Ok(p),
        Tracefs::Unreadable(p) => return Err(TracefsError::Unreadable(p)),
        Tracefs::Missing => {}
    }
    let target = Path::new(MOUNT_POINT);
    nix::mount::mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|source| TracefsError::Mount { target, source })?;
    tracefs().ok_or(TracefsError::NoEvents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tracefs_in_mountinfo() {
        let info = "22 27 0:21 / /proc rw,nosuid - proc proc rw
42 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw
30 23 0:7 / /sys/kernel/debug rw - debugfs debugfs rw";
        assert_eq!(
            tracefs_mount(info),
            Some(PathBuf::from("/sys/kernel/tracing"))
        );
        let debug_only = "30 23 0:7 / /sys/kernel/debug rw - debugfs debugfs rw";
        assert_eq!(
            tracefs_mount(debug_only),
            Some(PathBuf::from("/sys/kernel/debug/tracing"))
        );
        assert_eq!(tracefs_mount("22 27 0:21 / /proc rw - proc proc rw"), None);
    }

    #[test]
    fn errors_say_what_tracefs_lacks() {
        assert_eq!(
            TracefsError::Unreadable("/sys/kernel/tracing".into()).to_string(),
            "tracefs at /sys/kernel/tracing is readable by root only"
        );
        let mount = TracefsError::Mount {
            target: Path::new(MOUNT_POINT),
            source: nix::Error::EPERM,
        };
        assert_eq!(
            mount.to_string(),
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed: EPERM: Operation not permitted"
        );
    }
}
