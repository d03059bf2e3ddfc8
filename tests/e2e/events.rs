//! `on_event` records from the real kernel: a ring record carries only the
//! fields its callback reads (all of its attach point's when the callback
//! hands the event on), packed, and what a callback sees of them is what the
//! program read (the same values a count keys on).

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::netns::Netns;
use crate::support::traffic;
use crate::support::util::{self, Session};

/// Every field of `skb.drop`: numbers, both addresses and the device name.
const DROP_FIELDS: [&str; 16] = [
    "dev",
    "ifindex",
    "netns",
    "reason",
    "location",
    "protocol",
    "len",
    "layer",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "seq",
    "ack",
    "tcp_flags",
    "tcp_len",
];

/// Runs `script` (JSON) while 200 UDP datagrams are dropped in `ns` for want
/// of a socket; returns the run, its lines and how many were sent.
fn run_during_drops(script: &str, ns: &Netns) -> (util::Finished, Vec<Value>, u64) {
    let mut s = Session::spawn(&["-e", script, "--format", "json", "--duration", "60s"]);
    s.wait_start();
    let sent = traffic::udp_drops(ns, 200, Duration::from_millis(500))
        .join()
        .expect("the sender");
    std::thread::sleep(Duration::from_millis(400));
    s.signal(Signal::SIGINT);
    let done = s.finish();
    done.assert_success();
    let lines: Vec<Value> = done
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (done, lines, sent)
}

#[test]
fn events_carry_the_values_a_count_keys_on() {
    if !util::root_or_skip("events::events_carry_the_values_a_count_keys_on") {
        return;
    }
    let _k = util::kernel_lock();
    let ns = Netns::new();
    ns.ip("link set lo up");
    let keys = DROP_FIELDS
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        r#"let p = probe("skb.drop").filter("netns", {ino}).filter("reason", "NO_SOCKET");
p.count("keys", [{keys}]);
p.on_event(|e| emit(e));"#,
        ino = ns.inode()
    );
    let (done, lines, sent) = run_during_drops(&script, &ns);
    // each event's fields, as the key of the count of the same drops
    let mut from_events: BTreeMap<String, u64> = BTreeMap::new();
    for e in lines.iter().filter(|l| l["type"] == "event") {
        let f = &e["fields"];
        assert_eq!(f["dev"], "lo", "{e}");
        assert_eq!(f["saddr"], "127.0.0.1", "{e}");
        assert_eq!(f["daddr"], "127.0.0.1", "{e}");
        assert_eq!(f["dport"], 9, "{e}");
        assert_eq!(f["netns"], ns.inode(), "{e}");
        let key: BTreeMap<&str, &Value> = DROP_FIELDS.iter().map(|k| (*k, &f[*k])).collect();
        *from_events
            .entry(serde_json::to_string(&key).unwrap())
            .or_default() += 1;
    }
    let summary = done.summary();
    let mut from_count: BTreeMap<String, u64> = BTreeMap::new();
    for entry in summary["maps"]["keys"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no count entries: {summary}"))
    {
        let key: BTreeMap<&str, &Value> = DROP_FIELDS
            .iter()
            .map(|k| (*k, &entry["key"][*k]))
            .collect();
        *from_count
            .entry(serde_json::to_string(&key).unwrap())
            .or_default() += entry["value"].as_u64().unwrap();
    }
    let events: u64 = from_events.values().sum();
    assert_eq!(
        events,
        sent,
        "every drop an event; lost {:?}",
        util::losses(&summary)
    );
    assert_eq!(from_events, from_count, "{}", done.describe());
}

/// A callback that reads three fields gets those three, as the kernel read
/// them, from records that carry nothing else; the start line says which.
#[test]
fn a_callback_gets_the_fields_it_reads_from_records_of_only_those() {
    if !util::root_or_skip("events::a_callback_gets_the_fields_it_reads_from_records_of_only_those")
    {
        return;
    }
    let _k = util::kernel_lock();
    let ns = Netns::new();
    ns.ip("link set lo up");
    let script = format!(
        r#"let p = probe("skb.drop").filter("netns", {ino}).filter("reason", "NO_SOCKET");
p.count("keys", ["dev", "dport", "len"]);
p.on_event(|e| print(`${{e.dev}} ${{e.dport}} ${{e["len"]}}`));"#,
        ino = ns.inode()
    );
    let (done, lines, sent) = run_during_drops(&script, &ns);
    let start = lines
        .iter()
        .find(|l| l["type"] == "start")
        .expect("a start line");
    let probes = start["probes"].as_array().expect("probes");
    assert_eq!(probes[0]["carries"], Value::Null, "a count: {start}");
    assert_eq!(
        probes[1]["carries"],
        serde_json::json!(["dev", "dport", "len"]),
        "{start}"
    );
    let mut from_events: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["type"] == "text") {
        *from_events.entry(util::scalar(&l["text"])).or_default() += 1;
    }
    let summary = done.summary();
    let mut from_count: BTreeMap<String, u64> = BTreeMap::new();
    for e in summary["maps"]["keys"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no count entries: {summary}"))
    {
        let k = &e["key"];
        let text = format!("{} {} {}", util::scalar(&k["dev"]), k["dport"], k["len"]);
        *from_count.entry(text).or_default() += e["value"].as_u64().unwrap();
    }
    assert_eq!(
        from_events.values().sum::<u64>(),
        sent,
        "{}",
        done.describe()
    );
    assert_eq!(from_events, from_count, "{}", done.describe());
    assert!(
        from_events.keys().all(|k| k.starts_with("lo 9 ")),
        "{from_events:?}"
    );
}
