//! The generic attach points against the real kernel: `tracepoint:CAT:NAME`
//! counted beside the catalog's `dev.queue` on the same frames, keyed by a
//! string and by a number; `uprobe:` on libc functions this test process
//! calls a known number of times (and how long `usleep(2000)` takes); the
//! exact errors `kprobe:`/`fentry:` give where the kernel lacks them; and
//! `vprobe list --json`.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::netns::{self, Netns};
use crate::support::traffic;
use crate::support::util::{self, Session, TempDir};

const QUICK: Duration = Duration::from_secs(30);
const FRAMES: usize = 300;
const FLOOD_LIMIT: Duration = Duration::from_secs(10);

/// Two namespaces joined by a veth whose A end has a name unique to this
/// test process, so a generic tracepoint (which has no netns field) sees
/// only this test's frames when filtered by that name.
struct Wire {
    a: Netns,
    _b: Netns,
    dev: String,
    frame: Vec<u8>,
}

impl Wire {
    fn new() -> Wire {
        let a = Netns::new();
        let b = Netns::new();
        let dev = format!("vg{}a", std::process::id() % 1_000_000);
        netns::veth(&a, &dev, &b, "vgB");
        let frame = traffic::udp_frame(netns::mac(&b, "vgB"), netns::mac(&a, &dev));
        Wire {
            a,
            _b: b,
            dev,
            frame,
        }
    }

    /// Sends `count` copies of `frame` out of the A end; each goes through
    /// __dev_queue_xmit, so net_dev_queue fires once per frame.
    fn send(&self, frame: &[u8], count: usize) {
        let sent = traffic::flood(&self.a, &self.dev, frame, count, FLOOD_LIMIT);
        assert_eq!(sent, count, "the flood was cut short by its time bound");
    }
}

/// Runs `script` as JSON Lines until `traffic` is done, then ends it with
/// SIGINT and returns the summary.
fn run_around(script: &str, extra: &[&str], traffic: impl FnOnce()) -> Value {
    let mut args = vec!["-e", script, "--format", "json", "--duration", "60s"];
    args.extend_from_slice(extra);
    let mut s = Session::spawn(&args);
    s.wait_start();
    traffic();
    std::thread::sleep(Duration::from_millis(200));
    s.signal(Signal::SIGINT);
    let done = s.finish();
    done.assert_success();
    done.summary()
}

fn mechanism_of(summary: &Value, probe: &str) -> String {
    summary["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == probe))
        .map(|p| util::scalar(&p["mechanism"]))
        .unwrap_or_else(|| panic!("no probe {probe} in {}", summary["probes"]))
}

#[test]
fn tracepoint_net_dev_queue_counts_what_dev_queue_counts() {
    generic_vs_dev_queue(
        "generic::tracepoint_net_dev_queue_counts_what_dev_queue_counts",
        &[],
        "tp_btf/net_dev_queue",
    );
}

// The raw tracepoint is dev.queue's fallback when tp_btf is not there.
#[test]
fn tracepoint_net_dev_queue_counts_what_dev_queue_counts_via_raw_tracepoint() {
    generic_vs_dev_queue(
        "generic::tracepoint_net_dev_queue_counts_what_dev_queue_counts_via_raw_tracepoint",
        &["--disable-mechanism", "tp_btf"],
        "raw_tracepoint/net_dev_queue",
    );
}

fn generic_vs_dev_queue(name: &str, extra: &[&str], dev_queue_mechanism: &str) {
    if !util::root_or_skip(name) {
        return;
    }
    let _k = util::kernel_lock();
    let wire = Wire::new();
    let script = format!(
        r#"probe("tracepoint:net:net_dev_queue").filter("name", "{dev}").count("generic", ["name"]);
probe("dev.queue").filter("dev", "{dev}").filter("netns", {ns}).count("catalog", ["dev"]);"#,
        dev = wire.dev,
        ns = wire.a.inode()
    );
    let summary = run_around(&script, extra, || wire.send(&wire.frame, FRAMES));
    let generic = util::count_where(&summary, "generic", &[("name", &wire.dev)]);
    let catalog = util::count_where(&summary, "catalog", &[("dev", &wire.dev)]);
    eprintln!(
        "{FRAMES} frames out of {}: tracepoint:net:net_dev_queue {generic}, dev.queue {catalog}",
        wire.dev
    );
    assert_eq!(
        mechanism_of(&summary, "tracepoint:net:net_dev_queue"),
        "tracepoint/net/net_dev_queue"
    );
    assert_eq!(mechanism_of(&summary, "dev.queue"), dev_queue_mechanism);
    assert_eq!(generic, catalog, "{summary}");
    assert_eq!(generic, FRAMES as u64, "{summary}");
}

#[test]
fn tracepoint_counts_by_a_string_and_a_numeric_field() {
    if !util::root_or_skip("generic::tracepoint_counts_by_a_string_and_a_numeric_field") {
        return;
    }
    let _k = util::kernel_lock();
    let wire = Wire::new();
    let small = wire.frame.clone();
    let mut big = wire.frame.clone();
    big.resize(400, 0);
    let script = format!(
        r#"let q = probe("tracepoint:net:net_dev_queue").filter("name", "{dev}");
q.count("by_len", ["name", "len"]);
q.filter("len", 300..1000).count("big", ["name"]);
q.hist("sizes", "len");"#,
        dev = wire.dev
    );
    let summary = run_around(&script, &[], || {
        wire.send(&small, 100);
        wire.send(&big, 40);
    });
    let small_len = small.len().to_string();
    let d = wire.dev.as_str();
    assert_eq!(
        util::count_where(&summary, "by_len", &[("name", d), ("len", &small_len)]),
        100,
        "{summary}"
    );
    assert_eq!(
        util::count_where(&summary, "by_len", &[("name", d), ("len", "400")]),
        40,
        "{summary}"
    );
    assert_eq!(util::count_where(&summary, "by_len", &[]), 140, "{summary}");
    assert_eq!(util::count_where(&summary, "big", &[("name", d)]), 40);
    let buckets = &summary["maps"]["sizes"]["entries"][0]["buckets"];
    let in_hist: u64 = buckets
        .as_array()
        .unwrap_or_else(|| panic!("no buckets: {summary}"))
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(in_hist, 140, "{summary}");
    // 400 bytes land in [256, 512)
    assert!(
        buckets
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["low"] == 256 && b["count"] == 40),
        "{summary}"
    );
}

