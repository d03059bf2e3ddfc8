//! What vprobe holds in the kernel: its `vp_` programs, their maps and the
//! links attached to them, as `bpftool` lists them.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

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

/// `vp_` programs now: (id, map ids).
pub fn vp_programs() -> Vec<(u64, Vec<u64>)> {
    bpftool("prog")
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("vp_")))
        .map(|p| {
            let maps = p["map_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            (id(p, "id"), maps)
        })
        .collect()
}

/// Programs, maps and links in the kernel.
#[derive(Debug, Default)]
pub struct Kernel {
    progs: BTreeSet<u64>,
    maps: BTreeSet<u64>,
    links: BTreeSet<u64>,
}

impl Kernel {
    /// The `vp_` programs loaded now that are not in `before`, with their maps and links.
    pub fn new_since(before: &BTreeSet<u64>) -> Kernel {
        let mut ours = Kernel::default();
        for (id, maps) in vp_programs() {
            if !before.contains(&id) {
                ours.progs.insert(id);
                ours.maps.extend(maps);
            }
        }
        for l in bpftool("link") {
            if ours.progs.contains(&id(&l, "prog_id")) {
                ours.links.insert(id(&l, "id"));
            }
        }
        ours
    }

    /// Programs found.
    pub fn programs(&self) -> usize {
        self.progs.len()
    }

    /// Of `ours`, what is still loaded, plus every `vp_` program not in `before`.
    pub fn remaining(ours: &Kernel, before: &BTreeSet<u64>) -> Kernel {
        let vp: BTreeSet<u64> = vp_programs().into_iter().map(|(id, _)| id).collect();
        let all_progs: BTreeSet<u64> = bpftool("prog").iter().map(|p| id(p, "id")).collect();
        let maps: BTreeSet<u64> = bpftool("map").iter().map(|m| id(m, "id")).collect();
        let links = bpftool("link");
        Kernel {
            progs: all_progs
                .iter()
                .filter(|p| ours.progs.contains(p) || (vp.contains(p) && !before.contains(p)))
                .copied()
                .collect(),
            maps: maps.intersection(&ours.maps).copied().collect(),
            links: links
                .iter()
                .filter(|l| {
                    ours.links.contains(&id(l, "id")) || ours.progs.contains(&id(l, "prog_id"))
                })
                .map(|l| id(l, "id"))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.progs.is_empty() && self.maps.is_empty() && self.links.is_empty()
    }
}
