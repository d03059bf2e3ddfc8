//! JSON Lines: every line type vprobe writes, from a real run, against its
//! schema in docs/schema/ (every test's JSON output is checked too, by
//! `support::schema::check_lines`); and the schemas themselves refuse the
//! shapes they do not describe.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::support::netns::Netns;
use crate::support::schema;
use crate::support::util::{self, Session, TempDir};

/// One run that writes every line type: start, print (count, hist, lhist,
/// delta), text, event, error, summary.
#[test]
fn every_line_type_of_a_run_matches_its_schema() {
    if !util::root_or_skip("json::every_line_type_of_a_run_matches_its_schema") {
        return;
    }
    let _k = util::kernel_lock();
    let ns = Netns::new();
    ns.ip("link set lo up");
    let dir = TempDir::new("json");
    let script = dir.write(
        "shapes.rhai",
        &format!(
            r#"//! name: json_shapes
//! version: 0.3.0
let x = probe("dev.xmit").filter("netns", {ns}).filter("dev", "lo");
x.count("sizes", ["dev", "len"]);
x.hist("log2", "len");
x.lhist("linear", "len", 100, ["dev"]);
let n = 0;
x.on_event(|e| {{ n += 1; if n <= 2 {{ emit(e); }} if n == 3 {{ let boom = 1 / 0; }} }});
every("300ms", || {{ print_delta("sizes"); print("tick"); }});
on_end(|| {{ print("log2"); print("linear"); report("seen", n); }});
"#,
            ns = ns.inode()
        ),
    );
    let mut s = Session::spawn(&[
        "run",
        script.to_str().expect("utf-8 path"),
        "--format",
        "json",
        "--duration",
        "60s",
    ]);
    s.wait_start();
    ns.enter(|| {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        for n in [10usize, 100, 150, 300, 1000] {
            sock.send_to(&vec![0u8; n], "127.0.0.1:9").expect("send");
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    s.signal(Signal::SIGTERM);
    let done = s.finish();
    // the callback failed on purpose (an `error` line): status 3, script error
    assert!(!done.stderr.contains("panicked"), "{}", done.describe());
    assert_eq!(done.status.code(), Some(3), "{}", done.describe());
    // finish() checked every line against its schema; now that each type was there
    let lines: Vec<Value> = done
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: BTreeSet<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    for t in ["start", "print", "text", "event", "error", "summary"] {
        assert!(types.contains(t), "no `{t}` line\n{}", done.describe());
    }
    let kinds: BTreeSet<&str> = lines
        .iter()
        .filter(|l| l["type"] == "print")
        .filter_map(|l| l["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["count", "hist", "lhist"].into(),
        "{}",
        done.describe()
    );
    for l in &lines {
        assert!(l["time"].is_string(), "no time: {l}");
    }
    let event = lines.iter().find(|l| l["type"] == "event").expect("event");
    assert!(event["ts_ns"].as_u64().is_some_and(|t| t > 0), "{event}");
    assert!(event["cpu"].is_u64(), "{event}");
    assert_eq!(event["fields"]["dev"], "lo", "{event}");
    let summary = done.summary();
    for (k, v) in [
        ("schema", json!(2)),
        ("script_name", json!("json_shapes")),
        ("script_version", json!("0.3.0")),
    ] {
        assert_eq!(summary[k], v, "{k} in {summary}");
    }
    assert!(summary["host"].as_str().is_some_and(|h| !h.is_empty()));
    let linear = &summary["maps"]["linear"];
    assert_eq!(linear["step"], 100, "{linear}");
    let sum = linear["entries"][0]["sum"].as_u64().expect("a sum");
    assert!(sum >= 10 + 100 + 150 + 300 + 1000, "{linear}");
}

/// A schema that accepted anything would make the check above useless.
#[test]
fn schemas_refuse_shapes_they_do_not_describe() {
    let t = "2024-05-01T12:00:00.000250Z";
    let count = json!({"type": "print", "time": t, "name": "d", "delta": false, "kind": "count",
                       "keys": ["dev"], "entries": [{"key": {"dev": "mvt0"}, "value": 3}]});
    assert_eq!(schema::problems(&count), None);
    let mut bad = Vec::new();
    // version 1's text print
    bad.push(json!({"type": "print", "time": t, "text": "hello"}));
    // a field the schema does not know
    let mut extra = count.clone();
    extra["colour"] = json!("red");
    bad.push(extra);
    // no time
    let mut untimed = count.clone();
    untimed.as_object_mut().expect("object").remove("time");
    bad.push(untimed);
    // a linear histogram without its step
    bad.push(json!({"type": "print", "time": t, "name": "l", "delta": false, "kind": "lhist",
                    "keys": [], "field": "len",
                    "entries": [{"key": {}, "buckets": [{"low": 0, "high": 8, "count": 1}], "sum": 3}]}));
    // a histogram entry without its sum
    bad.push(
        json!({"type": "print", "time": t, "name": "h", "delta": false, "kind": "hist",
                    "keys": [], "field": "len",
                    "entries": [{"key": {}, "buckets": [{"low": 0, "high": 1, "count": 1}]}]}),
    );
    // a type nobody documented
    bad.push(json!({"type": "gossip", "time": t}));
    // a summary of the old schema
    bad.push(
        json!({"type": "summary", "time": t, "schema": 1, "host": "h", "kernel": "k",
                    "duration_s": 1.0, "maps": {}, "probes": [], "monotonic_start_ns": 0,
                    "lost": {"events": 0, "map_full": 0, "callback_errors": 0}}),
    );
    for b in &bad {
        assert!(schema::problems(b).is_some(), "accepted: {b}");
    }
}

/// Definitions two schemas both carry (an aggregation in `print` and in the
/// summary's `maps`, a probe in `start` and `summary`) are the same.
#[test]
fn shared_schema_definitions_agree() {
    let docs = schema::documents();
    assert!(docs.len() >= 6, "{:?}", docs.keys());
    let mut seen: Vec<(String, String, Value)> = Vec::new();
    for (kind, doc) in &docs {
        assert_eq!(doc["properties"]["type"]["const"], json!(kind), "{kind}");
        let Some(defs) = doc["$defs"].as_object() else {
            continue;
        };
        for (name, def) in defs {
            if let Some((other, _, d)) = seen.iter().find(|(_, n, _)| n == name) {
                assert_eq!(d, def, "$defs/{name} differs in {other} and {kind}");
            } else {
                seen.push((kind.clone(), name.clone(), def.clone()));
            }
        }
    }
}