#[test]
fn tracepoint_events_carry_the_decoded_fields() {
    if !util::root_or_skip("generic::tracepoint_events_carry_the_decoded_fields") {
        return;
    }
    let _k = util::kernel_lock();
    let wire = Wire::new();
    let script = format!(
        r#"probe("tracepoint:net:net_dev_queue").filter("name", "{dev}").on_event(|e| emit(e));"#,
        dev = wire.dev
    );
    let mut s = Session::spawn(&["-e", &script, "--format", "json", "--duration", "60s"]);
    s.wait_start();
    wire.send(&wire.frame, 5);
    std::thread::sleep(Duration::from_millis(300));
    s.signal(Signal::SIGINT);
    let done = s.finish();
    done.assert_success();
    let events = done.events();
    assert_eq!(events.len(), 5, "{}", done.describe());
    for e in &events {
        let f = &e["fields"];
        assert_eq!(f["name"], wire.dev.as_str(), "{e}");
        assert_eq!(f["len"], wire.frame.len() as u64, "{e}");
        // a heap pointer: not kernel text, shown in hex
        let skb = util::scalar(&f["skbaddr"]);
        assert!(skb.starts_with("0xffff"), "{e}");
    }
}

#[test]
fn an_unknown_tracepoint_is_a_located_error_with_a_suggestion() {
    if !util::root_or_skip("generic::an_unknown_tracepoint_is_a_located_error_with_a_suggestion") {
        return;
    }
    let dir = TempDir::new("generic");
    let path = dir.write(
        "typo.rhai",
        "// a typo in the event name\nprobe(\"tracepoint:net:net_dev_queu\").count(\"n\");\n",
    );
    let run = util::vprobe(&["check", path.to_str().unwrap()], QUICK);
    run.assert_no_panic();
    // a script error
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("typo.rhai:2:")
            && run.stderr.contains("no tracepoint `net:net_dev_queu`")
            && run
                .stderr
                .contains("did you mean `tracepoint:net:net_dev_queue`?"),
        "{}",
        run.describe()
    );
}

