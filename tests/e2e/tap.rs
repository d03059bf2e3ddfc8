//! `macvtap.drop`, `tun.drop` and `skb.drop`'s `layer` against the kernel's
//! own counters, on rings the tests overflow themselves.
//!
//! Ring invariants checked on every event (see probes/bpf/tap.bpf.c): at a
//! FULL_RING drop the producer's next slot is still taken, so the packets
//! waiting (`ring_occupancy`) and the slots the reader took but has not yet
//! handed back (`ring_unreleased`) add up to the ring's size.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::labs::{self, MacvtapLab, TunLab, MACVTAP, TAP};
use crate::support::util::{self, Session};

const FLOOD_LIMIT: Duration = Duration::from_secs(10);

/// The entries of count map `map` in a summary: (key object, count).
fn entries(summary: &Value, map: &str) -> Vec<(Value, u64)> {
    summary["maps"][map]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no map `{map}` in {summary}"))
        .iter()
        .map(|e| (e["key"].clone(), e["value"].as_u64().expect("a count")))
        .collect()
}

fn num(key: &Value, field: &str) -> u64 {
    key[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {key}"))
}

/// Runs `script` (JSON output) around `work`, which returns the kernel
/// counter's delta; returns (summary, delta).
fn session_around(script: &str, extra: &[&str], work: impl FnOnce() -> u64) -> (Value, u64) {
    let mut args = vec!["-e", script, "--format", "json", "--duration", "60s"];
    args.extend_from_slice(extra);
    let mut s = Session::spawn(&args);
    s.wait_start();
    let delta = work();
    s.signal(Signal::SIGINT);
    let done = s.finish();
    done.assert_success();
    (done.summary(), delta)
}

const RING_KEYS: &str = r#"["dev", "queue", "queues", "reason", "location", "ring_size", "ring_occupancy", "ring_unreleased", "saddr", "daddr", "sport", "dport"]"#;

#[test]
fn macvtap_drop_unread_ring_is_full_and_counts_rx_dropped() {
    macvtap_unread(
        "tap::macvtap_drop_unread_ring_is_full_and_counts_rx_dropped",
        &[],
    );
}

// The classic tracepoint reads the same ring through the same CO-RE code.
#[test]
fn macvtap_drop_via_classic_tracepoint() {
    macvtap_unread(
        "tap::macvtap_drop_via_classic_tracepoint",
        &["--disable-mechanism", "tp_btf"],
    );
}

fn macvtap_unread(name: &str, extra: &[&str]) {
    if !util::root_or_skip(name) {
        return;
    }
    let _k = util::kernel_lock();
    const RING: usize = 16;
    let lab = MacvtapLab::new(RING);
    let script = format!(
        r#"probe("macvtap.drop").filter("netns", {}).count("drops", {RING_KEYS});"#,
        lab.b.inode()
    );
    let (summary, delta) = session_around(&script, extra, || {
        let before = lab.rx_dropped();
        let sent = lab.flood(2000, FLOOD_LIMIT);
        std::thread::sleep(Duration::from_millis(200));
        let d = lab.rx_dropped() - before;
        eprintln!("{sent} frames → {MACVTAP} rx_dropped +{d}");
        d
    });
    let e = entries(&summary, "drops");
    let counted: u64 = e.iter().map(|(_, n)| n).sum();
    eprintln!("macvtap.drop {counted}: {e:?}");
    assert!(delta > 0, "the lab made no drops");
    assert_eq!(counted, delta, "macvtap.drop count != rx_dropped delta");
    for (k, _) in &e {
        assert_eq!(util::scalar(&k["dev"]), MACVTAP);
        assert_eq!(util::scalar(&k["reason"]), "FULL_RING");
        assert!(
            util::scalar(&k["location"]).starts_with("tap_handle_frame"),
            "{k}"
        );
        assert_eq!((num(k, "queue"), num(k, "queues")), (0, 1), "{k}");
        // the flow comes from the dropped packet's own headers
        assert_eq!(util::scalar(&k["saddr"]), "192.0.2.1", "{k}");
        assert_eq!(util::scalar(&k["daddr"]), "192.0.2.2", "{k}");
        assert_eq!((num(k, "sport"), num(k, "dport")), (9, 9), "{k}");
        // nobody reads: the ring is truly full
        assert_eq!(num(k, "ring_size"), RING as u64, "{k}");
        assert_eq!(num(k, "ring_occupancy"), RING as u64, "{k}");
        assert_eq!(num(k, "ring_unreleased"), 0, "{k}");
    }
}

/// A reader that takes one frame every millisecond from a 64-slot ring
/// (batch 16): drops happen while up to 15 taken slots are not yet handed
/// back, so the ring is "full" with fewer than 64 packets in it.
#[test]
fn macvtap_drop_slow_reader_shows_unreleased_slots() {
    if !util::root_or_skip("tap::macvtap_drop_slow_reader_shows_unreleased_slots") {
        return;
    }
    let _k = util::kernel_lock();
    const RING: u64 = 64;
    let lab = MacvtapLab::new(RING as usize);
    let script = format!(
        r#"probe("macvtap.drop").filter("netns", {}).count("drops", {RING_KEYS});
           probe("macvtap.drop").filter("netns", {}).hist("occ", "ring_occupancy");"#,
        lab.b.inode(),
        lab.b.inode()
    );
    let stop = AtomicBool::new(false);
    let mut reader = lab.reader();
    let (summary, delta) = session_around(&script, &[], || {
        std::thread::scope(|s| {
            let before = lab.rx_dropped();
            let r = s.spawn(|| {
                labs::read_slowly(
                    &mut reader,
                    Duration::from_millis(1),
                    &stop,
                    Duration::from_secs(20),
                )
            });
            // Slow enough for the reader to take a few hundred frames meanwhile.
            let mut sent = 0;
            for _ in 0..40 {
                sent += lab.flood(100, FLOOD_LIMIT);
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
            let read = r.join().expect("reader");
            std::thread::sleep(Duration::from_millis(200));
            let d = lab.rx_dropped() - before;
            eprintln!("{sent} frames, {read} read → {MACVTAP} rx_dropped +{d}");
            d
        })
    });
    let e = entries(&summary, "drops");
    let counted: u64 = e.iter().map(|(_, n)| n).sum();
    eprintln!(
        "macvtap.drop {counted}: (occupancy, unreleased) → count: {:?}",
        e.iter()
            .map(|(k, n)| ((num(k, "ring_occupancy"), num(k, "ring_unreleased")), *n))
            .collect::<Vec<_>>()
    );
    assert!(delta > 0, "the lab made no drops");
    assert_eq!(counted, delta, "macvtap.drop count != rx_dropped delta");
    let mut off = 0;
    let mut partial = 0;
    for (k, n) in &e {
        assert_eq!(util::scalar(&k["reason"]), "FULL_RING", "{k}");
        assert_eq!(num(k, "ring_size"), RING, "{k}");
        let (occ, unrel) = (num(k, "ring_occupancy"), num(k, "ring_unreleased"));
        assert!(occ <= RING && unrel < 16, "{k}");
        if occ + unrel != RING {
            off += n;
        }
        if unrel > 0 {
            partial += n;
        }
    }
    // Read without the ring's locks: the reader may take a slot between the
    // failed produce and the probe's read, rarely.
    assert!(
        off * 100 <= counted,
        "{off} of {counted} drops break occupancy + unreleased = size"
    );
    assert!(
        partial > 0,
        "no drop happened with slots taken but not handed back: {e:?}"
    );
    // The histogram saw every drop too.
    let hist_total: u64 = summary["maps"]["occ"]["entries"][0]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(hist_total, counted);
}

#[test]
fn tun_drop_count_equals_tx_dropped() {
    if !util::root_or_skip("tap::tun_drop_count_equals_tx_dropped") {
        return;
    }
    let _k = util::kernel_lock();
    const RING: usize = 16;
    let lab = TunLab::new(RING);
    let script = format!(
        r#"probe("tun.drop").filter("netns", {}).count("drops", {RING_KEYS});"#,
        lab.ns.inode()
    );
    let (summary, delta) = session_around(&script, &[], || {
        let before = lab.tx_dropped();
        let sent = lab.flood(2000, FLOOD_LIMIT);
        std::thread::sleep(Duration::from_millis(200));
        let d = lab.tx_dropped() - before;
        eprintln!("{sent} frames → {TAP} tx_dropped +{d}");
        d
    });
    let e = entries(&summary, "drops");
    let counted: u64 = e.iter().map(|(_, n)| n).sum();
    eprintln!("tun.drop {counted}: {e:?}");
    assert!(delta > 0, "the lab made no drops");
    assert_eq!(counted, delta, "tun.drop count != tx_dropped delta");
    for (k, _) in &e {
        assert_eq!(util::scalar(&k["dev"]), TAP);
        assert_eq!(util::scalar(&k["reason"]), "FULL_RING");
        assert!(
            util::scalar(&k["location"]).starts_with("tun_net_xmit"),
            "{k}"
        );
        assert_eq!((num(k, "queue"), num(k, "queues")), (0, 1), "{k}");
        assert_eq!(num(k, "ring_size"), RING as u64, "{k}");
        assert_eq!(num(k, "ring_occupancy"), RING as u64, "{k}");
        assert_eq!(num(k, "ring_unreleased"), 0, "{k}");
    }
}

/// skb.drop keyed by layer attributes the macvtap's drops to `tap`, and a
/// `layer` filter (in the kernel) keeps them and nothing else: a UDP drop in
/// the same namespace lands in `udp`.
#[test]
fn skb_drop_layer_names_and_filters_tap_drops() {
    if !util::root_or_skip("tap::skb_drop_layer_names_and_filters_tap_drops") {
        return;
    }
    let _k = util::kernel_lock();
    let lab = MacvtapLab::new(16);
    let ns = lab.b.inode();
    let script = format!(
        r#"probe("skb.drop").filter("netns", {ns}).count("by_layer", ["layer"]);
           probe("skb.drop").filter("netns", {ns}).filter("layer", "tap").count("tap", ["layer", "location"]);"#
    );
    let (summary, delta) = session_around(&script, &[], || {
        let before = lab.rx_dropped();
        lab.flood(500, FLOOD_LIMIT);
        // A datagram to a closed port on B's loopback: dropped by UDP.
        lab.b.enter(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            for _ in 0..5 {
                s.send_to(b"x", "127.0.0.1:9").expect("send");
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        lab.rx_dropped() - before
    });
    let by_layer = entries(&summary, "by_layer");
    let tap = entries(&summary, "tap");
    eprintln!("by layer: {by_layer:?}\ntap only: {tap:?}");
    let layer_count = |name: &str| -> u64 {
        by_layer
            .iter()
            .filter(|(k, _)| util::scalar(&k["layer"]) == name)
            .map(|(_, n)| n)
            .sum()
    };
    assert!(delta > 0, "the lab made no drops");
    assert_eq!(
        layer_count("tap"),
        delta,
        "tap-layer drops != rx_dropped delta"
    );
    assert!(layer_count("udp") >= 5, "the UDP drops are not in `udp`");
    let filtered: u64 = tap.iter().map(|(_, n)| n).sum();
    assert_eq!(filtered, delta, "the layer filter let through other drops");
    for (k, _) in &tap {
        assert_eq!(util::scalar(&k["layer"]), "tap");
        assert!(util::scalar(&k["location"]).starts_with("tap_"), "{k}");
    }
}

/// A full qdisc's drops are freed in generic code (`__dev_queue_xmit` when
/// `__dev_xmit_skb` is inlined): the QDISC_DROP reason makes them `qdisc`,
/// and the in-kernel filter counts exactly what the qdisc says it dropped.
#[test]
fn skb_drop_layer_qdisc_counts_qdisc_drops() {
    if !util::root_or_skip("tap::skb_drop_layer_qdisc_counts_qdisc_drops") {
        return;
    }
    let _k = util::kernel_lock();
    let lab = labs::TcpLab::new();
    // 8 kbit/s and room for one packet: nearly every datagram is dropped.
    lab.a.exec(&[
        "tc",
        "qdisc",
        "replace",
        "dev",
        labs::WIRE_A,
        "root",
        "tbf",
        "rate",
        "8kbit",
        "burst",
        "1600",
        "limit",
        "1600",
    ]);
    let qdisc_drops = || -> u64 {
        let out = lab
            .a
            .exec(&["tc", "-s", "-j", "qdisc", "show", "dev", labs::WIRE_A]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v[0]["drops"]
            .as_u64()
            .unwrap_or_else(|| panic!("no drops in {out}"))
    };
    let script = format!(
        r#"probe("skb.drop").filter("netns", {}).filter("layer", "qdisc").count("q", ["layer", "reason"]);"#,
        lab.a.inode()
    );
    let (summary, delta) = session_around(&script, &[], || {
        let before = qdisc_drops();
        lab.a.enter(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            let to = format!("{}:9", labs::ADDR_B);
            for _ in 0..300 {
                // a qdisc drop is not an error for UDP without IP_RECVERR
                let _ = s.send_to(&[0u8; 200], &to);
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        qdisc_drops() - before
    });
    let e = entries(&summary, "q");
    eprintln!("qdisc dropped {delta}; vprobe layer=qdisc: {e:?}");
    let counted: u64 = e.iter().map(|(_, n)| n).sum();
    assert!(delta > 0, "the qdisc dropped nothing");
    assert_eq!(counted, delta, "layer=qdisc count != the qdisc's drops");
    for (k, _) in &e {
        assert_eq!(util::scalar(&k["layer"]), "qdisc");
    }
}

/// Two queues, flows spread over them by hash: queue 0 is drained, queue 1
/// never read. Every drop must report queue 1 and its full ring: a wrong
/// queue choice (not tap_get_queue()'s) would show the drained ring instead.
#[test]
fn macvtap_drop_reports_the_queue_that_was_full() {
    if !util::root_or_skip("tap::macvtap_drop_reports_the_queue_that_was_full") {
        return;
    }
    let _k = util::kernel_lock();
    // Room enough that the drained queue never fills while its reader sleeps.
    const RING: u64 = 256;
    let lab = MacvtapLab::new(RING as usize);
    let _unread = lab.open_queue();
    let mut drained = lab.reader();
    let script = format!(
        r#"probe("macvtap.drop").filter("netns", {}).count("drops", {RING_KEYS});"#,
        lab.b.inode()
    );
    let stop = AtomicBool::new(false);
    let (summary, delta) = session_around(&script, &[], || {
        std::thread::scope(|s| {
            let before = lab.rx_dropped();
            let r = s.spawn(|| labs::drain(&mut drained, &stop, Duration::from_secs(20)));
            let sent = lab.flood_flows(64, 40, FLOOD_LIMIT);
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            let read = r.join().expect("reader");
            let d = lab.rx_dropped() - before;
            eprintln!("{sent} frames in 64 flows, {read} read from queue 0 → rx_dropped +{d}");
            assert!(read > 0, "no flow hashed to queue 0");
            d
        })
    });
    let e = entries(&summary, "drops");
    let counted: u64 = e.iter().map(|(_, n)| n).sum();
    eprintln!("macvtap.drop {counted}: {e:?}");
    assert!(
        delta > 0,
        "no flow hashed to queue 1, or its ring never filled"
    );
    assert_eq!(counted, delta, "macvtap.drop count != rx_dropped delta");
    for (k, _) in &e {
        assert_eq!((num(k, "queue"), num(k, "queues")), (1, 2), "{k}");
        assert_eq!(num(k, "ring_size"), RING, "{k}");
        assert_eq!(num(k, "ring_occupancy"), RING, "{k}");
    }
}

// ---- `counted`: the GSO segments tap_handle_frame drops itself ----

const GSO_SEGMENTS: u64 = 8;
const GSO_DATAGRAMS: usize = 50;

/// An unread ring of 16, then: plain frames (dropped at tap_handle_frame's
/// `drop:` label, counted in rx_dropped), GSO datagrams of 8 segments
/// (segmented by tap_handle_frame; the full ring refuses the first segment,
/// freed on its own, and the rest of the list goes with it through
/// kfree_skb_list_reason: neither counts in rx_dropped), plain frames again.
/// Returns rx_dropped's growth and the GSO datagrams sent.
fn plain_and_gso_traffic(lab: &MacvtapLab) -> (u64, usize) {
    let before = lab.rx_dropped();
    let frames = lab.flood(500, FLOOD_LIMIT);
    // Let the frames ahead fill the ring before the first datagram arrives:
    // nobody reads, so from then on every packet meets a full ring.
    std::thread::sleep(Duration::from_millis(200));
    let sent = lab.send_gso(GSO_DATAGRAMS, GSO_SEGMENTS as usize, 1000, FLOOD_LIMIT);
    let frames = frames + lab.flood(500, FLOOD_LIMIT);
    std::thread::sleep(Duration::from_millis(200));
    let d = lab.rx_dropped() - before;
    eprintln!(
        "{frames} frames, {sent} GSO datagrams of {GSO_SEGMENTS} → {MACVTAP} rx_dropped +{d}"
    );
    (d, sent)
}

#[test]
fn macvtap_drop_counted_splits_gso_segments_from_rx_dropped() {
    macvtap_gso(
        "tap::macvtap_drop_counted_splits_gso_segments_from_rx_dropped",
        &[],
    );
}

// The classic tracepoint's location is the same return address.
#[test]
fn macvtap_drop_counted_via_classic_tracepoint() {
    macvtap_gso(
        "tap::macvtap_drop_counted_via_classic_tracepoint",
        &["--disable-mechanism", "tp_btf"],
    );
}

fn macvtap_gso(name: &str, extra: &[&str]) {
    if !util::root_or_skip(name) {
        return;
    }
    let _k = util::kernel_lock();
    let lab = MacvtapLab::new(16);
    let ns = lab.b.inode();
    // `all` is a program of its own: the split must add up to what it saw.
    let script = format!(
        r#"probe("macvtap.drop").filter("netns", {ns}).count("by", ["counted", "location", "reason"]);
           probe("macvtap.drop").filter("netns", {ns}).count("all", ["dev"]);"#
    );
    let mut sent = 0;
    let (summary, delta) = session_around(&script, extra, || {
        let (d, s) = plain_and_gso_traffic(&lab);
        sent = s;
        d
    });
    let by = entries(&summary, "by");
    let all: u64 = entries(&summary, "all").iter().map(|(_, n)| n).sum();
    eprintln!("macvtap.drop {all}: {by:?}");
    let sum = |counted: u64| -> u64 {
        by.iter()
            .filter(|(k, _)| num(k, "counted") == counted)
            .map(|(_, n)| n)
            .sum()
    };
    let (counted, segments, unknown) = (sum(1), sum(0), sum(2));
    eprintln!("counted {counted}, GSO segments {segments}, unknown {unknown}; rx_dropped +{delta}");
    assert!(delta > 0, "the lab made no counted drops");
    assert_eq!(unknown, 0, "kfree_skb_list_reason not resolved? {by:?}");
    assert_eq!(counted, delta, "counted drops != rx_dropped delta");
    assert!(segments > 0, "no GSO segment dropped: {by:?}");
    assert_eq!(counted + segments, all, "counted + segments != every drop");
    for (k, _) in &by {
        assert_eq!(util::scalar(&k["reason"]), "FULL_RING", "{k}");
        assert!(
            util::scalar(&k["location"]).starts_with("tap_handle_frame+"),
            "{k}"
        );
    }
    // Every datagram that arrived met a full ring: its first segment dropped
    // at one place, the other 7 at another, and nothing at either else.
    let mut seg_sites: Vec<u64> = by
        .iter()
        .filter(|(k, _)| num(k, "counted") == 0)
        .map(|(_, n)| *n)
        .collect();
    seg_sites.sort_unstable();
    let arrived = seg_sites[0];
    assert_eq!(
        seg_sites,
        vec![arrived, arrived * (GSO_SEGMENTS - 1)],
        "segment drops by location: {by:?}"
    );
    assert!(
        arrived > 0 && arrived <= sent as u64,
        "{arrived} datagrams dropped of {sent} sent"
    );
}

/// The seed script, run inside B (`ip netns exec`: its /sys, so its
/// rx_dropped, is B's) on the same traffic: it compares the drops the device
/// counts with rx_dropped and reports the GSO segments on their own line.
#[test]
fn macvtap_drops_script_reports_gso_segments_apart() {
    if !util::root_or_skip("tap::macvtap_drops_script_reports_gso_segments_apart") {
        return;
    }
    let _k = util::kernel_lock();
    let lab = MacvtapLab::new(16);
    let script = util::repo_root().join("scripts/macvtap_drops.rhai");
    let dev = format!("dev={MACVTAP}");
    let mut s = util::Session::spawn_in(
        &lab.b,
        &[
            "run",
            script.to_str().unwrap(),
            "-p",
            "target=none",
            "-p",
            &dev,
            "-p",
            "duration=60s",
            "-f",
            "json",
        ],
    );
    s.wait_start();
    let (delta, sent) = plain_and_gso_traffic(&lab);
    s.signal(Signal::SIGINT);
    let done = s.finish();
    let what = done.describe();
    // The verdict also weighs every TCP drop and retransmission on the host
    // (no lab scopes them here): only this part of it is ours to judge.
    assert!(
        matches!(done.status.code(), Some(0 | 1)),
        "neither a verdict nor success\n{what}"
    );
    let summary = done.summary();
    let report = |key: &str| -> u64 {
        summary["reports"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("report `{key}` is not an integer\n{what}"))
    };
    let (all, counted, segments, unknown, rx) = (
        report("macvtap_drops"),
        report("macvtap_drops_counted"),
        report("gso_segment_drops"),
        report("macvtap_drops_unknown"),
        report("rx_dropped_delta"),
    );
    eprintln!("script: {all} drops = {counted} counted + {segments} GSO segments + {unknown} unknown; rx_dropped +{rx} (the test saw +{delta}), {sent} datagrams sent");
    assert_eq!(unknown, 0, "{what}");
    assert_eq!(counted, rx, "{what}");
    // the script's window holds the test's
    assert!(rx >= delta && delta > 0, "{what}");
    assert!(segments > 0 && segments % GSO_SEGMENTS == 0, "{what}");
    assert_eq!(counted + segments, all, "{what}");
    let text: Vec<String> = done
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "text")
        .filter_map(|v| v["text"].as_str().map(String::from))
        .collect();
    eprintln!("{}: {}", done.status, text.join("\n"));
    let equal = format!(
        "macvtap drops {all} ({counted} counted by the device), rx_dropped grew by {rx}: equal"
    );
    let gso = format!("GSO segments the macvtap dropped itself (never in rx_dropped): {segments}");
    for line in [&equal, &gso] {
        assert!(text.contains(line), "no line `{line}` in {text:?}\n{what}");
    }
}
