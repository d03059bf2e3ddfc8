//! `--metrics`: a real Prometheus scrapes vprobe while the test makes macvtap
//! drops, and what it stored equals vprobe's own summary of the same run;
//! `promtool` accepts the exposition; memory stays flat under scrapes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::labs::{MacvtapLab, MACVTAP};
use crate::support::prometheus::{self, get, split_url, Prometheus, PROMTOOL};
use crate::support::util::{self, Session};

const FLOOD_LIMIT: Duration = Duration::from_secs(10);
const HTTP: Duration = Duration::from_secs(5);

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// The summary's total of a count map, over every key.
fn summary_total(summary: &Value, map: &str) -> u64 {
    summary["maps"][map]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no map `{map}` in {summary}"))
        .iter()
        .map(|e| e["value"].as_u64().expect("a count"))
        .sum()
}

/// Waits until Prometheus holds a sample of every series of `selector`
/// scraped after `after` (unix s), and returns the sum of their latest
/// values with the labels of each.
fn latest_after(p: &Prometheus, selector: &str, after: f64) -> (f64, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let series = p.samples(selector, "30s");
        let fresh = !series.is_empty()
            && series
                .iter()
                .all(|(_, v)| v.last().is_some_and(|(t, _)| *t > after));
        if fresh {
            let sum = series.iter().map(|(_, v)| v.last().expect("one").1).sum();
            return (sum, series.into_iter().map(|(l, _)| l).collect());
        }
        assert!(
            Instant::now() < deadline,
            "no sample of {selector} after {after} within 30 s: {series:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn rss_kib(pid: nix::unistd::Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

#[test]
fn prometheus_stores_the_macvtap_drops_of_the_summary() {
    if !util::root_or_skip("metrics::prometheus_stores_the_macvtap_drops_of_the_summary") {
        return;
    }
    assert!(
        std::path::Path::new(prometheus::PROMETHEUS).exists(),
        "{} is missing: apt-get install prometheus (.ci/run installs it)",
        prometheus::PROMETHEUS
    );
    let _k = util::kernel_lock();
    let lab = MacvtapLab::new(16);
    let script = format!(
        r#"let d = probe("macvtap.drop").filter("netns", {ns});
           d.count("macvtap_drops", ["dev", "queue", "reason"]);
           d.lhist("ring_occupancy", "ring_occupancy", 8, ["dev"]);
           metric("ring_occupancy", #{{help: "packets in the ring at a drop"}});"#,
        ns = lab.b.inode()
    );
    let mut s = Session::spawn(&[
        "-e",
        &script,
        "--format",
        "json",
        "--duration",
        "180s",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let start = s.wait_start();
    let url = start["metrics"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics URL in {start}"))
        .to_string();
    let (target, path) = split_url(&url);
    assert_eq!(path, "/metrics");

    let prom = Prometheus::start(&target);
    prom.wait_target_up(Duration::from_secs(30));

    let before = lab.rx_dropped();
    let sent = lab.flood(2000, FLOOD_LIMIT);
    std::thread::sleep(Duration::from_millis(200));
    let delta = lab.rx_dropped() - before;
    let flood_end = now_unix();
    eprintln!("{sent} frames → {MACVTAP} rx_dropped +{delta}");
    assert!(delta > 0, "the lab made no drops");

    // the first scrape that started after the drops ended
    let (stored, labels) = latest_after(&prom, "vprobe_macvtap_drops_total", flood_end + 0.1);
    let (stored_hist, _) = latest_after(&prom, "vprobe_ring_occupancy_count", flood_end + 0.1);
    eprintln!("prometheus: vprobe_macvtap_drops_total = {stored} {labels:?}");
    for l in &labels {
        assert_eq!(l["job"], "vprobe", "{l}");
        assert_eq!(l["dev"], MACVTAP, "{l}");
        assert_eq!(l["reason"], "FULL_RING", "{l}");
    }
    let t = prom.api("targets", None);
    assert_eq!(
        t["activeTargets"][0]["lastError"], "",
        "scrapes failed: {t}"
    );

    // promtool lints the text format; OpenMetrics when asked for it
    let text = get(&target, &path, None, HTTP).expect("GET /metrics");
    assert_eq!(text.status, 200);
    assert!(
        text.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        text.headers
    );
    assert!(
        text.body.contains("# TYPE vprobe_ring_occupancy histogram"),
        "{}",
        text.body
    );
    assert!(
        text.body
            .contains("vprobe_probe_info{probe=\"macvtap.drop\""),
        "{}",
        text.body
    );
    let tmp = util::TempDir::new("exposition");
    let lint = util::output_within(
        std::process::Command::new(PROMTOOL)
            .args(["check", "metrics"])
            .stdin(
                std::fs::File::open(tmp.write("exposition.txt", &text.body)).expect("exposition"),
            ),
        Duration::from_secs(30),
    )
    .0;
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n--- exposition ---\n{}",
        lint.status,
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr),
        text.body
    );
    let om = get(
        &target,
        &path,
        Some("application/openmetrics-text; version=1.0.0"),
        HTTP,
    )
    .expect("GET /metrics (OpenMetrics)");
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text; version=1.0.0")),
        "{:?}",
        om.headers
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(
        om.body.contains("# TYPE vprobe_macvtap_drops counter\n"),
        "{}",
        om.body
    );

    // Memory is flat under scrapes: what one scrape allocates is freed.
    let pid = s.pid();
    for _ in 0..100 {
        get(&target, &path, None, HTTP).expect("scrape");
    }
    let warm = rss_kib(pid);
    for _ in 0..1000 {
        get(&target, &path, None, HTTP).expect("scrape");
    }
    let after = rss_kib(pid);
    eprintln!("vprobe RSS after 100 scrapes {warm} KiB, after 1100 {after} KiB");
    assert!(
        after <= warm + 1024,
        "RSS grew from {warm} KiB to {after} KiB over 1000 scrapes"
    );

    s.signal(Signal::SIGTERM);
    let done = s.finish();
    done.assert_success();
    let summary = done.summary();
    let counted = summary_total(&summary, "macvtap_drops");
    let hist_count: u64 = summary["maps"]["ring_occupancy"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .flat_map(|e| e["buckets"].as_array().expect("buckets").clone())
        .map(|b| b["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(
        counted, delta,
        "vprobe's count != the macvtap's rx_dropped growth"
    );
    assert_eq!(
        stored, counted as f64,
        "Prometheus stored {stored}, vprobe's summary says {counted}"
    );
    assert_eq!(
        stored_hist, hist_count as f64,
        "histogram count in Prometheus"
    );
}

/// A port that is taken is a clear error before anything runs.
#[test]
fn a_taken_metrics_port_is_an_error() {
    if !util::root_or_skip("metrics::a_taken_metrics_port_is_an_error") {
        return;
    }
    let _k = util::kernel_lock();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let r = util::vprobe(
        &[
            "-e",
            r#"probe("skb.drop").count("d");"#,
            "--metrics",
            &addr,
            "-d",
            "5s",
        ],
        Duration::from_secs(30),
    );
    r.assert_no_panic();
    assert!(!r.status.success(), "{}", r.describe());
    assert!(
        r.stderr
            .contains(&format!("cannot serve metrics on {addr}")),
        "{}",
        r.describe()
    );
}
