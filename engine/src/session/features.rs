//! What this kernel and this process can do: BTF, tracefs, tp_btf, fentry,
//! kprobes, ring buffers, privileges. Used by `vprobe doctor`, `vprobe list`
//! and the mechanism choice.

use std::path::Path;

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

/// Path of a mounted tracefs, if any.
pub fn tracefs() -> Option<&'static Path> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
}

/// Mounts tracefs at /sys/kernel/tracing when nothing is mounted (root only).
/// Classic tracepoints are found through it; many minimal hosts leave it unmounted.
pub fn ensure_tracefs() -> Result<&'static Path, String> {
    if let Some(p) = tracefs() {
        return Ok(p);
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

/// Whether perf kprobes exist (CONFIG_KPROBE_EVENTS / the kprobe PMU).
pub fn kprobes() -> Feature {
    let ok = Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    Feature {
        name: "kprobe",
        ok,
        detail: if ok {
            "kprobe PMU present".into()
        } else {
            "kprobes are not built in (no /sys/bus/event_source/devices/kprobe); use tracepoint-based attach points".into()
        },
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
        let tfs = tracefs();
        f.push(
            "tracefs",
            tfs.is_some(),
            match tfs {
                Some(p) => p.display().to_string(),
                None => "not mounted; vprobe mounts it at /sys/kernel/tracing when a classic tracepoint needs it".into(),
            },
        );
        let k = kprobes();
        f.push(k.name, k.ok, k.detail);
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