/// The count and latency histogram of a uprobe on libc's `usleep`, called
/// `CALLS` times by this very thread, and the count of `getpid` (no latency:
/// only the entry program is attached).
#[test]
fn uprobe_counts_calls_and_times_them() {
    if !util::root_or_skip("generic::uprobe_counts_calls_and_times_them") {
        return;
    }
    const CALLS: u64 = 25;
    const SLEEP_US: u64 = 2000;
    let _k = util::kernel_lock();
    // this thread only: the harness's other threads may call getpid too
    let tid = nix::unistd::gettid().as_raw();
    let script = format!(
        r#"let u = probe("uprobe:libc:usleep").filter("tid", {tid});
u.count("calls", ["comm"]);
u.lhist("latency", "latency", 100000);
probe("uprobe:libc:getpid").filter("tid", {tid}).count("getpid");"#
    );
    let summary = run_around(&script, &[], || {
        for _ in 0..CALLS {
            // SAFETY: plain libc calls
            unsafe {
                libc::usleep(SLEEP_US as libc::useconds_t);
                libc::getpid();
            }
        }
    });
    assert_eq!(
        mechanism_of(&summary, "uprobe:libc:usleep"),
        "uprobe/libc:usleep"
    );
    assert_eq!(
        util::count_where(&summary, "calls", &[]),
        CALLS,
        "{summary}"
    );
    assert_eq!(
        util::count_where(&summary, "getpid", &[]),
        CALLS,
        "{summary}"
    );
    let buckets = summary["maps"]["latency"]["entries"][0]["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no latency buckets: {summary}"))
        .clone();
    let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, CALLS, "{summary}");
    // usleep(2000) never returns early; on an idle machine it takes ~2.1 ms
    let low = |b: &Value| b["low"].as_u64().unwrap();
    assert!(
        buckets.iter().all(|b| low(b) >= SLEEP_US * 1000),
        "a usleep({SLEEP_US}) measured under {SLEEP_US} µs: {buckets:?}"
    );
    let quick: u64 = buckets
        .iter()
        .filter(|b| low(b) < 4 * SLEEP_US * 1000)
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    eprintln!("usleep({SLEEP_US}) latency buckets (100 µs wide): {buckets:?}");
    assert!(
        quick * 2 >= CALLS,
        "most usleep({SLEEP_US}) calls took over 4x as long: {buckets:?}"
    );
}

/// Runs a one-liner on `probe` and returns its stderr, checking it failed
/// with exit status 4 (this host cannot) and without a panic.
fn fails_with(probe: &str) -> String {
    let script = format!(r#"probe("{probe}").count("n");"#);
    let run = util::vprobe(&["-e", &script, "--duration", "2s"], QUICK);
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(4), "{}", run.describe());
    run.stderr
}

fn kprobes_missing() -> bool {
    !Path::new("/sys/bus/event_source/devices/kprobe/type").exists()
}

fn list_json(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    all.push("--json");
    let run = util::vprobe(&all, QUICK);
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    match serde_json::from_str(&run.stdout) {
        Ok(Value::Array(v)) => v,
        other => panic!("list --json is not an array: {other:?}\n{}", run.describe()),
    }
}

fn entry<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in list --json: {list:?}"))
}

#[test]
fn kprobe_says_why_it_is_not_available() {
    if !util::root_or_skip("generic::kprobe_says_why_it_is_not_available") {
        return;
    }
    let _k = util::kernel_lock();
    if !kprobes_missing() {
        eprintln!("kprobes exist here: the honest-error case does not apply");
        return;
    }
    let e = fails_with("kprobe:tap_handle_frame");
    let base = "<expr>:1:1: `kprobe:tap_handle_frame` is not available on this kernel: kprobes are not built in (no /sys/bus/event_source/devices/kprobe)";
    // once the catalog has macvtap.drop, the error points at it
    let has_macvtap_drop = list_json(&[]).iter().any(|p| p["name"] == "macvtap.drop");
    if has_macvtap_drop {
        assert!(
            e.contains(&format!(
                "{base}; use `macvtap.drop` instead, which works here ("
            )),
            "{e}"
        );
    } else {
        assert_eq!(e.trim(), format!("vprobe: {base}"));
    }
    // a function the catalog covers: the error names the attach point that works
    let e = fails_with("kprobe:tcp_retransmit_skb");
    assert_eq!(
        e.trim(),
        "vprobe: <expr>:1:1: `kprobe:tcp_retransmit_skb` is not available on this kernel: kprobes are not built in (no /sys/bus/event_source/devices/kprobe); use `tcp.retransmit` instead, which works here (tp_btf/tcp_retransmit_skb+tcp_retransmit_synack)"
    );
}

#[test]
fn fentry_says_why_it_is_not_available() {
    if !util::root_or_skip("generic::fentry_says_why_it_is_not_available") {
        return;
    }
    let _k = util::kernel_lock();
    let list = list_json(&[]);
    let fentry = entry(&list, "fentry");
    if fentry["available"] == true {
        eprintln!("fentry works here: the honest-error case does not apply");
        return;
    }
    let reason = util::scalar(&fentry["reason"]);
    let e = fails_with("fentry:tap_handle_frame");
    assert!(
        e.contains(&format!(
            "<expr>:1:1: `fentry:tap_handle_frame` is not available on this kernel: {reason}"
        )),
        "{e}"
    );
    if reason.contains("EPERM") {
        assert!(
            reason.starts_with("this kernel refuses fentry/fexit programs (BPF_PROG_LOAD: EPERM with an empty verifier log): BPF trampolines are not permitted here; "),
            "{reason}"
        );
    }
}

