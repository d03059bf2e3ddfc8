//! The `vprobe doctor` report: each capability vprobe cares about, and why it
//! is or is not there.

use std::path::Path;

use serde::Serialize;

use super::{
    btf_parses, has_btf, has_kprobes, has_uprobes, kernel_release, privileges, tracefs_state,
    Tracefs, KPROBES_ABSENT, UPROBES_ABSENT, VMLINUX_BTF,
};
use crate::message::with_causes;

/// The names of the features [`Features`] reports (and a script's
/// `//! requires:` may name).
pub const FEATURE_NAMES: [&str; 10] = [
    "btf",
    "privileges",
    "tracefs",
    "kprobe",
    "uprobe",
    "tp_btf",
    "raw_tracepoint",
    "tracepoint",
    "ringbuf",
    "fentry",
];

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

/// Whether perf kprobes exist (CONFIG_KPROBE_EVENTS / the kprobe PMU).
fn kprobes() -> Feature {
    let ok = has_kprobes();
    Feature {
        name: "kprobe",
        ok,
        detail: if ok {
            "kprobe PMU present".into()
        } else {
            format!(
                "{KPROBES_ABSENT}; kprobe:FUNC cannot attach, use tracepoint-based attach points"
            )
        },
    }
}

/// Whether perf uprobes exist (CONFIG_UPROBE_EVENTS / the uprobe PMU).
fn uprobes() -> Feature {
    let ok = has_uprobes();
    Feature {
        name: "uprobe",
        ok,
        detail: if ok {
            "uprobe PMU present".into()
        } else {
            UPROBES_ABSENT.into()
        },
    }
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
        let (btf, detail) = if !has_btf() {
            (
                false,
                "no /sys/kernel/btf/vmlinux: the kernel needs CONFIG_DEBUG_INFO_BTF=y".to_string(),
            )
        } else {
            match btf_parses(Path::new(VMLINUX_BTF)) {
                Ok(()) => (true, VMLINUX_BTF.to_string()),
                Err(e) => (
                    false,
                    format!("{VMLINUX_BTF} cannot be parsed: {}", with_causes(&e)),
                ),
            }
        };
        f.push("btf", btf, detail);
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
