//! What this kernel and this process can do: BTF, tracefs, tp_btf, fentry,
//! kprobes, ring buffers, privileges. Used by `vprobe doctor`, `vprobe list`
//! and the mechanism choice.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Effective privileges relevant to BPF.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Privileges {
    /// Effective uid is 0.
    pub root: bool,
    /// CAP_SYS_ADMIN.
    pub sys_admin: bool,
    /// CAP_BPF (5.8+).
    pub bpf: bool,
    /// CAP_PERFMON (5.8+), needed for tracing programs.
    pub perfmon: bool,
}

impl Privileges {
    /// Enough to load and attach tracing programs.
    pub fn sufficient(&self) -> bool {
        self.sys_admin || (self.bpf && self.perfmon)
    }

    /// What is missing, for an error message.
    pub fn missing(&self) -> String {
        let mut m = Vec::new();
        if !self.bpf {
            m.push("CAP_BPF");
        }
        if !self.perfmon {
            m.push("CAP_PERFMON");
        }
        format!(
            "vprobe needs root, or CAP_BPF and CAP_PERFMON, to load eBPF programs (missing: {}); run it with sudo",
            m.join(", ")
        )
    }
}

/// Reads the effective capabilities of this process.
pub fn privileges() -> Privileges {
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    Privileges {
        root: nix::unistd::geteuid().is_root(),
        sys_admin: has(21),
        bpf: has(39),
        perfmon: has(38),
    }
}

/// One capability and why it is or is not there.
#[derive(Clone, Debug, Serialize)]
pub struct Feature {
    /// Short name (`btf`, `tp_btf`, `kprobe`…).
    pub name: &'static str,
    /// Whether it works here.
    pub ok: bool,
    /// What was found, or what would make it work.
    pub detail: String,
}

/// The kernel's capabilities as far as vprobe cares.
#[derive(Clone, Debug, Serialize)]
pub struct Features {
    /// `uname -r`.
    pub kernel: String,
    /// Each feature.
    pub features: Vec<Feature>,
}

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

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

const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

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
pub fn ensure_tracefs() -> Result<&'static Path, String> {
    match tracefs_state() {
        Tracefs::Ready(p) => return Ok(p),
        Tracefs::Unreadable(p) => {
            return Err(format!(
                "tracefs at {} is readable by root only",
                p.display()
            ))
        }
        Tracefs::Missing => {}
    }
    let target = Path::new("/sys/kernel/tracing");
    nix::mount::mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "tracefs is not mounted and mounting it at {} failed: {e}",
            target.display()
        )
    })?;
    tracefs().ok_or_else(|| "tracefs mounted but has no events/".to_string())
}

/// Why kprobes cannot be used here, if they cannot.
pub fn kprobes_missing() -> Option<String> {
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe/type");
    (!pmu.exists()).then(|| KPROBES_ABSENT.to_string())
}

/// The reason kprobe mechanisms give on a kernel without them.
pub const KPROBES_ABSENT: &str =
    "kprobes are not built in (no /sys/bus/event_source/devices/kprobe)";

/// Why uprobes cannot be used here, if they cannot.
pub fn uprobes_missing() -> Option<String> {
    let pmu = Path::new("/sys/bus/event_source/devices/uprobe/type");
    (!pmu.exists())
        .then(|| "uprobes are not built in (no /sys/bus/event_source/devices/uprobe)".to_string())
}

/// The kernel's lockdown mode (`integrity`, `confidentiality`), when securityfs
/// shows one other than `none`.
pub fn lockdown() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    let mode = text.split('[').nth(1)?.split(']').next()?.to_string();
    (mode != "none").then_some(mode)
}

/// Whether perf kprobes exist (CONFIG_KPROBE_EVENTS / the kprobe PMU).
pub fn kprobes() -> Feature {
    let missing = kprobes_missing();
    Feature {
        name: "kprobe",
        ok: missing.is_none(),
        detail: match missing {
            None => "kprobe PMU present".into(),
            Some(m) => {
                format!("{m}; kprobe:FUNC cannot attach, use tracepoint-based attach points")
            }
        },
    }
}

/// Whether perf uprobes exist (CONFIG_UPROBE_EVENTS / the uprobe PMU).
pub fn uprobes() -> Feature {
    let missing = uprobes_missing();
    Feature {
        name: "uprobe",
        ok: missing.is_none(),
        detail: missing.unwrap_or_else(|| "uprobe PMU present".into()),
    }
}

/// Kernel release (`uname -r`).
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl Features {
    /// Detects what can be detected without loading anything; the session adds
    /// load-based results (tp_btf, fentry) through [`Features::push`].
    pub fn detect() -> Self {
        let p = privileges();
        let mut f = Features {
            kernel: kernel_release(),
            features: Vec::new(),
        };
        let btf = Path::new(VMLINUX_BTF).exists();
        f.push(
            "btf",
            btf,
            if btf {
                VMLINUX_BTF.to_string()
            } else {
                "no /sys/kernel/btf/vmlinux: the kernel needs CONFIG_DEBUG_INFO_BTF=y".into()
            },
        );
        f.push(
            "privileges",
            p.sufficient(),
            if p.sufficient() {
                if p.root {
                    "root".into()
                } else {
                    "CAP_BPF and CAP_PERFMON".into()
                }
            } else {
                p.missing()
            },
        );
        match tracefs_state() {
            Tracefs::Ready(p) => f.push("tracefs", true, p.display().to_string()),
            Tracefs::Unreadable(p) => f.push(
                "tracefs",
                false,
                format!(
                    "mounted at {} but unreadable by this user (root only); classic tracepoints need root",
                    p.display()
                ),
            ),
            Tracefs::Missing => f.push(
                "tracefs",
                false,
                "not mounted; vprobe mounts it at /sys/kernel/tracing when a classic tracepoint needs it".into(),
            ),
        }
        for k in [kprobes(), uprobes()] {
            f.push(k.name, k.ok, k.detail);
        }
        f
    }

    /// Adds a feature result.
    pub fn push(&mut self, name: &'static str, ok: bool, detail: String) {
        self.features.push(Feature { name, ok, detail });
    }

    /// The feature called `name`.
    pub fn get(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }
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
}
