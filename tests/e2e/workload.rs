//! `vprobe serve` and `vprobe rr`: TCP_RR over a veth between two namespaces
//! the test makes, the JSON and text results, a closed port, and a server
//! ended by SIGTERM while clients are connected (nothing left running).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::netns::{self, Netns};
use crate::support::util::{self, Run, VPROBE};

const QUICK: Duration = Duration::from_secs(30);

/// A running `vprobe serve`, killed on drop if a test fails.
struct Server {
    child: Option<Child>,
    addr: String,
    lines: Option<mpsc::Receiver<String>>,
}

impl Server {
    /// Starts `[prefix…] vprobe serve --bind BIND` and waits (bounded) for
    /// its "listening on ADDR" line.
    fn start(prefix: &[&str], bind: &str) -> Server {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(VPROBE);
                c
            }
            None => Command::new(VPROBE),
        };
        cmd.args(["serve", "--bind", bind])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: String::new(),
            lines: None,
        };
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("no line from vprobe serve: {e}"));
        server.addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        // The rest (the "served …" line) is read after the end.
        server.lines = Some(rx);
        server
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// SIGTERM, then waits (bounded) for the exit; returns its code and the
    /// lines it printed after the first.
    fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.pid();
        signal::kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vprobe serve did not end within 5 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let rx = self.lines.take().expect("reader");
        let lines = rx.iter().collect();
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists"
        );
        (status.code(), lines)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Parses `vprobe rr --format json`'s one line and returns its `tcp_rr` result.
fn rr_result(run: &Run) -> Value {
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected\n{}", run.describe());
    let v: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.describe()));
    assert!(
        lines[0].starts_with(r#"{"type":"summary""#),
        "type first\n{}",
        run.describe()
    );
    v["workloads"]["tcp_rr"].clone()
}

/// Checks the shape and the internal consistency of a result.
fn check_result(r: &Value, streams: u64, what: &str) {
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("`{k}` is not a count: {r:#}\n{what}"))
    };
    assert_eq!(n("streams"), streams, "{what}");
    let total = n("transactions");
    assert!(total > 0, "no transactions\n{what}");
    let per: Vec<u64> = r["transactions_per_stream"]
        .as_array()
        .expect("transactions_per_stream")
        .iter()
        .map(|x| x.as_u64().expect("count"))
        .collect();
    assert_eq!(per.len() as u64, streams, "{what}");
    assert_eq!(per.iter().sum::<u64>(), total, "per-stream counts\n{what}");
    assert!(per.iter().all(|&x| x > 0), "an idle stream\n{what}");
    assert_eq!(
        r["tps_per_stream"].as_array().map(Vec::len),
        Some(streams as usize)
    );
    let tps = r["tps"].as_f64().expect("tps");
    let secs = r["duration_s"].as_f64().expect("duration_s");
    assert!(
        (tps * secs - total as f64).abs() <= total as f64 * 0.01 + 1.0,
        "tps × duration ≠ transactions\n{what}"
    );
    let l = &r["latency_us"];
    let f = |k: &str| {
        l[k].as_f64()
            .unwrap_or_else(|| panic!("latency_us.{k} missing: {l}\n{what}"))
    };
    let order = ["min", "p50", "p90", "p99", "p99_9", "max"].map(f);
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{l}\n{what}");
    assert!(order[0] > 0.0, "{l}");
    assert!(f("min") <= f("mean") && f("mean") <= f("max"), "{l}");
    let thresholds: Vec<(u64, u64)> = r["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .map(|t| (t["at_us"].as_u64().unwrap(), t["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(thresholds.len(), 2, "{what}");
    assert_eq!((thresholds[0].0, thresholds[1].0), (200_000, 400_000));
    assert!(thresholds[1].1 <= thresholds[0].1 && thresholds[0].1 <= total);
    let buckets = r["buckets"].as_array().expect("buckets");
    let mut last_hi = 0;
    let mut in_buckets = 0;
    for b in buckets {
        let (lo, hi, c) = (
            b["lo_us"].as_u64().unwrap(),
            b["hi_us"].as_u64().unwrap(),
            b["count"].as_u64().unwrap(),
        );
        assert!(lo >= last_hi && hi > lo && c > 0, "bucket {b}\n{what}");
        last_hi = hi;
        in_buckets += c;
    }
    assert_eq!(in_buckets, total, "buckets hold every transaction\n{what}");
    assert!(r["errors"].as_array().is_some_and(Vec::is_empty), "{what}");
}