#[test]
fn a_missing_uprobe_symbol_cannot_attach() {
    if !util::root_or_skip("generic::a_missing_uprobe_symbol_cannot_attach") {
        return;
    }
    let _k = util::kernel_lock();
    let e = fails_with("uprobe:libc:no_such_symbol_vp");
    assert_eq!(
        e.trim(),
        "vprobe: <expr>:1:1: cannot attach `uprobe:libc:no_such_symbol_vp`: no symbol `no_such_symbol_vp` in libc (nor in its debug file)"
    );
}

#[test]
fn list_json_says_what_works_and_why_not() {
    if !util::root_or_skip("generic::list_json_says_what_works_and_why_not") {
        return;
    }
    let _k = util::kernel_lock();
    let list = list_json(&[]);
    for e in &list {
        for key in [
            "name",
            "subsystem",
            "about",
            "fields",
            "available",
            "mechanisms",
            "kernel",
        ] {
            assert!(!e[key].is_null(), "`{key}` missing in {e}");
        }
        // the chosen mechanism when available, the reason when not
        assert_eq!(e["available"] == true, e["mechanism"].is_string(), "{e}");
        assert_eq!(e["available"] == false, e["reason"].is_string(), "{e}");
        for f in e["fields"].as_array().unwrap() {
            for key in ["name", "kind", "filter", "key", "about"] {
                assert!(!f[key].is_null(), "field `{key}` missing in {f}");
            }
        }
        for m in e["mechanisms"].as_array().unwrap() {
            assert!(m["available"].is_boolean() && m["needs"].is_string(), "{m}");
        }
    }
    let skb = entry(&list, "skb.drop");
    assert_eq!(skb["available"], true, "{skb}");
    assert_eq!(skb["mechanism"], "tp_btf/kfree_skb", "{skb}");
    for g in ["tracepoint", "kprobe", "fentry", "uprobe"] {
        let e = entry(&list, g);
        assert_eq!(e["subsystem"], "generic", "{e}");
        assert!(
            util::scalar(&e["usage"]).starts_with(&format!("{g}:")),
            "{e}"
        );
    }
    assert_eq!(entry(&list, "tracepoint")["available"], true);
    assert_eq!(entry(&list, "uprobe")["available"], true);
    let uprobe_fields: Vec<String> = entry(&list, "uprobe")["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| util::scalar(&f["name"]))
        .collect();
    assert_eq!(uprobe_fields, ["pid", "tid", "latency", "comm"]);
    if kprobes_missing() {
        let k = entry(&list, "kprobe");
        assert_eq!(k["available"], false, "{k}");
        assert_eq!(
            k["reason"],
            "kprobes are not built in (no /sys/bus/event_source/devices/kprobe)"
        );
    }
    // a generic name as the pattern: that tracepoint, with its format's fields
    let tp = list_json(&["tracepoint:net:net_dev_queue"]);
    assert_eq!(tp.len(), 1, "{tp:?}");
    assert_eq!(tp[0]["name"], "tracepoint:net:net_dev_queue");
    assert_eq!(tp[0]["available"], true, "{:?}", tp[0]);
    let kinds: Vec<(String, String)> = tp[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (util::scalar(&f["name"]), util::scalar(&f["kind"])))
        .collect();
    for want in [("skbaddr", "kernel_addr"), ("len", "uint"), ("name", "str")] {
        assert!(
            kinds.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {kinds:?}"
        );
    }
}

// Regression: as a non-root user, doctor said tracefs was "not mounted" when
// it was mounted but readable by root only.
#[test]
fn doctor_as_nobody_tells_unreadable_tracefs_from_unmounted() {
    if !util::root_or_skip("generic::doctor_as_nobody_tells_unreadable_tracefs_from_unmounted") {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounted = mounts.lines().any(|l| {
        l.split_once(" - ")
            .is_some_and(|(_, t)| t.starts_with("tracefs "))
    });
    if !mounted {
        eprintln!("tracefs is not mounted here: nothing to tell apart");
        return;
    }
    let dir = TempDir::new("nobody-doctor");
    let bin = dir.path().join("vprobe");
    std::fs::copy(util::VPROBE, &bin).expect("copy vprobe");
    let (out, timed_out) = util::output_within(
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&bin)
            .arg("doctor")
            .current_dir(dir.path()),
        QUICK,
    );
    let run = util::Run::from_output("setpriv nobody vprobe doctor".into(), out, timed_out);
    run.assert_no_panic();
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("tracefs"))
        .unwrap_or_else(|| panic!("no tracefs line\n{}", run.describe()));
    // nobody can read it when tracefs is world-readable; either way it is mounted
    assert!(!line.contains("not mounted"), "{}", run.describe());
    let readable = std::fs::metadata("/sys/kernel/tracing")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o005 == 0o005)
        .unwrap_or(false);
    if !readable {
        assert!(line.contains("unreadable"), "{}", run.describe());
    }
}
