//! A fuzz harness that runs in CI for a bounded time (cargo-fuzz needs a
//! nightly toolchain): random and recombined scripts go through what
//! `vprobe check` does (compile, plan) and then have their callbacks run;
//! random ring-buffer records go through decoding and the `on_event`
//! conversion of every catalog attach point. Nothing may panic or hang, and
//! every script error must be located inside the script.
//!
//! Each property runs `PROPTEST_CASES` cases (2000 by default, a few seconds; raise it for a
//! longer run, e.g. `PROPTEST_CASES=20000 cargo test -p vprobe-engine --test fuzz`).
//! A failure prints the smallest input that still fails.

use std::rc::Rc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vprobe_engine::events::decode;
use vprobe_engine::script::{Options, Script};
use vprobe_engine::symbols::Symbols;
use vprobe_probes::abi::{event_bytes, Event, Packet, EVENT_HEAD, EVENT_PACKET};
use vprobe_probes::CATALOG;

fn symbols() -> Rc<Symbols> {
    Rc::new(Symbols::from_parts(
        None,
        vec![(2, "NOT_SPECIFIED".into()), (80, "FULL_RING".into())],
    ))
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    Config {
        cases,
        // a shrunk failure is printed; nothing is written next to the sources
        failure_persistence: None,
        ..Config::default()
    }
}

/// Pieces of scripts, right and wrong: API calls with good and bad
/// arguments, control flow that ends and that does not, and the characters
/// parsers trip over.
const PIECES: &[&str] = &[
    r#"probe("skb.drop")"#,
    r#"probe("skb.dorp")"#,
    r#"probe("macvtap.drop")"#,
    r#"probe("tracepoint:net:net_dev_queue")"#,
    r#"probe("kprobe:tcp_sendmsg")"#,
    r#".filter("dev", "mvt*")"#,
    r#".filter("reason", "FULL_RING")"#,
    r#".filter("len", 100..200)"#,
    r#".filter("nope", 1)"#,
    r#".count("drops", ["dev", "reason"])"#,
    r#".count("", [])"#,
    r#".hist("sizes", "len")"#,
    r#".lhist("l", "len", 0)"#,
    r#".on_event(|e| print(e.dev))"#,
    r#".on_event(|| 1)"#,
    r#"every("1s", || print("drops"))"#,
    r#"every("0s", || 1)"#,
    r#"on_end(|| { print_delta("drops"); report("k", lost()); })"#,
    r#"trigger("drops > 0").exit(3)"#,
    r#"trigger("rate(x) >> 1")"#,
    r#"tcp_rr(#{streams: 0})"#,
    r#"exec(#{cmd: ["true"]})"#,
    r#"total("drops")"#,
    r#"entries("drops")"#,
    r#"param("dev", "x")"#,
    r#"let x = 1;"#,
    r#"let s = "a"; loop { s += s; }"#,
    r#"while true {}"#,
    r#"fn f(n) { f(n + 1) } f(0);"#,
    r#"exit(2);"#,
    r#"import "nowhere" as n;"#,
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ";",
    ",",
    ".",
    "|",
    "||",
    "=",
    "==",
    "+",
    "\"",
    "`",
    "${",
    "'",
    "#{",
    "//",
    "/*",
    "\n",
    "\t",
    "\u{1b}[2J",
    "\u{0}",
    "é",
    "𝕏",
    "0",
    "-1",
    "9223372036854775807",
    "1e999",
    "0x",
    "..",
    "..=",
];

fn scripts() -> impl Strategy<Value = String> {
    prop_oneof![
        // recombined pieces
        prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|v| v.concat()),
        prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|v| v.join(" ")),
        // anything at all
        ".{0,300}",
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Compiles and plans `text` as `vprobe check` does, then runs its timers
/// and end callbacks once each under a short deadline.
fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.lines().count() + 1;
    let located = |e: &vprobe_engine::script::ScriptError| -> Result<(), TestCaseError> {
        // Display must work, and point into this script
        let _ = e.to_string();
        prop_assert_eq!(e.origin.source.as_str(), "fuzz.rhai");
        prop_assert!(e.origin.line <= lines, "{} past line {}", e, lines);
        Ok(())
    };
    let options = Options {
        allow_exec: true,
        ..Options::default()
    };
    let mut script = match Script::compile("fuzz.rhai", text, symbols(), options) {
        Ok(s) => s,
        Err(e) => return located(&e),
    };
    let plan = match script.plan() {
        Ok(p) => p,
        Err(e) => return located(&e),
    };
    for cb in plan.timers.iter().map(|t| t.callback).chain(plan.on_end) {
        script.set_deadline(Some(Instant::now() + Duration::from_millis(20)));
        if let Err(e) = script.call(cb) {
            located(&e)?;
        }
        let _ = script.take_actions();
    }
    Ok(())
}

#[test]
fn script_checking_never_panics_and_locates_every_error() {
    let mut runner = TestRunner::new(config());
    let result = runner.run(&scripts(), |text| check(&text));
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn event_records_decode_and_convert_for_every_attach_point() {
    // one script per attach point, whose callback touches every field
    // RefCell: the runner takes a Fn; a script's callbacks need it mutable
    let scripts: Vec<_> = CATALOG
        .iter()
        .map(|p| {
            let text = format!(
                r#"probe("{}").on_event(|e| {{ let m = e.to_map(); let s = `${{m}} ${{e.probe}} ${{e.ts_ns}}`; for k in m.keys() {{ s += `${{m[k]}}`; }} }});"#,
                p.name
            );
            let mut s = Script::compile("fuzz.rhai", &text, symbols(), Options::default())
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let plan = s.plan().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let vprobe_engine::plan::Consumer::Events { callback, .. } = plan.requests[0].consumer
            else {
                panic!("{}: not an events consumer", p.name)
            };
            (p, std::cell::RefCell::new(s), callback)
        })
        .collect();
    let size = std::mem::size_of::<Event>();
    let records = prop::collection::vec(any::<u8>(), 0..size * 2);
    let mut runner = TestRunner::new(config());
    let result = runner.run(&records, |bytes| {
        let rec = decode(&bytes);
        // the header, the fields it names, and with its flag a capture's packet header
        let needed = if bytes.len() < EVENT_HEAD {
            EVENT_HEAD
        } else {
            let at = std::mem::offset_of!(Event, flags);
            let flags = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
            event_bytes(flags)
                + if flags & EVENT_PACKET != 0 {
                    std::mem::size_of::<Packet>()
                } else {
                    0
                }
        };
        prop_assert_eq!(rec.is_some(), bytes.len() >= needed);
        let Some(rec) = rec else { return Ok(()) };
        for (probe, script, callback) in &scripts {
            let r = script.borrow_mut().call_event(*callback, probe, &rec.event);
            prop_assert!(r.is_ok(), "{}: {:?}", probe.name, r);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