#[test]
fn rr_over_a_veth_between_two_namespaces() {
    if !util::root_or_skip("rr_over_a_veth_between_two_namespaces") {
        return;
    }
    let _lock = util::kernel_lock();
    let (a, b) = (Netns::new(), Netns::new());
    netns::veth(&a, "vwa", &b, "vwb");
    a.ip("addr add 198.51.100.1/24 dev vwa");
    b.ip("addr add 198.51.100.2/24 dev vwb");
    let server = Server::start(&["ip", "netns", "exec", a.name()], "198.51.100.1:0");
    assert!(server.addr.starts_with("198.51.100.1:"), "{}", server.addr);

    let rr = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", b.name(), VPROBE, "rr", &server.addr])
            .args(args);
        let (out, timed_out) = util::output_within(&mut cmd, QUICK);
        let run = Run::from_output(format!("{cmd:?}"), out, timed_out);
        run.assert_no_panic();
        assert_eq!(run.status.code(), Some(0), "{}", run.describe());
        run
    };
    let run = rr(&["-n", "4", "-d", "1s", "-w", "200ms", "-f", "json"]);
    let r = rr_result(&run);
    check_result(&r, 4, &run.describe());
    assert!((r["duration_s"].as_f64().unwrap() - 1.0).abs() < 0.1, "{r}");
    assert_eq!(r["warmup_s"].as_f64(), Some(0.2));
    assert_eq!(r["request_size"].as_u64(), Some(1));
    // over a veth, well under a second per transaction
    assert!(r["tps"].as_f64().unwrap() > 100.0, "{r}");

    // text: the summary and the histogram; sizes and thresholds as asked
    let run = rr(&["-d", "300ms", "-r", "100", "-R", "3000", "-t", "1ms"]);
    let text = &run.stdout;
    for want in [
        "1 stream, 100-byte requests, 3000-byte responses",
        "transactions  ",
        "latency ms    min ",
        "≥ 1 ms ",
        "@latency_ms",
    ] {
        assert!(text.contains(want), "`{want}` missing\n{}", run.describe());
    }
    assert!(!text.contains("≥ 200 ms"), "{}", run.describe());

    let (code, lines) = server.terminate();
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("served 5 connections")),
        "{lines:?}"
    );
}

#[test]
fn rr_against_a_closed_port_says_so() {
    // A loopback port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let run = util::vprobe(&["rr", &addr, "-n", "2", "-d", "1s"], QUICK);
    run.assert_no_panic();
    // the run failed (it could not start)
    assert_eq!(run.status.code(), Some(5), "{}", run.describe());
    assert!(run.stdout.is_empty(), "{}", run.describe());
    for want in [
        "cannot connect to",
        addr.as_str(),
        "refused",
        "vprobe serve",
    ] {
        assert!(run.stderr.contains(want), "`{want}`\n{}", run.describe());
    }
}

#[test]
fn rr_refuses_bad_options() {
    for (args, want) in [
        (&["rr", "127.0.0.1", "-n", "0"][..], "streams must be 1 to"),
        (&["rr", "127.0.0.1:x"][..], "invalid port"),
        (&["rr", "127.0.0.1", "-r", "0"][..], "request size"),
        (
            &["rr", "127.0.0.1", "--cpus", "3-1"][..],
            "invalid CPU list",
        ),
    ] {
        let run = util::vprobe(args, QUICK);
        run.assert_no_panic();
        assert_eq!(run.status.code(), Some(2), "{}", run.describe());
        assert!(run.stderr.contains(want), "`{want}`\n{}", run.describe());
    }
}

/// `vprobe rr --cpus 0` panicked ("Mismatch between definition and access of
/// `cpus`"): clap read the one list back as single CPUs.
#[test]
fn rr_pins_streams_to_the_cpus_given() {
    let server = Server::start(&[], "127.0.0.1:0");
    let mut cmd = Command::new(VPROBE);
    cmd.args(["rr", &server.addr, "-n", "2", "-d", "300ms"])
        .args(["--cpus", "0", "-f", "json"]);
    let (out, timed_out) = util::output_within(&mut cmd, QUICK);
    let run = Run::from_output(format!("{cmd:?}"), out, timed_out);
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(0), "{}", run.describe());
    check_result(&rr_result(&run), 2, &run.describe());
}

/// SIGTERM ends the server at once even with clients mid-run; the clients
/// report the closed connections per stream and exit 1; nothing is left.
#[test]
fn serve_ends_on_sigterm_with_clients_connected() {
    let server = Server::start(&[], "127.0.0.1:0");
    let mut cmd = Command::new(VPROBE);
    cmd.args(["rr", &server.addr, "-n", "3", "-d", "20s", "-f", "json"]);
    let client = std::thread::spawn(move || {
        let (out, timed_out) = util::output_within(&mut cmd, QUICK);
        Run::from_output("vprobe rr".into(), out, timed_out)
    });
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let (code, lines) = server.terminate();
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("served 3 connections")),
        "{lines:?}"
    );
    let run = client.join().expect("client thread");
    run.assert_no_panic();
    assert!(t0.elapsed() < Duration::from_secs(10), "{}", run.describe());
    assert_eq!(run.status.code(), Some(1), "{}", run.describe());
    let r = rr_result(&run);
    let errors = r["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3, "{}", run.describe());
    assert!(
        errors.iter().all(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("closed the connection")),
        "{}",
        run.describe()
    );
    assert!(r["transactions"].as_u64().unwrap() > 0);
}

