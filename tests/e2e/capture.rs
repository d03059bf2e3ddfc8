//! `.capture(..)`: the packets of drops and retransmits in a pcapng file, as
//! tshark (Debian package `tshark`) reads it, against the kernel's counters;
//! and `tcp.retransmit`'s count against TcpRetransSegs under random drops.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::labs::{MacvtapLab, TcpLab, TunLab, ADDR_B, MACVTAP, TAP};
use crate::support::netns::parse_snmp;
use crate::support::util::{self, Session, TempDir};

const FRAMES: usize = 500;
const FLOOD_LIMIT: Duration = Duration::from_secs(10);
const RING: usize = 16;

/// `tshark -r FILE -T fields -e FIELD..`: one row per packet, fields split.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args([
        "-r",
        file.to_str().unwrap(),
        "-T",
        "fields",
        "-E",
        "separator=\t",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let (out, timed_out) = util::output_within(&mut cmd, Duration::from_secs(60));
    assert!(!timed_out, "tshark timed out on {}", file.display());
    assert!(
        out.status.success(),
        "tshark cannot read {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Runs `script` (JSON output) around `work`, which returns the kernel
/// counter's delta; returns (summary, delta, what vprobe printed).
fn around(script: &str, extra: &[&str], work: impl FnOnce() -> u64) -> (Value, u64, String) {
    let mut args = vec!["-e", script, "--format", "json", "--duration", "60s"];
    args.extend_from_slice(extra);
    let mut s = Session::spawn(&args);
    s.wait_start();
    let delta = work();
    s.signal(Signal::SIGINT);
    let done = s.finish();
    done.assert_success();
    (done.summary(), delta, done.describe())
}

fn capture_written(summary: &Value, file: &Path) -> u64 {
    summary["captures"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["path"] == file.to_str().unwrap()))
        .and_then(|c| c["packets"].as_u64())
        .unwrap_or_else(|| panic!("no capture of {} in {summary}", file.display()))
}

#[test]
fn macvtap_drops_are_captured_one_packet_each() {
    macvtap_capture("capture::macvtap_drops_are_captured_one_packet_each", &[]);
}

// The classic tracepoint copies the same bytes through the same helper.
#[test]
fn macvtap_drops_are_captured_via_classic_tracepoint() {
    macvtap_capture(
        "capture::macvtap_drops_are_captured_via_classic_tracepoint",
        &["--disable-mechanism", "tp_btf"],
    );
}

