//! Disposable network namespaces for the tests, made with iproute2.
//!
//! Each is named `vpt-<pid>-<n>` and deleted on drop, also when the test
//! panics; the links inside die with it. Namespaces left by a test process
//! that was SIGKILLed are swept the next time a namespace is made.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use nix::sched::CloneFlags;

const PREFIX: &str = "vpt-";

pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes a namespace with loopback up and IPv6 off, so that nothing but
    /// the test's own traffic (no router solicitations, no DAD) crosses its links.
    pub fn new() -> Netns {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.ip("link set lo up");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's inode number, as the kernel reports it (`ns.inum`).
    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path())
            .unwrap_or_else(|e| panic!("stat {}: {e}", self.path().display()))
            .ino()
    }

    /// Runs `args` inside the namespace (`ip netns exec`, which also
    /// remounts /sys for it) and returns its stdout; panics if it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let out = run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NS <words>`, e.g. `ns.ip("link set vA up")`.
    pub fn ip(&self, words: &str) {
        run(Command::new("ip")
            .args(["-n", &self.name])
            .args(words.split_whitespace()));
    }

    /// A file inside the namespace's view of /sys or /proc.
    pub fn read(&self, path: &str) -> String {
        self.exec(&["cat", path]).trim().to_string()
    }

    /// A device statistics counter (`rx_dropped`, …) seen from inside.
    pub fn dev_stat(&self, dev: &str, stat: &str) -> u64 {
        let p = format!("/sys/class/net/{dev}/statistics/{stat}");
        let s = self.read(&p);
        s.parse()
            .unwrap_or_else(|e| panic!("{p} in {}: `{s}`: {e}", self.name))
    }

    /// A counter of /proc/net/snmp (`("Tcp", "RetransSegs")`) inside.
    pub fn snmp(&self, proto: &str, field: &str) -> u64 {
        let text = self.read("/proc/net/snmp");
        parse_snmp(&text, proto, field)
            .unwrap_or_else(|| panic!("no {proto}:{field} in /proc/net/snmp of {}", self.name))
    }

    /// Runs `f` on a thread that has entered the namespace: sockets it makes
    /// belong to the namespace and stay there after the thread ends.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                let fd =
                    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair with one end in each namespace, both up. Made directly in the
/// namespaces, so nothing ever appears among the host's own interfaces.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    run(Command::new("ip").args([
        "link",
        "add",
        a_dev,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ]));
    a.ip(&format!("link set {a_dev} up"));
    b.ip(&format!("link set {b_dev} up"));
}

/// A MAC address from `/sys/class/net/DEV/address` inside `ns`.
pub fn mac(ns: &Netns, dev: &str) -> [u8; 6] {
    let s = ns.read(&format!("/sys/class/net/{dev}/address"));
    let mut mac = [0u8; 6];
    let parts: Vec<_> = s.split(':').collect();
    assert_eq!(parts.len(), 6, "bad MAC `{s}`");
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16).unwrap_or_else(|e| panic!("bad MAC `{s}`: {e}"));
    }
    mac
}

/// Finds `field` of `proto` in /proc/net/snmp's header/value line pairs.
pub fn parse_snmp(text: &str, proto: &str, field: &str) -> Option<u64> {
    let tag = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&tag));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deletes `vpt-<pid>-*` namespaces whose test process no longer exists.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

#[test]
fn snmp_parses_header_and_value_lines() {
    let text = "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm RtoMin RetransSegs\nTcp: 1 200 17\n";
    assert_eq!(parse_snmp(text, "Tcp", "RetransSegs"), Some(17));
    assert_eq!(parse_snmp(text, "Ip", "DefaultTTL"), Some(64));
    assert_eq!(parse_snmp(text, "Udp", "InErrors"), None);
}
