//! What the host shows of labs, to tell that a lab added nothing to the
//! host's own view while up and left nothing behind once down.

use std::collections::BTreeSet;
use std::time::Duration;

use super::util;

/// How long a namespace may take to be dismantled once nothing holds it.
const RELEASE_LIMIT: Duration = Duration::from_secs(20);

/// What the host shows of labs: its own interfaces, the pinned namespaces,
/// and the macvtap char devices of every namespace (`/sys/dev/char` lists
/// them all, so they vanish only when the lab's namespaces are dismantled).
#[derive(Debug, PartialEq, Eq)]
pub struct HostView {
    class_net: BTreeSet<String>,
    run_netns: BTreeSet<String>,
    macvtap_chardevs: BTreeSet<String>,
}

impl HostView {
    /// Waits (bounded) until the macvtaps of earlier labs are gone, so that a
    /// new lab's char devices (whose minors the kernel may reuse) show as new;
    /// returns the view then.
    pub fn settled() -> HostView {
        // unchanged for half a second (namespaces go away in the background)
        let deadline = std::time::Instant::now() + RELEASE_LIMIT;
        let mut view = host_view();
        while std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            let now = host_view();
            if now == view {
                break;
            }
            view = now;
        }
        view
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

/// What the host shows now.
pub fn host_view() -> HostView {
    let major = std::fs::read_to_string("/proc/devices")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.trim().strip_suffix(" macvtap").map(str::to_string));
    HostView {
        class_net: list("/sys/class/net"),
        run_netns: list("/run/netns"),
        macvtap_chardevs: match major {
            Some(m) => list("/sys/dev/char")
                .into_iter()
                .filter(|d| d.starts_with(&format!("{m}:")))
                .collect(),
            None => BTreeSet::new(),
        },
    }
}

/// Every process (thread, fd or mount) that still refers to one of `inodes`.
pub fn holders(inodes: &[u64]) -> Vec<String> {
    let wanted: BTreeSet<String> = inodes.iter().map(|i| format!("net:[{i}]")).collect();
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
            if let Ok(target) = std::fs::read_link(&l) {
                if wanted.contains(&*target.to_string_lossy()) {
                    found.push(format!("{l} -> {}", target.display()));
                }
            }
        }
        let mounts = std::fs::read_to_string(format!("{base}/mountinfo")).unwrap_or_default();
        for w in &wanted {
            if mounts.contains(w.as_str()) {
                found.push(format!("{base}/mountinfo mounts {w}"));
            }
        }
    }
    found
}

/// What a lab added to the host's view: `during` minus `before`. Devices of
/// another (dying) lab may vanish meanwhile; only additions count.
fn added(before: &HostView, during: &HostView) -> HostView {
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect();
    HostView {
        class_net: diff(&during.class_net, &before.class_net),
        run_netns: diff(&during.run_netns, &before.run_netns),
        macvtap_chardevs: diff(&during.macvtap_chardevs, &before.macvtap_chardevs),
    }
}

/// Asserts that, within [`RELEASE_LIMIT`], nothing refers to the lab's
/// namespaces any more, none of `ours` (what the lab showed on the host) is
/// left, and nothing else appeared since `before`.
pub fn assert_gone(what: &str, inodes: &[u64], before: &HostView, ours: &HostView) {
    let mut left = (Vec::new(), None);
    let ok = util::poll_until(RELEASE_LIMIT, || {
        let now = host_view();
        let new = added(before, &now);
        let clean = new.class_net.is_empty()
            && new.run_netns.is_empty()
            && new.macvtap_chardevs.is_empty()
            && ours.macvtap_chardevs.is_disjoint(&now.macvtap_chardevs);
        left = (holders(inodes), (!clean).then_some(now));
        left.0.is_empty() && clean
    });
    assert!(
        ok,
        "{what}: {RELEASE_LIMIT:?} later, still held: {:?}; host now {:?}, before {before:?}, the lab's {ours:?}",
        left.0, left.1
    );
}

/// What the lab shows on the host while up: never an interface or a pinned
/// namespace; `macvtaps` char devices.
pub fn lab_view(what: &str, before: &HostView, macvtaps: usize) -> HostView {
    let ours = added(before, &host_view());
    assert!(
        ours.class_net.is_empty(),
        "{what}: lab devices among the host's own: {ours:?}"
    );
    assert!(
        ours.run_netns.is_empty(),
        "{what}: a pinned namespace: {ours:?}"
    );
    assert_eq!(
        ours.macvtap_chardevs.len(),
        macvtaps,
        "{what}: macvtap char devices: {ours:?}"
    );
    ours
}
