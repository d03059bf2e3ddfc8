//! Nothing of vprobe's stays in the kernel after it ends, however it ends:
//! its `--duration`, `exit()` in the script, SIGINT, SIGTERM or SIGKILL.
//!
//! "Its" programs are the `vp_` programs that appeared while the session ran,
//! its maps those programs use, its links those attached to them; all must be
//! gone within a few seconds (the kernel frees them asynchronously). Any
//! other `vp_` program left at the end is reported too, unless it was
//! already there before the session (someone else's vprobe).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::util::{self, Session};

/// A script that loads programs of several kinds and maps of every kind:
/// per-CPU counters, a histogram, and a ring buffer for `on_event`.
const SCRIPT: &str = r#"probe("skb.drop").count("drops", ["reason"]);
probe("dev.xmit").hist("sizes", "len");
probe("tcp.retransmit").on_event(|e| print(e.dport));"#;

pub const RELEASE_LIMIT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug)]
enum End {
    Duration,
    ScriptExit,
    Signal(Signal),
}

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

fn leaves_nothing(test: &str, end: End) {
    if !util::root_or_skip(test) {
        return;
    }
    let _k = util::kernel_lock();
    let before: BTreeSet<u64> = vp_programs().into_iter().map(|(id, _)| id).collect();
    if !before.is_empty() {
        eprintln!("note: vp_ programs loaded before the test (another vprobe?): {before:?}");
    }
    let script = match end {
        End::ScriptExit => format!("{SCRIPT}\nevery(\"1s\", || exit());"),
        _ => SCRIPT.to_string(),
    };
    let duration = match end {
        End::Duration => "2s",
        _ => "60s",
    };
    let mut s = Session::spawn(&["-e", &script, "--format", "json", "--duration", duration]);
    s.wait_start();

    let ours = Kernel::new_since(&before);
    eprintln!("{test}: while running: {ours:?}");
    assert!(
        ours.progs.len() >= 3,
        "expected the session's vp_ programs (3 probes) to be loaded: {ours:?}"
    );

    match end {
        End::Duration | End::ScriptExit => {}
        End::Signal(sig) => s.signal(sig),
    }
    let done = s.finish();
    match end {
        End::Signal(Signal::SIGKILL) => {}
        _ => {
            done.assert_success();
            done.summary();
        }
    }

    let mut left = Kernel::default();
    let gone = util::poll_until(RELEASE_LIMIT, || {
        left = Kernel::remaining(&ours, &before);
        left.is_empty()
    });
    assert!(
        gone,
        "{RELEASE_LIMIT:?} after vprobe ended ({end:?}) the kernel still holds {left:?}\n{}",
        done.describe()
    );
}

#[test]
fn nothing_left_after_duration() {
    leaves_nothing("leftovers::nothing_left_after_duration", End::Duration);
}

#[test]
fn nothing_left_after_script_exit() {
    leaves_nothing("leftovers::nothing_left_after_script_exit", End::ScriptExit);
}

#[test]
fn nothing_left_after_sigint() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigint",
        End::Signal(Signal::SIGINT),
    );
}

#[test]
fn nothing_left_after_sigterm() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigterm",
        End::Signal(Signal::SIGTERM),
    );
}

#[test]
fn nothing_left_after_sigkill() {
    leaves_nothing(
        "leftovers::nothing_left_after_sigkill",
        End::Signal(Signal::SIGKILL),
    );
}
