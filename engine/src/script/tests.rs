use std::rc::Rc;
use std::time::Duration;

use vprobe_probes::abi::Event;

use super::*;
use crate::output::Emitted;
use crate::plan::{AggName, CallbackId, Carried, Consumer, FilterValue, HistKind};
use crate::value::Value;

fn symbols() -> Rc<Symbols> {
    Rc::new(Symbols::from_parts(
        None,
        vec![(2, "NOT_SPECIFIED".into()), (80, "FULL_RING".into())],
    ))
}

fn compile(text: &str) -> Script {
    Script::compile("t.rhai", text, symbols(), Options::default()).unwrap()
}

fn with_params(text: &str, params: &[(&str, &str)]) -> Script {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Script::compile(
        "t.rhai",
        text,
        symbols(),
        Options {
            params,
            ..Options::default()
        },
    )
    .unwrap()
}

fn plan(text: &str) -> Plan {
    compile(text).plan().unwrap()
}

fn plan_err(text: &str) -> ScriptError {
    compile(text).plan().unwrap_err()
}

fn at(e: &ScriptError) -> (usize, usize) {
    (e.origin.line, e.origin.col)
}

fn key_names(c: &Consumer) -> Vec<&'static str> {
    match c {
        Consumer::Count { keys, .. } | Consumer::Hist { keys, .. } => {
            keys.iter().map(|k| k.name).collect()
        }
        Consumer::Events { .. } | Consumer::Capture(_) => vec![],
    }
}

#[test]
fn the_readme_one_liner_plans_one_filtered_count() {
    let p = plan(
        r#"probe("skb.drop").filter("reason", "FULL_RING").filter("dev", "mvt0").count("drops", ["dev", "reason"]);"#,
    );
    assert_eq!(p.requests.len(), 1);
    let r = &p.requests[0];
    assert_eq!(r.probe.name, "skb.drop");
    let filters: Vec<_> = r
        .filters
        .iter()
        .map(|f| (f.field.name, f.values.clone()))
        .collect();
    assert_eq!(
        filters,
        vec![
            ("reason", vec![FilterValue::Str("FULL_RING".into())]),
            ("dev", vec![FilterValue::Str("mvt0".into())]),
        ]
    );
    assert!(matches!(&r.consumer, Consumer::Count { name, .. } if name == "drops"));
    assert_eq!(key_names(&r.consumer), ["dev", "reason"]);
    assert_eq!(
        (r.origin.source.as_str(), r.origin.line, r.origin.col),
        ("t.rhai", 1, 1)
    );
    assert!(p.timers.is_empty() && p.on_end.is_empty());
}