/// The load crate's API, as a lab uses it: server, client and an external command
/// each entering a namespace given as an fd (no `ip netns exec`).
#[test]
fn workloads_enter_namespaces_by_fd() {
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use vprobe_load::{exec, tcp_rr};

    if !util::root_or_skip("workloads_enter_namespaces_by_fd") {
        return;
    }
    let _lock = util::kernel_lock();
    let (a, b) = (Netns::new(), Netns::new());
    netns::veth(&a, "vwa", &b, "vwb");
    a.ip("addr add 198.51.100.1/24 dev vwa");
    b.ip("addr add 198.51.100.2/24 dev vwb");
    let fd = |ns: &Netns| -> Arc<OwnedFd> {
        let f = std::fs::File::open(ns.path()).expect("open netns");
        Arc::new(OwnedFd::from(f))
    };
    let server = tcp_rr::serve("198.51.100.1:0".parse().unwrap(), Some(fd(&a)))
        .expect("serve in namespace a");
    let o = tcp_rr::RrOptions {
        streams: 2,
        duration: Some(Duration::from_millis(300)),
        ..tcp_rr::RrOptions::default()
    };
    let r = tcp_rr::start(server.local_addr(), o, Some(fd(&b)))
        .expect("rr from namespace b")
        .join();
    assert!(r.transactions > 0 && r.errors.is_empty(), "{r:?}");
    // (198.51.100.1 is reachable only from b: the connections prove the
    // client entered it. Nothing is tried from this test's own namespace,
    // whose routes are the host's.)
    let stats = server.join();
    assert_eq!(stats.connections, 2, "{stats:?}");

    let mut e = exec::ExecOptions::new("cat", ["/proc/net/dev"]);
    e.timeout = Some(Duration::from_secs(10));
    let out = exec::spawn(e, Some(fd(&b)))
        .expect("exec in namespace b")
        .join();
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("vwb:"), "{}", out.stdout);
    assert!(!out.stdout.contains("vwa:"), "{}", out.stdout);
}

/// A free port on 127.0.0.1 (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn script_workloads_are_started_and_stopped_by_triggers() {
    if !util::root_or_skip("workload::script_workloads_are_started_and_stopped_by_triggers") {
        return;
    }
    let _k = util::kernel_lock();
    let dir = util::TempDir::new("trigger-workload");
    let target = format!("127.0.0.1:{}", free_port());
    let script = dir.write(
        "rr.rhai",
        &format!(
            r#"
            tcp_rr(#{{ name: "rr", target: "{target}", serve: true, streams: 2, duration: "20s" }});
            tcp_rr(#{{ name: "second", target: "{target}", duration: "1s", start: false }});
            trigger("rr.transactions > 2000").log("rr busy").stop("rr").start("second").once();
            on_end(|| report("rr_then", workload("rr").transactions));
            "#
        ),
    );
    let started = Instant::now();
    let r = util::vprobe(
        &["run", script.to_str().unwrap(), "-f", "json"],
        Duration::from_secs(30),
    );
    r.assert_no_panic();
    assert_eq!(r.status.code(), Some(0), "{}", r.describe());
    // ended when its workloads did: rr stopped early, then `second` ran its 1 s
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{}",
        r.describe()
    );
    assert!(r.stdout.contains("rr busy"), "{}", r.describe());
    let summary: Value = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("no summary\n{}", r.describe()));
    let rr = &summary["workloads"]["rr"];
    assert!(rr["transactions"].as_u64().unwrap() > 2000, "{summary}");
    assert!(rr["duration_s"].as_f64().unwrap() < 15.0, "{summary}");
    assert_eq!(
        summary["reports"]["rr_then"], rr["transactions"],
        "{summary}"
    );
    let second = &summary["workloads"]["second"];
    assert_eq!(second["kind"], "tcp_rr", "{summary}");
    assert!(second["transactions"].as_u64().unwrap() > 0, "{summary}");
}

#[test]
fn a_script_workload_without_a_target_needs_a_lab() {
    if !util::root_or_skip("workload::a_script_workload_without_a_target_needs_a_lab") {
        return;
    }
    let r = util::vprobe(&["-e", r#"tcp_rr(#{ streams: 2 });"#, "-d", "1s"], QUICK);
    r.assert_no_panic();
    assert_ne!(r.status.code(), Some(0), "{}", r.describe());
    assert!(
        r.stderr.contains("<expr>:1:1") && r.stderr.contains("--lab"),
        "{}",
        r.describe()
    );
}