fn macvtap_capture(name: &str, extra: &[&str]) {
    if !util::root_or_skip(name) {
        return;
    }
    let _k = util::kernel_lock();
    let dir = TempDir::new("capture-macvtap");
    let file = dir.path().join("drops.pcapng");
    let lab = MacvtapLab::new(RING);
    let p = format!(
        r#"probe("macvtap.drop").filter("netns", {})"#,
        lab.b.inode()
    );
    let script = format!(
        r#"{p}.count("drops", ["dev", "reason"]); {p}.capture("{}", #{{snaplen: 96}});"#,
        file.display()
    );
    let (summary, delta, what) = around(&script, extra, || {
        let before = lab.rx_dropped();
        lab.flood(FRAMES, FLOOD_LIMIT);
        std::thread::sleep(Duration::from_millis(300));
        lab.rx_dropped() - before
    });
    let counted = util::count_where(&summary, "drops", &[("dev", MACVTAP)]);
    let rows = tshark(
        &file,
        &[
            "frame.interface_name",
            "eth.src",
            "udp.dstport",
            "frame.comment",
        ],
    );
    let full = rows
        .iter()
        .filter(|r| r[3].contains("reason=FULL_RING") && r[3].contains("ring_size=16"))
        .count() as u64;
    eprintln!(
        "macvtap capture: rx_dropped +{delta}, vprobe {counted}, {} packets ({full} FULL_RING), lost {:?}",
        rows.len(),
        util::losses(&summary)
    );
    assert!(delta > 0, "the lab made no drops\n{what}");
    assert_eq!(counted, delta, "{what}");
    assert_eq!(rows.len() as u64, delta, "one packet per drop\n{what}");
    assert_eq!(
        full, delta,
        "each with its reason and ring readable\n{what}"
    );
    assert_eq!(capture_written(&summary, &file), delta, "{what}");
    // the frames themselves, from their Ethernet header: the flood's UDP frames
    assert!(
        rows.iter().all(|r| r[0] == MACVTAP && !r[1].is_empty()),
        "{rows:?}"
    );
    assert!(
        summary["probes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["feeds"].as_str().unwrap().starts_with("capture ")),
        "{what}"
    );
}

#[test]
fn tun_overflow_is_captured_one_packet_each() {
    if !util::root_or_skip("capture::tun_overflow_is_captured_one_packet_each") {
        return;
    }
    let _k = util::kernel_lock();
    let dir = TempDir::new("capture-tun");
    let file = dir.path().join("tun.pcapng");
    let lab = TunLab::new(RING);
    let p = format!(r#"probe("tun.drop").filter("netns", {})"#, lab.ns.inode());
    let script = format!(
        r#"{p}.count("drops", ["dev"]); {p}.capture("{}");"#,
        file.display()
    );
    let (summary, delta, what) = around(&script, &[], || {
        let before = lab.tx_dropped();
        lab.flood(FRAMES, FLOOD_LIMIT);
        std::thread::sleep(Duration::from_millis(300));
        lab.tx_dropped() - before
    });
    let counted = util::count_where(&summary, "drops", &[("dev", TAP)]);
    let rows = tshark(&file, &["frame.interface_name", "frame.comment"]);
    let full = rows
        .iter()
        .filter(|r| r[0] == TAP && r[1].contains("tun.drop reason=FULL_RING"))
        .count() as u64;
    eprintln!(
        "tun capture: tx_dropped +{delta}, vprobe {counted}, {} packets ({full} FULL_RING)",
        rows.len()
    );
    assert!(delta > 0, "the lab made no drops\n{what}");
    assert_eq!(counted, delta, "{what}");
    assert_eq!(rows.len() as u64, delta, "{what}");
    assert_eq!(full, delta, "{what}");
}

#[test]
fn tcp_retransmits_are_captured_with_their_segment_and_kind() {
    if !util::root_or_skip("capture::tcp_retransmits_are_captured_with_their_segment_and_kind") {
        return;
    }
    let _k = util::kernel_lock();
    let dir = TempDir::new("capture-retx");
    let file = dir.path().join("retx.pcapng");
    let lab = TcpLab::new();
    let mut conns = lab.connect(4);
    let p = format!(
        r#"probe("tcp.retransmit").filter("netns", {})"#,
        lab.a.inode()
    );
    let script = format!(
        r#"{p}.count("retx", ["kind", "err"]); {p}.capture("{}");"#,
        file.display()
    );
    let (summary, delta, what) = around(&script, &[], || {
        let before = lab.a.snmp("Tcp", "RetransSegs");
        lab.cut();
        conns.poke();
        std::thread::sleep(Duration::from_secs(2));
        conns.close();
        lab.a.snmp("Tcp", "RetransSegs") - before
    });
    let counted = util::count_where(&summary, "retx", &[("err", "0")]);
    let rows = tshark(
        &file,
        &[
            "ip.src",
            "ip.dst",
            "tcp.dstport",
            "tcp.len",
            "frame.comment",
        ],
    );
    eprintln!(
        "retransmit capture: RetransSegs +{delta}, vprobe {counted}, {} packets",
        rows.len()
    );
    assert!(delta > 0, "the lab made no retransmits\n{what}");
    assert_eq!(counted, delta, "{what}");
    assert_eq!(rows.len() as u64, delta, "{what}");
    for r in &rows {
        // the header built from the socket and the control block: the one
        // byte each connection had in flight, to B's server
        assert_eq!(r[1], ADDR_B, "{r:?}");
        assert_eq!(r[3], "1", "{r:?}");
        assert!(
            r[4].contains("tcp.retransmit") && r[4].contains("kind="),
            "{r:?}"
        );
    }
}

#[test]
fn a_rate_limit_holds_captures_back_in_the_kernel_and_counts_them() {
    if !util::root_or_skip(
        "capture::a_rate_limit_holds_captures_back_in_the_kernel_and_counts_them",
    ) {
        return;
    }
    let _k = util::kernel_lock();
    let dir = TempDir::new("capture-rate");
    let file = dir.path().join("rate.pcapng");
    let lab = MacvtapLab::new(RING);
    let p = format!(
        r#"probe("macvtap.drop").filter("netns", {})"#,
        lab.b.inode()
    );
    let script = format!(
        r#"{p}.count("drops"); {p}.rate("20/1h").capture("{}");"#,
        file.display()
    );
    let (summary, delta, what) = around(&script, &[], || {
        let before = lab.rx_dropped();
        lab.flood(FRAMES, FLOOD_LIMIT);
        std::thread::sleep(Duration::from_millis(300));
        lab.rx_dropped() - before
    });
    let written = capture_written(&summary, &file);
    let held = summary["lost"]["rate_limited"].as_u64().unwrap();
    eprintln!("rate: {delta} drops, {written} captured, {held} held back");
    assert!(delta > 100, "{what}");
    // the window may open once on each CPU racing at its start
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    assert!((20..=20 + cpus).contains(&written), "{written}\n{what}");
    assert_eq!(
        written + held,
        delta,
        "every drop captured or counted\n{what}"
    );
}

/// The issue's measurement: a 1-byte request/response load between two
/// namespaces, nftables dropping 3 % of the data segments each way at
/// random; vprobe's retransmissions (segments of those sent, `err` 0, and
/// the SYN-ACKs sent again) against the growth of both namespaces'
/// TcpRetransSegs, kind by kind.
///
/// Most runs match exactly. Some do not: on Linux 6.18 0 to 3 of about 325
/// retransmissions (at most 1 %, loss probes and timeouts alike) are counted
/// in TcpRetransSegs while tcp:tcp_retransmit_skb reaches no BPF program,
/// tp_btf and classic alike; docs/DESIGN.md, "Counter fidelity". So the
/// check is: vprobe never counts more than the kernel, kind by kind, and
/// the difference stays that small.
#[test]
fn retransmits_equal_retrans_segs_under_random_drops() {
    if !util::root_or_skip("capture::retransmits_equal_retrans_segs_under_random_drops") {
        return;
    }
    let _k = util::kernel_lock();
    let lab = TcpLab::new();
    // data only (not SYN, FIN, RST; longer than IP + TCP with timestamps)
    for (ns, dir) in [(&lab.b, "dport"), (&lab.a, "sport")] {
        ns.exec(&["nft", "add", "table", "inet", "vpdrop"]);
        ns.exec(&[
            "nft",
            "add chain inet vpdrop input { type filter hook input priority 0; }",
        ]);
        ns.exec(&[
            "nft",
            &format!("add rule inet vpdrop input tcp {dir} 12866 tcp flags & (syn|fin|rst) == 0 ip length > 52 numgen random mod 100 < 3 drop"),
        ]);
    }
    let bin = env!("CARGO_BIN_EXE_vprobe");
    let _server = Reaped(
        Command::new("ip")
            .args(["netns", "exec", lab.b.name(), bin, "serve", "--bind"])
            .arg(format!("{ADDR_B}:12866"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vprobe serve in B"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let script = format!(
        r#"probe("tcp.retransmit").filter("netns", [{}, {}]).count("retx", ["segs", "err", "kind"]);"#,
        lab.a.inode(),
        lab.b.inode()
    );
    // (RetransSegs, TCPTimeouts, TCPLossProbes) of both namespaces
    let counters = || {
        let mut c = [0u64; 3];
        for ns in [&lab.a, &lab.b] {
            let ext = ns.read("/proc/net/netstat");
            c[0] += ns.snmp("Tcp", "RetransSegs");
            c[1] += parse_snmp(&ext, "TcpExt", "TCPTimeouts").expect("TCPTimeouts");
            c[2] += parse_snmp(&ext, "TcpExt", "TCPLossProbes").expect("TCPLossProbes");
        }
        c
    };
    let (summary, delta, what) = around(&script, &[], || {
        let before = counters();
        let (out, timed_out) = util::output_within(
            Command::new("ip").args([
                "netns",
                "exec",
                lab.a.name(),
                bin,
                "rr",
                &format!("{ADDR_B}:12866"),
                "-n",
                "8",
                "-d",
                "5s",
                "-f",
                "json",
            ]),
            Duration::from_secs(30),
        );
        assert!(!timed_out && out.status.success(), "rr: {out:?}");
        // connections closed and the last retransmits made before reading
        std::thread::sleep(Duration::from_millis(500));
        let after = counters();
        // packed: the closure returns one number
        (after[0] - before[0]) << 40 | (after[1] - before[1]) << 20 | (after[2] - before[2])
    });
    let (segs, timeouts, probes) = (delta >> 40, delta >> 20 & 0xfffff, delta & 0xfffff);
    let entries = summary["maps"]["retx"]["entries"].as_array().unwrap();
    let (mut sent, mut failed) = (0, 0);
    let mut by_kind = std::collections::BTreeMap::<String, u64>::new();
    for e in entries {
        let n = e["value"].as_u64().unwrap();
        if e["key"]["err"] == 0 {
            sent += n * e["key"]["segs"].as_u64().unwrap();
            *by_kind.entry(util::scalar(&e["key"]["kind"])).or_default() += n;
        } else {
            failed += n;
        }
    }
    let kind = |k: &str| by_kind.get(k).copied().unwrap_or(0);
    eprintln!(
        "random drops: TcpRetransSegs +{segs} (TCPTimeouts +{timeouts}, TCPLossProbes +{probes}); vprobe {sent} sent {by_kind:?}, {failed} attempts not sent, lost {}",
        summary["lost"]
    );
    assert!(segs > 50, "the load made too few retransmits\n{what}");
    assert!(sent <= segs, "more than the kernel counted\n{what}");
    assert!(kind("timeout") <= timeouts, "{what}");
    assert!(kind("tlp") <= probes, "{what}");
    // every retransmission here is a loss probe's or a timeout's
    assert_eq!(
        segs - sent,
        (timeouts - kind("timeout")) + (probes - kind("tlp")),
        "{what}"
    );
    assert!(
        (segs - sent) * 50 <= segs,
        "more than 2 % of the retransmissions unseen\n{what}"
    );
}

/// A child process killed (and reaped) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