#[test]
fn handles_are_immutable_builders() {
    let p = plan(
        r#"let base = probe("dev.xmit").filter("dev", "veth*");
        base.filter("len", 64..1500).hist("sizes", "len", ["dev"]);
        base.lhist("lin", "len", 100);
        base.count("all");
        probe("skb.drop").filter("len", [60, 64..=128]).on_event(|e| print(e.dev));"#,
    );
    let filters = |i: usize| {
        p.requests[i]
            .filters
            .iter()
            .map(|f| f.field.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(filters(0), ["dev", "len"]);
    assert_eq!(
        p.requests[0].filters[1].values,
        [FilterValue::Range(64, 1499)]
    );
    assert!(matches!(
        p.requests[0].consumer,
        Consumer::Hist {
            kind: HistKind::Log2,
            ..
        }
    ));
    assert_eq!(filters(1), ["dev"]);
    assert!(matches!(
        p.requests[1].consumer,
        Consumer::Hist {
            kind: HistKind::Linear { step: 100 },
            ..
        }
    ));
    assert!(matches!(&p.requests[2].consumer, Consumer::Count { keys, .. } if keys.is_empty()));
    assert_eq!(
        p.requests[3].filters[0].values,
        [FilterValue::Int(60), FilterValue::Range(64, 128)]
    );
    assert!(matches!(
        p.requests[3].consumer,
        Consumer::Events {
            callback: CallbackId(0),
            ..
        }
    ));
}

#[test]
fn syntax_errors_are_located() {
    let e = Script::compile(
        "x.rhai",
        "let drops = 1;\nlet x = ;\n",
        symbols(),
        Options::default(),
    )
    .unwrap_err();
    assert_eq!((e.origin.source.as_str(), e.origin.line), ("x.rhai", 2));
    assert!(e.origin.col > 0);
    assert!(e.message.starts_with("syntax error: "), "{e}");
    assert!(e.to_string().starts_with("x.rhai:2:"), "{e}");
}

#[test]
fn unknown_probe_suggests_the_closest_name() {
    let e = plan_err("// probes\n  probe(\"skb.dorp\").count(\"drops\", [\"reason\"]);");
    assert_eq!(
        e.message,
        "unknown probe `skb.dorp`; did you mean `skb.drop`?"
    );
    assert_eq!(at(&e), (2, 3));
    let e = plan_err(r#"probe("nothing.like.it");"#);
    assert!(e.message.contains("the probes are `skb.drop`"), "{e}");
}

#[test]
fn unknown_fields_and_keys_are_located() {
    let e = plan_err("probe(\"tcp.retransmit\")\n    .count(\"retx\", [\"sadr\"]);");
    assert_eq!(
        e.message,
        "probe `tcp.retransmit` has no field `sadr`; did you mean `saddr`?"
    );
    assert_eq!(e.origin.line, 2);
    let e = plan_err(r#"probe("skb.drop").filter("devv", "x");"#);
    assert_eq!(
        e.message,
        "probe `skb.drop` has no field `devv`; did you mean `dev`?"
    );
    let e = plan_err(r#"probe("skb.drop").filter("zzzzzzzz", 1);"#);
    assert!(e.message.contains("its fields are `dev`, `ifindex`"), "{e}");
    let e = plan_err(r#"probe("skb.drop").hist("h", "dev");"#);
    assert!(
        e.message.contains("cannot histogram `dev`: not a number"),
        "{e}"
    );
    assert!(e.message.contains("`len`"), "{e}");
}

#[test]
fn wrong_filter_types_fail_at_plan_time() {
    let e =
        plan_err("\nprobe(\"skb.drop\").filter(\"len\", \"big\").count(\"drops\", [\"reason\"]);");
    assert!(
        e.message.contains("filter on `len` expects a number"),
        "{e}"
    );
    assert_eq!(e.origin.line, 2);
    assert!(e.origin.col > 1, "{e}");
    let e = plan_err(r#"probe("skb.drop").filter("reason", "FULL_RNG");"#);
    assert!(e.message.contains("did you mean `FULL_RING`"), "{e}");
    let e = plan_err(r#"probe("skb.drop").filter("len", 1.5);"#);
    assert!(e.message.contains("got float `1.5`"), "{e}");
    let e = plan_err(r#"probe("skb.drop").filter("dev", "a").filter("dev", "b");"#);
    assert!(e.message.contains("already filtered"), "{e}");
}

#[test]
fn an_aggregation_name_keeps_its_shape() {
    let p = plan(
        r#"probe("dev.rx").count("pkts", ["dev"]);
        probe("dev.xmit").count("pkts", ["dev"]);"#,
    );
    assert_eq!(p.requests.len(), 2);
    let e = plan_err(
        r#"probe("skb.drop").count("drops", ["dev"]);
        probe("skb.drop").count("drops", ["reason"]);"#,
    );
    assert!(
        e.message
            .contains("aggregation `drops` is already a count by [dev] (at t.rhai:1:19)"),
        "{e}"
    );
    assert_eq!(e.origin.line, 2);
    let e = plan_err(
        r#"probe("skb.drop").count("x");
        probe("skb.drop").hist("x", "len");"#,
    );
    assert!(e.message.contains("log2 histogram"), "{e}");
}

#[test]
fn every_parses_its_period() {
    let p = plan(r#"every("500ms", || 1); every(2, || 2); on_end(|| 3);"#);
    assert_eq!(
        p.timers,
        [
            Timer {
                period: Duration::from_millis(500),
                callback: CallbackId(0)
            },
            Timer {
                period: Duration::from_secs(2),
                callback: CallbackId(1)
            }
        ]
    );
    assert_eq!(p.on_end, [CallbackId(2)]);
    let e = plan_err("\n  every(\"1x\", || print(1));");
    assert!(e.message.contains("unknown unit `x`"), "{e}");
    assert_eq!(at(&e), (2, 3));
    let e = plan_err(r#"every("1ms", || 1);"#);
    assert!(e.message.contains("minimum of 10ms"), "{e}");
    let e = plan_err(r#"every("1s", 5);"#);
    assert!(e.message.contains("must be a closure"), "{e}");
}

#[test]
fn callbacks_with_the_wrong_arity_fail_at_plan_time() {
    let e = plan_err("let n = 0;\nprobe(\"skb.drop\").on_event(|| n += 1);");
    assert_eq!(
        e.message,
        "on_event callbacks take one parameter (the event): `|e| ...`"
    );
    assert_eq!(e.origin.line, 2);
    let e = plan_err(r#"every("1s", |x| x);"#);
    assert!(
        e.message.contains("every callbacks take no parameters"),
        "{e}"
    );
}

#[test]
fn callback_errors_are_located_in_the_callback_body() {
    let mut s = compile("let n = 0;\nevery(\"1s\", || {\n    n += 1;\n    let x = n / 0;\n});");
    let p = s.plan().unwrap();
    let e = s.call(p.timers[0].callback).unwrap_err();
    assert_eq!(
        (e.origin.source.as_str(), e.origin.line),
        ("t.rhai", 4),
        "{e}"
    );
    assert!(e.message.contains("division by zero"), "{e}");
    // and again: a failed callback leaves the script usable
    assert!(s.call(p.timers[0].callback).is_err());
}

#[test]
fn errors_in_functions_are_unwrapped_to_the_innermost() {
    let mut s =
        compile("fn inner(x) {\n  x.nope()\n}\nfn outer() { inner(1) }\non_end(|| outer());");
    let p = s.plan().unwrap();
    let e = s.call(p.on_end[0]).unwrap_err();
    assert_eq!(at(&e), (2, 5), "{e}");
    assert!(e.message.starts_with("no function `nope(integer)`"), "{e}");
    // API misuse inside a function called at the top level
    let e = plan_err("fn mk() {\n  probe(\"skb.drp\")\n}\nmk().count(\"c\");");
    assert_eq!(at(&e), (2, 3), "{e}");
}

#[test]
fn an_endless_callback_ends_with_a_located_error() {
    let mut s = compile("let n = 0;\nevery(\"1s\", || {\n  loop { n += 1; }\n});");
    let p = s.plan().unwrap();
    let e = s.call(p.timers[0].callback).unwrap_err();
    assert!(e.message.starts_with("too many operations"), "{e}");
    assert_eq!(e.origin.line, 2, "{e}");
    // the budget is per call: a short callback after it still runs
    let mut s = compile("let n = 0;\nevery(\"1s\", || { for i in 0..200000 { n += 1; } });");
    let p = s.plan().unwrap();
    s.call(p.timers[0].callback).unwrap();
    s.call(p.timers[0].callback).unwrap();
    s.call(p.timers[0].callback).unwrap();
}

#[test]
fn a_stop_request_or_the_deadline_cuts_a_running_callback_short() {
    // a callback that would take its whole operations budget
    let mut s = compile("let n = 0;\nevery(\"1s\", || {\n  loop { n += 1; }\n});");
    let p = s.plan().unwrap();
    let cb = p.timers[0].callback;
    let requests = StopRequests::new();
    s.set_stop_requests(requests.clone());
    assert_eq!(s.cut(), None);
    requests.request();
    assert_eq!(s.cut(), Some(Cut::StopRequested));
    let t = std::time::Instant::now();
    let e = s.call(cb).unwrap_err();
    assert_eq!(e.message, "cut short: the run was asked to end", "{e}");
    // located like "too many operations": where the callback was registered
    assert_eq!(e.origin.line, 2, "{e}");
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    // answered: the end's callbacks run, until a further request
    s.answer_stop_requests();
    assert_eq!(s.cut(), None);
    s.set_deadline(Some(std::time::Instant::now() + Duration::from_millis(5)));
    let t = std::time::Instant::now();
    let e = s.call(cb).unwrap_err();
    assert_eq!(e.message, "cut short: the run's time is up", "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    s.set_deadline(None);
    let e = s.call(cb).unwrap_err();
    assert!(e.message.starts_with("too many operations"), "{e}");
}

#[test]
fn aggregation_names_with_control_characters_are_refused() {
    let e = plan_err("probe(\"skb.drop\").count(\"drops\\x1b[2J\");");
    assert!(
        e.message
            .contains("aggregation name \"drops\\u{1b}[2J\" has control characters"),
        "{e}"
    );
}

#[test]
fn an_endless_top_level_is_stopped() {
    let e = plan_err("let i = 0;\nwhile true { i += 1; }");
    assert!(e.message.starts_with("too many operations"), "{e}");
    assert_eq!(e.origin.line, 2);
}

#[test]
fn print_report_exit_become_actions() {
    let mut s = compile(
        r#"print("drops"); print(42); debug("d"); let no = false; if no { probe("skb.drop").count("drops"); }
        on_end(|| { print_delta("drops"); clear("drops"); report("n", #{a: [1, 2.5, true], b: "x"}); verdict(false); exit(13); print("never"); });"#,
    );
    let p = s.plan().unwrap();
    let a = s.take_actions();
    assert_eq!(
        a[..2],
        [
            Action::PrintText("drops".into()),
            Action::PrintText("42".into())
        ]
    );
    assert!(
        matches!(&a[2], Action::PrintText(t) if t.starts_with("t.rhai:1:") && t.ends_with("\"d\"")),
        "{a:?}"
    );
    s.call(p.on_end[0]).unwrap();
    assert_eq!(
        s.take_actions(),
        [
            Action::PrintDelta("drops".into()),
            Action::Clear("drops".into()),
            Action::Report(
                "n".into(),
                serde_json::json!({"a": [1, 2.5, true], "b": "x"})
            ),
            Action::Verdict(false),
            Action::Exit(13),
        ]
    );
    assert!(s.take_actions().is_empty());
    let mut s = compile("exit(); print(1);");
    s.plan().unwrap();
    assert_eq!(s.take_actions(), [Action::Exit(0)]);
}

// Regression: `exit(300)` and `exit(-1)` ended with status 1 without a word,
// and `exit(3)` looked like vprobe's own "script error".
#[test]
fn exit_takes_only_the_statuses_a_script_may_use() {
    for ok in [0, 1, 10, 125] {
        let mut s = compile(&format!("exit({ok});"));
        s.plan().unwrap();
        assert_eq!(s.take_actions(), [Action::Exit(ok)]);
    }
    for (bad, says) in [
        (
            "exit(300)",
            "300 is not an exit status a script can use: 0, 1 or 10-125",
        ),
        ("exit(-1)", "-1 is not an exit status"),
        ("exit(3)", "3 is one of vprobe's own exit statuses"),
        ("exit(\"x\")", "the code must be an integer"),
        ("verdict(1)", "verdict: expects true or false"),
        (r#"trigger("x > 1").exit(126)"#, "126 is not an exit status"),
    ] {
        let e = compile(bad).plan().unwrap_err();
        assert!(e.message.contains(says), "{bad}: {e}");
        assert_eq!(e.origin.line, 1, "{bad}: located");
    }
}

// `print(x)` is decided once, here: the runner prints what it is told.
#[test]
fn print_tells_declared_aggregations_from_text() {
    let mut s = compile(
        r#"print("drops"); let d = probe("skb.drop").count("drops"); print("drops"); print(d); print("dropz");"#,
    );
    s.plan().unwrap();
    assert_eq!(
        s.take_actions(),
        [
            Action::PrintText("drops".into()),
            Action::PrintAggregation("drops".into()),
            Action::PrintAggregation("drops".into()),
            Action::PrintText("dropz".into()),
        ]
    );
    // later lines know the aggregations of earlier ones, and their own
    s.eval_line(r#"probe("dev.xmit").hist("sizes", "len"); print("drops"); print("sizes")"#)
        .unwrap();
    assert_eq!(
        s.take_actions(),
        [
            Action::PrintAggregation("drops".into()),
            Action::PrintAggregation("sizes".into()),
        ]
    );
    // a line that failed declared nothing
    s.eval_line("probe(\"skb.drop\").count(\"gone\");\nprobe(\"skb.dorp\")")
        .unwrap_err();
    s.eval_line(r#"print("gone")"#).unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("gone".into())]);
}

#[test]
fn aggregation_handles_stand_for_their_names() {
    let mut s = compile(
        r#"let d = probe("skb.drop").count("drops", ["reason"]);
        let h = probe("dev.xmit").lhist("lens", "len", 100);
        trigger("drops > 0").snapshot(d);
        if total(d) != () || entries(h) != () { throw "no host: ()" }
        on_end(|| { print_delta(d); clear(h); print(`${d} and ${h}`); });"#,
    );
    let p = s.plan().unwrap();
    assert_eq!(
        p.triggers[0].actions,
        [crate::trigger::TriggerAction::Snapshot("drops".into())]
    );
    s.call(p.on_end[0]).unwrap();
    assert_eq!(
        s.take_actions(),
        [
            Action::PrintDelta("drops".into()),
            Action::Clear(AggName::from("lens")),
            Action::PrintText("drops and lens".into()),
        ]
    );
    // the REPL does not echo the aggregation a declaration returns
    s.eval_line(r#"probe("skb.drop").count("more")"#).unwrap();
    assert_eq!(s.take_last_value(), None);
    let e =
        plan_err(r#"let d = probe("skb.drop").count("d"); probe("skb.drop").filter("dev", d);"#);
    assert!(e.message.contains("got aggregation `d`"), "{e}");
}

/// A record of `probe` carrying every field, all zero.
fn every_field(probe: &str) -> Event {
    let probe = vprobe_probes::find(probe).unwrap();
    Event {
        flags: probe
            .fields
            .iter()
            .fold(0, |a, f| a | crate::filter::key_bit(f)),
        ..Default::default()
    }
}

fn drop_event() -> Event {
    let mut ev = Event {
        ts_ns: 123,
        cpu: 3,
        ..every_field("skb.drop")
    };
    ev.rec.dev[..4].copy_from_slice(b"mvt0");
    ev.rec.num[2] = 80; // reason
    ev.rec.num[5] = 1514; // len
    ev
}

#[test]
fn events_reach_callbacks_as_maps() {
    let mut s = compile(
        r#"let seen = [];
        probe("skb.drop").on_event(|e| {
            print(`${e.probe} on ${e.dev}: ${e.reason} len=${e.len} cpu=${e.cpu} ts=${e.ts_ns}`);
            seen.push(e.len);
            emit(e);
        });"#,
    );
    let p = s.plan().unwrap();
    let Consumer::Events { callback, .. } = p.requests[0].consumer else {
        panic!("not events")
    };
    let probe = vprobe_probes::find("skb.drop").unwrap();
    s.call_event(callback, probe, &drop_event()).unwrap();
    s.call_event(callback, probe, &drop_event()).unwrap();
    let a = s.take_actions();
    assert_eq!(
        a[0],
        Action::PrintText("skb.drop on mvt0: FULL_RING len=1514 cpu=3 ts=123".into())
    );
    let Action::Emit(Emitted {
        probe,
        ts_ns,
        cpu,
        fields,
    }) = &a[1]
    else {
        panic!("{a:?}")
    };
    assert_eq!(probe, "skb.drop");
    // emit(e) keeps when and where the event happened
    assert_eq!((*ts_ns, *cpu), (Some(123), Some(3)));
    assert_eq!(fields[0], ("dev".into(), Value::Str("mvt0".into())));
    assert_eq!(
        fields.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        probe_field_names("skb.drop")
    );
    // the closure's captured array is shared with the top level
    s.eval_line("print(seen.len())").unwrap();
    assert_eq!(
        s.take_actions().last(),
        Some(&Action::PrintText("2".into()))
    );
}

fn probe_field_names(p: &str) -> Vec<&'static str> {
    vprobe_probes::find(p)
        .unwrap()
        .fields
        .iter()
        .map(|f| f.name)
        .collect()
}

#[test]
fn callbacks_call_script_functions_and_see_captured_variables() {
    let mut s = compile(
        "let total = 10;\nfn show(n) { print(`total ${n}`); }\nevery(\"1s\", || { total += 1; show(total); });\nevery(\"1s\", Fn(\"tick\"));\nfn tick() { print(\"tick\") }",
    );
    let p = s.plan().unwrap();
    s.call(p.timers[0].callback).unwrap();
    s.call(p.timers[1].callback).unwrap();
    assert_eq!(
        s.take_actions(),
        [
            Action::PrintText("total 11".into()),
            Action::PrintText("tick".into())
        ]
    );
}

#[test]
fn eval_line_keeps_the_scope_and_returns_only_new_requests() {
    let mut s =
        compile(r#"let d = probe("skb.drop").filter("dev", "mvt0"); let n = 41; d.count("a");"#);
    assert_eq!(s.plan().unwrap().requests.len(), 1);
    let p = s
        .eval_line("n += 1; d.count(\"b\", [\"reason\"]); every(\"1s\", || print(n));")
        .unwrap();
    assert_eq!(p.requests.len(), 1);
    assert!(matches!(&p.requests[0].consumer, Consumer::Count { name, .. } if name == "b"));
    assert_eq!(p.requests[0].filters[0].field.name, "dev");
    assert_eq!(p.timers.len(), 1);
    s.call(p.timers[0].callback).unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("42".into())]);
    s.eval_line("fn twice(x) { x * 2 }").unwrap();
    s.eval_line("twice(n)").unwrap();
    assert_eq!(s.take_last_value().as_deref(), Some("84"));
    s.eval_line("d").unwrap();
    assert_eq!(
        s.take_last_value().as_deref(),
        Some(r#"probe("skb.drop").filter("dev", "mvt0")"#)
    );
    // an error in a line is located in the line and adds nothing
    let e = s
        .eval_line("d.count(\"c\");\nprobe(\"skb.dorp\")")
        .unwrap_err();
    assert_eq!((e.origin.source.as_str(), e.origin.line), ("<repl>", 2));
    let p = s.eval_line("d.count(\"c\")").unwrap();
    assert_eq!(p.requests.len(), 1);
    assert!(s.plan().is_err(), "plan runs once");
}

#[test]
fn a_failing_line_changes_nothing() {
    let mut s = compile("let n = 1;");
    s.plan().unwrap();
    // variables, actions and requests of a line that fails are forgotten
    let e = s
        .eval_line("let m = 2; n = 5; print(\"x\"); clear(\"a\"); probe(\"skb.drop\").count(\"a\"); fn f() { 1 } undefined_fn()")
        .unwrap_err();
    assert!(e.message.contains("undefined_fn"), "{e}");
    assert_eq!(s.take_actions(), []);
    assert!(s.eval_line("m").is_err(), "m must not exist");
    assert!(s.eval_line("f()").is_err(), "f must not exist");
    s.eval_line("n").unwrap();
    assert_eq!(s.take_last_value().as_deref(), Some("1"));
    // `a` can still be declared with another shape: the failed line's is gone
    let p = s
        .eval_line("probe(\"skb.drop\").count(\"a\", [\"dev\"])")
        .unwrap();
    assert_eq!(p.requests.len(), 1);
}

#[test]
fn undo_line_takes_back_a_successful_line() {
    let mut s = compile("let n = 1;");
    s.plan().unwrap();
    assert!(!s.undo_line(), "nothing to undo yet");
    s.eval_line("n = 2; let k = 3; probe(\"skb.drop\").count(\"a\"); every(\"1s\", || print(k)); print(\"hi\")")
        .unwrap();
    assert!(s.undo_line());
    assert!(!s.undo_line(), "undone once");
    assert_eq!(s.take_actions(), []);
    s.eval_line("n").unwrap();
    assert_eq!(s.take_last_value().as_deref(), Some("1"));
    assert!(s.eval_line("k").is_err(), "k must not exist");
    // the count of `a` was taken back: another shape is fine now
    s.eval_line("probe(\"skb.drop\").count(\"a\", [\"reason\"])")
        .unwrap();
}

#[test]
fn params_without_a_header_come_from_the_command_line_then_defaults() {
    let text = "let dev = param(\"dev\", \"mvt*\");\nlet k = param(\"k\", 1);\nprint(`${dev} ${k} ${params.dev}`);";
    let mut s = compile(text);
    s.plan().unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("mvt* 1 mvt*".into())]);
    let mut s = with_params(text, &[("dev", "eth0"), ("k", "7")]);
    s.plan().unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("eth0 7 eth0".into())]);
    let e = with_params(text, &[("k", "many")]).plan().unwrap_err();
    assert_eq!(e.message, "parameter `k` expects an integer, got `many`");
    assert_eq!(e.origin.line, 2);
    let e = compile("param(\"x\")").plan().unwrap_err();
    assert!(e.message.contains("-p x=VALUE"), "{e}");
}

#[test]
fn params_with_a_header_are_its_declarations() {
    let text = "//! name: t\n//! param: every=5s  period\n//! param: n=3  count\n\
                let n = param(\"n\", 3);\nprint(`${param(\"every\")} ${n + 1} ${params.every}`);";
    let mut s = compile(text);
    s.plan().unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("5s 4 5s".into())]);
    let mut s = with_params(text, &[("n", "9")]);
    s.plan().unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("5s 10 5s".into())]);
    // refused when compiling, located at the declaration it concerns
    let e = Script::compile(
        "t.rhai",
        text,
        symbols(),
        Options {
            params: [("m".to_string(), "1".to_string())].into(),
            ..Options::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.rhai:3:1: -p m=1: no parameter `m`; did you mean `n`?"
    );
    // reading an undeclared parameter: found before running, and when run
    let e = plan_err("//! name: t\n//! param: n=3  count\n\nlet x = param(\"nn\", 1);");
    assert_eq!(at(&e), (4, 9), "{e}");
    assert_eq!(
        e.message,
        "parameter `nn` is not declared in the header; did you mean `n`?"
    );
    let e = plan_err("//! name: t\n//! param: n=3  count\nlet k = \"nn\";\nparam(k)");
    assert_eq!(e.origin.line, 4, "{e}");
    let e = plan_err("//! name: t\n//! param: n=3  count\nprint(params.nm);");
    assert_eq!(at(&e), (3, 14), "{e}");
}

#[test]
fn warnings_are_kept_beside_the_plan() {
    let mut s = compile("//! name: t\n//! param: n=3  count\n//! param: unused=1  never read\nlet n = param(\"n\", 4);\nprobe(\"skb.drop\");");
    s.plan().unwrap();
    let w: Vec<String> = s.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "t.rhai:3:1: warning: parameter `unused` is declared but never read (`param(\"unused\")`)",
            "t.rhai:4:9: warning: parameter `n`: the header's default `3` is used, not `4`",
            "t.rhai:5:1: warning: this probe is not used: consume it (`.count(..)`, `.hist(..)`, `.on_event(..)`) or keep it (`let p = probe(..)`)",
        ]
    );
}

#[test]
fn header_problems_are_errors() {
    let e = plan_err("//! name: t\n//! verison: 1.0\nprint(1);");
    assert_eq!(
        e.to_string(),
        "t.rhai:2:1: unknown header key `verison`; did you mean `version`?"
    );
    let e = plan_err("//! requires: skb.dorp\n");
    assert!(e.message.contains("did you mean `skb.drop`?"), "{e}");
    let e = plan_err("//! requires: ftrace\n");
    assert!(e.message.contains("unknown kernel feature `ftrace`"), "{e}");
    let e = plan_err("//! requires: vprobe >= 99.0\n");
    assert!(e.message.contains("needs vprobe >= 99.0"), "{e}");
    plan("//! requires: vprobe >= 0.1, skb.drop, tracepoint:net:net_dev_queue, btf, fentry\n");
}

#[test]
fn a_dropped_filter_is_an_error() {
    let e = plan_err("let p = probe(\"skb.drop\");\np.filter(\"dev\", \"x\");\np.count(\"c\");");
    assert_eq!(at(&e), (2, 3), "{e}");
    assert!(
        e.message.contains("the result of `.filter(..)` is dropped"),
        "{e}"
    );
    let e = plan_err("let p = probe(\"skb.drop\");\nif true {\n  p.filter(\"dev\", \"x\").filter(\"len\", 1);\n}\np.count(\"c\");");
    assert_eq!(e.origin.line, 3, "{e}");
    let e = plan_err(
        "fn f(p) {\n  p.filter(\"dev\", \"x\");\n  p\n}\nf(probe(\"skb.drop\")).count(\"c\");",
    );
    assert_eq!(e.origin.line, 2, "{e}");
    // a value that is returned or assigned is used
    plan("fn scoped(p, n) { if n != () { p.filter(\"netns\", n) } else { p } }\n\
          let p = probe(\"skb.drop\");\nlet q = if true { p.filter(\"dev\", \"x\") } else { p };\n\
          p = p.filter(\"len\", 1);\nscoped(q, ()).count(\"c\");\nlet f = || p.filter(\"dev\", \"y\");\nf.call().count(\"d\");");
}

#[test]
fn names_never_declared_are_errors() {
    let e = plan_err("probe(\"skb.drop\").count(\"drops\");\non_end(|| print(total(\"dorps\")));");
    assert_eq!(at(&e), (2, 23), "{e}");
    assert_eq!(
        e.message,
        "total: no aggregation named `dorps`; did you mean `drops`?"
    );
    for (call, what) in [
        (
            "print_delta(\"x\")",
            "print_delta: no aggregation named `x`",
        ),
        ("clear(\"x\")", "clear: no aggregation named `x`"),
        ("entries(\"x\")", "entries: no aggregation named `x`"),
        (
            "workload(\"x\")",
            "workload: no workload named `x`; the script declares no workload",
        ),
    ] {
        let e = plan_err(&format!(
            "probe(\"skb.drop\").count(\"drops\");\nevery(\"1s\", || {call});"
        ));
        assert!(e.message.starts_with(what), "{call}: {e}");
        assert_eq!(e.origin.line, 2, "{e}");
    }
    let e = plan_err("probe(\"skb.drop\").count(\"drops\");\n\ntrigger(\"dorps > 0\").exit(1);");
    assert_eq!(e.origin.line, 3, "{e}");
    assert!(
        e.message
            .contains("no aggregation named `dorps`; did you mean `drops`?"),
        "{e}"
    );
    let e = plan_err(
        "tcp_rr(#{name: \"load\", target: \"192.0.2.2:1\"});\ntrigger(\"lod.p99 > 1ms\").exit(1);",
    );
    assert!(
        e.message
            .contains("no workload named `lod`; did you mean `load`?"),
        "{e}"
    );
    // declared under a branch not taken, or at run time: not judged
    plan("let no = false;\nif no { probe(\"skb.drop\").count(\"later\"); }\non_end(|| print(total(\"later\")));");
    plan("let n = \"x\" + \"y\";\nprobe(\"skb.drop\").count(n);\non_end(|| print(total(\"zz\")));");
}

#[test]
fn an_event_field_the_probe_lacks_is_an_error() {
    let e =
        plan_err("let n = 100;\nprobe(\"skb.drop\").on_event(|e| if e.lenn > n { print(e.dev) });");
    assert_eq!(at(&e), (2, 37), "{e}");
    assert_eq!(
        e.message,
        "`skb.drop` events have no field `lenn`; did you mean `len`?"
    );
    let e = plan_err(
        "fn handle(ev) {\n  print(ev[\"resaon\"]);\n}\nprobe(\"skb.drop\").on_event(handle);",
    );
    assert_eq!(e.origin.line, 2, "{e}");
    assert!(e.message.contains("did you mean `reason`?"), "{e}");
    // the event's own keys, fields the callback sets, and a rebound name
    plan("probe(\"skb.drop\").on_event(|e| { e.note = 1; print(`${e.probe} ${e.ts_ns} ${e.cpu} ${e.note} ${e.len}`); });\n\
          probe(\"skb.drop\").on_event(|e| { let e = #{x: 1}; print(e.y); });");
}

/// The fields the kernel records for the callback `cb` of `skb.drop` (after `prelude`).
fn carried(prelude: &str, cb: &str) -> Carried {
    let p = plan(&format!("{prelude}\nprobe(\"skb.drop\").on_event({cb});"));
    let Consumer::Events { fields, .. } = &p.requests[0].consumer else {
        panic!("not events")
    };
    fields.clone()
}

#[test]
fn events_carry_only_the_fields_their_callback_reads() {
    let only = |names: &[&'static str]| Carried::Only(names.to_vec());
    let cases: &[(&str, &str, Carried)] = &[
        ("let n = 0;", "|e| { n += 1; }", only(&[])),
        // the header's keys are always there
        ("", "|e| print(e.cpu + e.ts_ns)", only(&[])),
        (
            "let n = 0;",
            "|e| { if e.len > 100 { n += 1; } }",
            only(&["len"]),
        ),
        (
            "",
            r#"|e| print(`${e.dev} ${e["reason"]} ${e.len.to_string()}`)"#,
            only(&["dev", "len", "reason"]),
        ),
        // what the callback sets is its own, not the record's
        ("", "|e| { e.note = e.len; }", only(&["len"])),
        ("fn handle(ev) { print(ev.dev); }", "handle", only(&["dev"])),
        // the event handed on, read by name, or rebound: every field
        ("", "|e| emit(e)", Carried::All),
        ("", "|e| print(e)", Carried::All),
        ("", "|e| { let m = e.to_map(); }", Carried::All),
        ("", r#"|e| { let k = "len"; print(e[k]); }"#, Carried::All),
        (
            "fn helper(x) { x.len }",
            "|e| print(helper(e))",
            Carried::All,
        ),
        (
            "",
            "|e| { let f = || e.len; print(f.call()); }",
            Carried::All,
        ),
        ("", "|e| { print(e.len); let e = 1; }", Carried::All),
        ("", "|e| { e = 1; }", Carried::All),
    ];
    for (prelude, cb, want) in cases {
        assert_eq!(&carried(prelude, cb), want, "{prelude} {cb}");
    }
}

/// The event handed to callbacks is reused between calls (`EventSlot`): a
/// callback that keeps one, or assigns its parameter, changes no other.
#[test]
fn an_event_kept_or_replaced_by_a_callback_stays_its_own() {
    let mut s = compile(
        "let kept = [];\nlet lens = [];\n\
         probe(\"skb.drop\").on_event(|e| { e.note = e.len; kept.push(e); });\n\
         probe(\"skb.drop\").on_event(|e| { lens.push(e.len); e = 5; });",
    );
    let p = s.plan().unwrap();
    let callbacks: Vec<CallbackId> = p
        .requests
        .iter()
        .map(|r| match r.consumer {
            Consumer::Events { callback, .. } => callback,
            _ => panic!("not events"),
        })
        .collect();
    let probe = vprobe_probes::find("skb.drop").unwrap();
    for len in [1514, 60, 90] {
        let mut ev = every_field("skb.drop");
        ev.rec.num[5] = len;
        for &cb in &callbacks {
            s.call_event(cb, probe, &ev).unwrap();
        }
    }
    s.eval_line("print(`${kept.map(|x| x.len)} ${kept.map(|x| x.note)} ${lens}`)")
        .unwrap();
    assert_eq!(
        s.take_actions().last(),
        Some(&Action::PrintText(
            "[1514, 60, 90] [1514, 60, 90] [1514, 60, 90]".into()
        ))
    );
}

#[test]
fn a_field_the_record_does_not_carry_is_an_error_not_a_zero() {
    let mut s = compile("let n = [];\nprobe(\"skb.drop\").on_event(|e| n.push(e.len));");
    let p = s.plan().unwrap();
    let Consumer::Events { callback, .. } = p.requests[0].consumer else {
        panic!("not events")
    };
    let probe = vprobe_probes::find("skb.drop").unwrap();
    // a record as the kernel writes it for this callback: `len` alone
    let mut ev = Event::default();
    let len = probe.field("len").unwrap();
    ev.flags = crate::filter::key_bit(len);
    ev.rec.num[5] = 1514;
    s.call_event(callback, probe, &ev).unwrap();
    s.eval_line("print(n)").unwrap();
    assert_eq!(
        s.take_actions().last(),
        Some(&Action::PrintText("[1514]".into()))
    );
    // a record without it
    let e = s
        .call_event(callback, probe, &Event::default())
        .unwrap_err();
    assert!(e.message.contains("do not carry `len`"), "{e}");
}

#[test]
fn an_event_field_the_probe_lacks_fails_at_run_time_too() {
    let mut s = compile("let f = \"le\" + \"nn\";\nlet seen = [];\nprobe(\"skb.drop\").on_event(|e| { seen.push(e.len); print(e[f]); });");
    let p = s.plan().unwrap();
    let Consumer::Events { callback, .. } = p.requests[0].consumer else {
        panic!("not events")
    };
    let probe = vprobe_probes::find("skb.drop").unwrap();
    let e = s
        .call_event(callback, probe, &every_field("skb.drop"))
        .unwrap_err();
    assert_eq!(e.origin.line, 3, "{e}");
    assert_eq!(
        e.message,
        "`skb.drop` events have no field `lenn`; did you mean `len`?"
    );
}

#[test]
fn a_field_of_another_attach_point_fails_where_it_is_read() {
    // `reason` is a catalog field (a getter is registered for it), just not
    // one of dev.xmit's: the same error, at the same place, as any other name
    let mut s =
        compile("fn why(x) {\n  x.reason\n}\nprobe(\"dev.xmit\").on_event(|e| print(why(e)));");
    let p = s.plan().unwrap();
    let Consumer::Events { callback, .. } = p.requests[0].consumer else {
        panic!("not events")
    };
    let probe = vprobe_probes::find("dev.xmit").unwrap();
    let e = s
        .call_event(callback, probe, &every_field("dev.xmit"))
        .unwrap_err();
    assert_eq!((e.origin.line, e.origin.col), (2, 5), "{e}");
    assert!(
        e.message
            .starts_with("`dev.xmit` events have no field `reason`; their fields are dev,"),
        "{e}"
    );
}

#[test]
fn wrong_arguments_name_the_usage() {
    let e = plan_err("probe(\"skb.drop\").count();");
    assert!(
        e.message
            .contains("use .count(name) or .count(name, [keys])"),
        "{e}"
    );
}

#[test]
fn sandbox_limits_hold() {
    let e = plan_err("let s = \"x\"; loop { s += s; }");
    assert!(e.message.contains("too large"), "{e}");
}

#[test]
fn imports_resolve_from_the_script_folder_then_the_library() {
    let dir = std::env::temp_dir().join(format!("vprobe-script-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(
        dir.join("lib/net.rhai"),
        "fn drops(dev) { probe(\"skb.drop\").filter(\"dev\", dev) }\nfn hello() { print(\"hello\") }\nfn broken() {\n  1 / 0\n}",
    )
    .unwrap();
    let main = dir.join("main.rhai");
    let text = "import \"net\" as net;\nimport \"lab\" as lab;\nnet::drops(\"mvt0\").count(\"d\");\non_end(|| net::hello());\nevery(\"1s\", || net::broken());";
    let mut s =
        Script::compile(main.to_str().unwrap(), text, symbols(), Options::default()).unwrap();
    let p = s.plan().unwrap();
    assert_eq!(
        p.requests[0].filters[0].values,
        [FilterValue::Str("mvt0".into())]
    );
    s.call(p.on_end[0]).unwrap();
    assert_eq!(s.take_actions(), [Action::PrintText("hello".into())]);
    let e = s.call(p.timers[0].callback).unwrap_err();
    assert!(e.origin.source.ends_with("lib/net.rhai"), "{e}");
    assert_eq!(e.origin.line, 4, "{e}");
    let import = |what: &str| {
        Script::compile(
            main.to_str().unwrap(),
            &format!("\nimport \"{what}\" as n;"),
            symbols(),
            Options::default(),
        )
        .unwrap()
        .plan()
        .unwrap_err()
    };
    let e = import("nope");
    assert!(
        e.message
            .starts_with("module `nope` not found: looked for lib/nope.rhai in "),
        "{e}"
    );
    assert_eq!(e.origin.line, 2, "{e}");
    let e = import("../main");
    assert!(e.message.contains("`..` is refused"), "{e}");
    let e = import("/etc/hostname");
    assert!(e.message.contains("absolute paths are refused"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn imports_have_the_scripts_limits() {
    let dir = std::env::temp_dir().join(format!("vprobe-import-limits-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(
        dir.join("lib/big.rhai"),
        vec![b' '; crate::library::MAX_SCRIPT_BYTES as usize + 1],
    )
    .unwrap();
    let fifo = dir.join("lib/fifo.rhai");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let main = dir.join("main.rhai");
    let main = main.to_str().unwrap();
    let err = |text: &str| {
        Script::compile(main, text, symbols(), Options::default())
            .unwrap()
            .plan()
            .unwrap_err()
    };
    let e = err("let x = 1;\nimport \"big\" as big;");
    assert!(e.message.contains("larger than 1048576 bytes"), "{e}");
    assert_eq!((e.origin.source.as_str(), e.origin.line), (main, 2), "{e}");
    // a FIFO is not a module file: not found, and never opened (it would block)
    let t = std::time::Instant::now();
    let e = err("import \"fifo\" as f;");
    assert!(e.message.contains("module `fifo`"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_lines_are_right_up_to_the_last_line_rhai_can_number() {
    // Rhai's positions are 16 bits: the last numbered line is 65535
    let mut text = "\n".repeat(MAX_LINES - 1);
    text.push_str("let x = nope;");
    let e = plan_err(&text);
    assert_eq!(at(&e), (65535, 9), "{e}");
    // past it, the script is refused where it stops being locatable
    text.push_str("\nlet y = 1;");
    let e = Script::compile("t.rhai", &text, symbols(), Options::default()).unwrap_err();
    assert_eq!(at(&e), (65536, 0), "{e}");
    assert!(e.message.starts_with("more than 65535 lines"), "{e}");
    // and so is a line whose columns it cannot number, REPL lines too
    let mut s = compile("");
    let e = s
        .eval_line(&format!("let s = \"{}\";", "x".repeat(70_000)))
        .unwrap_err();
    assert_eq!(at(&e), (1, 65536), "{e}");
}

mod workloads_triggers_queries {
    use super::*;

    #[test]
    fn triggers_and_workloads_are_planned_with_their_actions() {
        let mut s = compile(
            r#"
            probe("skb.drop").count("drops");
            tcp_rr(#{ name: "rr", streams: 16, duration: "2s", target: "192.0.2.2:12865" });
            trigger("drops > 0").log("first drop").snapshot("drops").stop("rr").exit(13);
            trigger("rr.p99 > 10ms").once().call(|| print("slow"));
            "#,
        );
        let plan = s.plan().unwrap();
        assert_eq!(plan.workloads.len(), 1);
        assert_eq!(plan.workloads[0].name, "rr");
        assert_eq!(plan.triggers.len(), 2);
        let t = &plan.triggers[0];
        assert_eq!(t.condition.text, "drops > 0");
        assert_eq!(t.actions.len(), 4);
        assert!(plan.triggers[1].once);
        assert_eq!(plan.triggers[0].origin.line, 4);
    }

    #[test]
    fn a_bad_condition_is_a_located_error() {
        let mut s = compile("\n\ntrigger(\"drops >> 0\");");
        let e = s.plan().unwrap_err();
        assert_eq!(e.origin.line, 3, "{e}");
        assert!(e.message.contains("invalid trigger condition"), "{e}");
    }

    #[test]
    fn exec_needs_permission() {
        let mut s = compile(r#"exec(#{ cmd: ["true"] });"#);
        let e = s.plan().unwrap_err();
        assert!(e.message.contains("--allow exec"), "{e}");
    }

    #[test]
    fn duplicate_workload_names_are_refused() {
        let mut s =
            compile(r#"tcp_rr(#{target: "192.0.2.2:1"}); tcp_rr(#{target: "192.0.2.2:1"});"#);
        assert!(s.plan().unwrap_err().message.contains("already exists"));
    }

    /// A host whose aggregation `drops` has a full map.
    struct FullHost;

    impl Host for FullHost {
        fn agg_total(&self, name: &AggName) -> Option<AggTotal> {
            (name.as_str() == "drops").then_some(AggTotal {
                total: 10240,
                refused: 7,
            })
        }
        fn lost(&self) -> crate::output::Lost {
            crate::output::Lost {
                events: 1,
                map_full: 7,
                callback_errors: 2,
                undelivered: 3,
                ..crate::output::Lost::default()
            }
        }
        fn lost_by_probe(&self) -> std::collections::BTreeMap<String, crate::output::Lost> {
            [(
                "skb.drop".to_string(),
                crate::output::Lost {
                    events: 1,
                    undelivered: 3,
                    ..crate::output::Lost::default()
                },
            )]
            .into_iter()
            .collect()
        }
        fn agg_entries(&self, _: &AggName) -> Option<serde_json::Value> {
            None
        }
        fn workload(&self, _: &str) -> Option<serde_json::Value> {
            None
        }
        fn dev_stat(&self, dev: &str, _: &str) -> Result<u64, DevStatError> {
            Err(DevStatError::NoDevice(dev.into()))
        }
        fn lab(&self) -> Option<serde_json::Value> {
            None
        }
        fn devices(&self, _: &str) -> Vec<String> {
            vec![]
        }
    }

    #[test]
    fn total_warns_once_when_the_map_is_full_and_lost_says_what_was_lost() {
        let mut s = compile(
            "probe(\"skb.drop\").count(\"drops\", [\"dev\"]);\n\
             on_end(|| {\n  let a = total(\"drops\"); let b = total(\"drops\");\n\
             let l = lost(); report(\"l\", l); report(\"t\", a + b); });",
        );
        let p = s.plan().unwrap();
        s.set_host(Rc::new(FullHost));
        s.call(p.on_end[0]).unwrap();
        let actions = s.take_actions();
        let warns: Vec<&String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Warn(w) => Some(w),
                _ => None,
            })
            .collect();
        assert_eq!(warns.len(), 1, "{actions:?}");
        assert!(
            warns[0].starts_with("t.rhai:3:")
                && warns[0].contains("the map of `drops` is full and refused 7 updates"),
            "{}",
            warns[0]
        );
        assert!(actions.contains(&Action::Report(
            "l".into(),
            serde_json::json!({"events": 1, "captures": 0, "map_full": 7, "rate_limited": 0,
                               "missed": 0, "callback_errors": 2, "undelivered": 3,
                               "probes": {"skb.drop": {"events": 1, "captures": 0, "map_full": 0,
                                          "rate_limited": 0, "missed": 0, "callback_errors": 0,
                                          "undelivered": 3}}})
        )));
        assert!(actions.contains(&Action::Report("t".into(), serde_json::json!(20480))));
    }

    #[test]
    fn queries_without_a_running_session_are_unit() {
        let mut s = compile(
            r#"probe("skb.drop").count("drops");
            let t = total("drops"); if t != () { throw "expected ()" } lab();
            if lost() != () { throw "lost" }"#,
        );
        s.plan().unwrap();
    }
}

#[test]
fn the_api_table_lists_every_registered_function() {
    let s = compile("");
    let registered: std::collections::BTreeSet<String> = s
        .engine
        .collect_fn_metadata(None, |f| Some(f.metadata.name.to_string()), false)
        .into_iter()
        .filter(|n| !n.starts_with("get$") && n != "to_string" && n != "to_debug")
        // an event's index access and the map functions it answers like a map
        .filter(|n| {
            !n.starts_with("index$") && !["contains", "keys", "values", "len"].contains(&n.as_str())
        })
        .collect();
    let listed: std::collections::BTreeSet<String> = API
        .iter()
        .map(|f| f.name.to_string())
        .filter(|n| n != "print") // Rhai's own, redirected with on_print
        .collect();
    assert_eq!(registered, listed);
}

#[test]
fn variables_name_the_probe_they_hold() {
    let mut s = compile(
        r#"let d = probe("skb.drop").filter("dev", "x"); let n = 1; let n = probe("tcp.retransmit");"#,
    );
    s.plan().unwrap();
    let vars: Vec<(String, Option<&str>)> = s
        .variables()
        .into_iter()
        .map(|(n, p)| (n, p.map(|p| p.name)))
        .collect();
    assert_eq!(
        vars,
        [
            ("params".to_string(), None),
            ("d".to_string(), Some("skb.drop")),
            ("n".to_string(), Some("tcp.retransmit")),
        ]
    );
}
