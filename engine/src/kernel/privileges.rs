//! Whether this process may load and attach tracing programs.

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
