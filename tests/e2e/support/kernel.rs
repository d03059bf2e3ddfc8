//! What a vprobe process holds in the kernel — its programs, maps and links,
//! read from its own fds (`/proc/PID/fdinfo`) — and whether any of it is
//! still loaded once the process has ended. Judged by the process's own
//! objects only: another vprobe, or anything else loading programs on the
//! host meanwhile, changes nothing (BPF object ids are allocated cyclically,
//! so an id is not reused while a test runs).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::host::list;

/// How long the kernel may take to free what a session loaded once it ended.
pub const RELEASE_LIMIT: Duration = Duration::from_secs(3);

fn bpftool(what: &str) -> Vec<Value> {
    let out = Command::new("bpftool")
        .args([what, "show", "-j"])
        .output()
        .unwrap_or_else(|e| panic!("bpftool {what} show: {e}"));
    assert!(
        out.status.success(),
        "bpftool {what} show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str(&text) {
        Ok(Value::Array(v)) => v,
        other => panic!("bpftool {what} show -j: {other:?}"),
    }
}

fn id(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or(0)
}

/// Programs, maps and links in the kernel.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kernel {
    progs: BTreeSet<u64>,
    maps: BTreeSet<u64>,
    links: BTreeSet<u64>,
}

impl Kernel {
    /// What process `pid` holds: every BPF program, map and link among its
    /// fds, and the maps its programs use.
    pub fn of(pid: u32) -> Kernel {
        let mut k = Kernel::default();
        for fd in list(&format!("/proc/{pid}/fd")) {
            let Ok(target) = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) else {
                continue;
            };
            if !target.to_string_lossy().starts_with("anon_inode:bpf") {
                continue;
            }
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            for line in info.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                let Ok(n) = value.trim().parse::<u64>() else {
                    continue;
                };
                match key {
                    "prog_id" => k.progs.insert(n),
                    "map_id" => k.maps.insert(n),
                    "link_id" => k.links.insert(n),
                    _ => false,
                };
            }
        }
        for p in bpftool("prog") {
            if k.progs.contains(&id(&p, "id")) {
                if let Some(maps) = p["map_ids"].as_array() {
                    k.maps.extend(maps.iter().filter_map(Value::as_u64));
                }
            }
        }
        k
    }

    /// Programs found.
    pub fn programs(&self) -> usize {
        self.progs.len()
    }

    /// Of `ours`, what is still loaded now.
    pub fn remaining(ours: &Kernel) -> Kernel {
        let ids =
            |what: &str| -> BTreeSet<u64> { bpftool(what).iter().map(|v| id(v, "id")).collect() };
        Kernel {
            progs: ids("prog").intersection(&ours.progs).copied().collect(),
            maps: ids("map").intersection(&ours.maps).copied().collect(),
            links: ids("link").intersection(&ours.links).copied().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.progs.is_empty() && self.maps.is_empty() && self.links.is_empty()
    }
}

/// Asserts that, within [`RELEASE_LIMIT`], none of `ours` is loaded any more.
pub fn assert_released(what: &str, ours: &Kernel) {
    let mut left = Kernel::default();
    let gone = super::util::poll_until(RELEASE_LIMIT, || {
        left = Kernel::remaining(ours);
        left.is_empty()
    });
    assert!(
        gone,
        "{what}: {RELEASE_LIMIT:?} later the kernel still holds {left:?} of {ours:?}"
    );
}
