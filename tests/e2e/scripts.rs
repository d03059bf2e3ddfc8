//! Scripts as contracts shared between teams: found by name from anywhere,
//! listed with their headers, their parameters checked before anything
//! attaches, their imports kept inside the library, and what `check` (and
//! every run) finds statically, located, as text or JSON.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::util::{self, Run, TempDir, VPROBE};

const QUICK: Duration = Duration::from_secs(30);

/// Runs vprobe in `cwd` with only these library folders: `VPROBE_PATH` as
/// given, and user and system folders under `xdg` (so the host's own
/// scripts never take part).
fn vprobe_in(cwd: &Path, xdg: &Path, vprobe_path: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(VPROBE);
    cmd.current_dir(cwd)
        .args(args)
        .env("XDG_DATA_HOME", xdg.join("user"))
        .env("XDG_DATA_DIRS", xdg.join("system"))
        .env_remove("VPROBE_PATH");
    if let Some(p) = vprobe_path {
        cmd.env("VPROBE_PATH", p);
    }
    let (out, timed_out) = util::output_within(&mut cmd, QUICK);
    let run = Run::from_output(
        format!("vprobe {args:?} in {}", cwd.display()),
        out,
        timed_out,
    );
    run.assert_no_panic();
    run
}

/// The `//! name:`, `//! version:` and first `//! about:` of a script.
fn header(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("//! {key}:")))
        .map(|v| v.trim().to_string())
}

/// The version the seed script's header declares.
fn seed_version() -> String {
    let text =
        std::fs::read_to_string(util::repo_root().join("scripts/macvtap_drops.rhai")).unwrap();
    header(&text, "version").expect("macvtap_drops.rhai has a version")
}

#[test]
fn scripts_lists_every_shipped_script_with_its_version_and_about() {
    let dir = TempDir::new("list");
    let run = vprobe_in(dir.path(), dir.path(), None, &["scripts", "-f", "json"]);
    assert!(run.status.success(), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let listed = v["scripts"].as_array().expect("scripts");
    let mut n = 0;
    for e in std::fs::read_dir(util::repo_root().join("scripts")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "rhai") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_stem().unwrap().to_str().unwrap();
        let l = listed
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed\n{}", run.describe()));
        let version = header(&text, "version").unwrap_or_else(|| panic!("{name} has no version"));
        assert_eq!(l["version"], version.as_str(), "{name}");
        let about = header(&text, "about").unwrap_or_else(|| panic!("{name} has no about"));
        assert!(
            l["about"].as_str().unwrap().starts_with(&about),
            "{name}: {l}"
        );
        assert_eq!(l["place"], "built_in", "{name}");
        assert_eq!(
            header(&text, "name").as_deref(),
            Some(name),
            "the header names the file"
        );
    }
    assert!(n >= 12, "only {n} scripts");
    // the library modules the scripts share are listed apart
    let modules = v["modules"].as_array().expect("modules");
    for m in ["lab", "counters"] {
        assert!(modules.iter().any(|x| x["name"] == m), "{m} not listed");
    }
    // and as text, one line each with version and about
    let run = vprobe_in(dir.path(), dir.path(), None, &["scripts"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("macvtap_drops "))
        .unwrap_or_else(|| panic!("{}", run.describe()));
    assert!(
        line.contains(&format!(" {} ", seed_version()))
            && line.contains("built-in")
            && line.contains("The seed case"),
        "{line}"
    );
}

#[test]
fn a_users_script_shadows_a_built_in_one_and_says_so() {
    let dir = TempDir::new("shadow");
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(
        mine.join("drops_by_reason.rhai"),
        "//! name: drops_by_reason\n//! version: 9.9\n//! about: ours\nprobe(\"skb.drop\").count(\"d\");\n",
    )
    .unwrap();
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        Some(&mine),
        &["scripts", "-f", "json"],
    );
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let d = v["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "drops_by_reason")
        .unwrap()
        .clone();
    assert_eq!(d["version"], "9.9", "{d}");
    assert_eq!(d["place"], "vprobe_path", "{d}");
    assert_eq!(d["shadows"][0]["place"], "built_in", "{d}");
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        Some(&mine),
        &["check", "drops_by_reason"],
    );
    assert!(run.status.success(), "{}", run.describe());
    assert!(
        run.stdout.contains("mine/drops_by_reason.rhai: ok"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_script_runs_by_name_from_any_directory() {
    let dir = TempDir::new("byname");
    // no root needed to find and check it
    let run = vprobe_in(dir.path(), dir.path(), None, &["check", "macvtap_drops"]);
    assert!(run.status.success(), "{}", run.describe());
    assert!(
        run.stdout.starts_with("built-in:macvtap_drops.rhai: ok"),
        "{}",
        run.describe()
    );
    let run = vprobe_in(dir.path(), dir.path(), None, &["check", "macvtap_drop"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("did you mean `macvtap_drops`?"),
        "{}",
        run.describe()
    );
    if !util::root_or_skip("scripts::a_script_runs_by_name_from_any_directory") {
        return;
    }
    let _k = util::kernel_lock();
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["run", "drops_by_reason", "-d", "1s", "-f", "json"],
    );
    assert!(run.status.success(), "{}", run.describe());
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary");
    assert_eq!(
        last["maps"]["drops"]["keys"],
        serde_json::json!(["reason", "location", "dev"])
    );
}

/// A team's script with its own module and a shipped one, run by path and
/// by name (through VPROBE_PATH) from an unrelated directory.
#[test]
fn a_script_with_its_own_imports_works_from_any_directory() {
    let dir = TempDir::new("imports");
    let team = dir.path().join("team");
    std::fs::create_dir_all(team.join("lib")).unwrap();
    std::fs::write(
        team.join("lib/ours.rhai"),
        "//! about: our helpers\nfn retransmits() { probe(\"tcp.retransmit\") }\n",
    )
    .unwrap();
    std::fs::write(
        team.join("retx.rhai"),
        "//! name: retx\n//! version: 0.1\n//! about: retransmits in the lab\n\
         import \"ours\" as ours;\nimport \"lab\" as lab;\n\
         lab::scoped(ours::retransmits()).count(\"retx\", [\"daddr\"]);\non_end(|| print(\"retx\"));\n",
    )
    .unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let by_path = team.join("retx.rhai");
    let by_path = by_path.to_str().unwrap();
    let run = vprobe_in(&elsewhere, dir.path(), None, &["check", by_path]);
    assert!(run.status.success(), "{}", run.describe());
    let run = vprobe_in(&elsewhere, dir.path(), Some(&team), &["check", "retx"]);
    assert!(run.status.success(), "{}", run.describe());
    let run = vprobe_in(&elsewhere, dir.path(), Some(&team), &["scripts"]);
    assert!(
        run.stdout.contains("ours") && run.stdout.contains("our helpers"),
        "{}",
        run.describe()
    );
    if !util::root_or_skip("scripts::a_script_with_its_own_imports_works_from_any_directory") {
        return;
    }
    let _k = util::kernel_lock();
    let run = vprobe_in(
        &elsewhere,
        dir.path(),
        Some(&team),
        &["run", "retx", "--lab", "veth", "-d", "1s", "-f", "json"],
    );
    assert!(run.status.success(), "{}", run.describe());
    let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["maps"]["retx"]["kind"], "count", "{}", run.describe());
}

#[test]
fn imports_never_leave_the_library() {
    let dir = TempDir::new("escape");
    dir.write("secret.rhai", "fn f() { 1 }");
    std::fs::create_dir_all(dir.path().join("s/lib")).unwrap();
    for (what, why) in [
        ("../secret", "`..` is refused"),
        ("/etc/hostname", "absolute paths are refused"),
        ("lib/../../secret", "`..` is refused"),
    ] {
        let s = dir.write("s/x.rhai", &format!("\n\nimport \"{what}\" as m;\n"));
        let run = vprobe_in(
            dir.path(),
            dir.path(),
            None,
            &["check", s.to_str().unwrap()],
        );
        assert_eq!(run.status.code(), Some(3), "{}", run.describe());
        assert!(run.stderr.contains("x.rhai:3:"), "{}", run.describe());
        assert!(run.stderr.contains(why), "{what}: {}", run.describe());
    }
}

/// The three mistakes a shared script must not survive silently, each a
/// located error and a non-zero exit, in `check` and in `run`.
#[test]
fn misspellings_end_with_a_located_error() {
    let dir = TempDir::new("typos");
    let field = dir.write(
        "field.rhai",
        "//! name: field\nlet big = 100;\nprobe(\"skb.drop\").on_event(|e| if e.lenn > big { print(e.dev) });\n",
    );
    let agg = dir.write(
        "agg.rhai",
        "//! name: agg\nprobe(\"skb.drop\").count(\"drops\", [\"reason\"]);\nevery(\"1s\", || print_delta(\"dorps\"));\n",
    );
    let param = dir.write(
        "param.rhai",
        "//! name: param\n//! param: streams=16  TCP_RR streams\nlet n = param(\"streams\");\nprobe(\"skb.drop\").count(\"drops\");\n",
    );
    let cases: [(&Path, &[&str], &str, &str); 3] = [
        (
            &field,
            &[],
            r"field\.rhai:3:37: ",
            "`skb.drop` events have no field `lenn`; did you mean `len`?",
        ),
        (
            &agg,
            &[],
            r"agg\.rhai:3:28: ",
            "print_delta: no aggregation named `dorps`; did you mean `drops`?",
        ),
        (
            &param,
            &["-p", "stream=4"],
            r"param\.rhai:2:1: ",
            "-p stream=4: no parameter `stream`; did you mean `streams`?",
        ),
    ];
    for (path, extra, at, what) in cases {
        let mut args = vec!["check", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = vprobe_in(dir.path(), dir.path(), None, &args);
        assert_eq!(run.status.code(), Some(3), "{}", run.describe());
        let re =
            regex_lite::Regex::new(&format!("{at}error: {}", regex_lite::escape(what))).unwrap();
        assert!(
            re.is_match(&run.stderr),
            "check: {what}\n{}",
            run.describe()
        );
    }
    // `-p` is refused when the script compiles: before privileges, before attaching
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["run", param.to_str().unwrap(), "-p", "stream=4"],
    );
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains(
            "param.rhai:2:1: -p stream=4: no parameter `stream`; did you mean `streams`?"
        ),
        "{}",
        run.describe()
    );
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["run", param.to_str().unwrap(), "-p", "streams="],
    );
    assert!(
        run.stderr.contains("-p streams=: empty value"),
        "{}",
        run.describe()
    );
    if !util::root_or_skip("scripts::misspellings_end_with_a_located_error") {
        return;
    }
    let _k = util::kernel_lock();
    for (path, _, at, what) in cases.iter().take(2) {
        let run = vprobe_in(
            dir.path(),
            dir.path(),
            None,
            &["run", path.to_str().unwrap(), "-d", "1s", "-f", "json"],
        );
        assert_eq!(run.status.code(), Some(3), "{}", run.describe());
        let re = regex_lite::Regex::new(&format!("{at}{}", regex_lite::escape(what))).unwrap();
        assert!(re.is_match(&run.stderr), "run: {what}\n{}", run.describe());
        assert!(
            !run.stdout.contains("\"start\""),
            "attached anyway\n{}",
            run.describe()
        );
    }
}

/// A field read under a name made at run time is not known before; each
/// event that reads it is a located, counted, reported error.
#[test]
fn a_missing_event_field_is_counted_and_reported_at_run_time() {
    if !util::root_or_skip("scripts::a_missing_event_field_is_counted_and_reported_at_run_time") {
        return;
    }
    let _k = util::kernel_lock();
    let dir = TempDir::new("field-run");
    let s = dir.write(
        "dyn.rhai",
        "let f = \"le\" + \"nn\";\nlet seen = 0;\n\
         probe(\"dev.xmit\").filter(\"netns\", lab().netns).on_event(|e| { seen += 1; print(e[f]); });\n",
    );
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &[
            "run",
            s.to_str().unwrap(),
            "--lab",
            "veth",
            "--load",
            "tcp_rr:streams=1,duration=1s",
            "-f",
            "json",
        ],
    );
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = lines
        .iter()
        .find(|v| v["type"] == "summary")
        .unwrap_or_else(|| panic!("{}", run.describe()));
    let errors = summary["lost"]["callback_errors"].as_u64().unwrap();
    assert!(errors > 0, "no callback error counted\n{}", run.describe());
    let shown = lines
        .iter()
        .find(|v| v["type"] == "error")
        .unwrap_or_else(|| panic!("no error line\n{}", run.describe()));
    let msg = shown["message"].as_str().unwrap();
    assert!(
        msg.contains("dyn.rhai:3:")
            && msg.contains("`dev.xmit` events have no field `lenn`; did you mean `len`?"),
        "{msg}"
    );
}

#[test]
fn check_json_gives_file_line_column_message_and_suggestion() {
    let dir = TempDir::new("json");
    let s = dir.write(
        "two.rhai",
        "//! name: two\n//! param: n=1  a number\nlet n = param(\"n\");\nlet p = probe(\"skb.drop\");\np.filter(\"dev\", \"x\");\n\
         p.count(\"drops\");\non_end(|| print(total(\"dropz\")));\n",
    );
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["check", s.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    let v: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.describe()));
    let found = v.as_array().expect("an array");
    assert_eq!(found.len(), 2, "{v}");
    let file = s.to_str().unwrap();
    assert_eq!(found[0]["file"], file);
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(found[0]["severity"], "error");
    assert!(found[0]["message"]
        .as_str()
        .unwrap()
        .contains("the result of `.filter(..)` is dropped"));
    assert_eq!(found[0]["suggestion"], Value::Null);
    assert_eq!(
        (found[1]["line"].as_u64(), found[1]["column"].as_u64()),
        (Some(7), Some(23))
    );
    assert_eq!(found[1]["suggestion"], "drops");
    // a clean script is an empty array and exit 0
    let ok = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["check", "drops_by_reason", "-f", "json"],
    );
    assert!(ok.status.success(), "{}", ok.describe());
    assert_eq!(ok.stdout.trim(), "[]");
    // a script that is not there is a finding too
    let none = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["check", "drops_by_reasn", "-f", "json"],
    );
    assert_eq!(none.status.code(), Some(2));
    let v: Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(v[0]["suggestion"], "drops_by_reason", "{v}");
}

#[test]
fn show_and_run_help_print_the_contract() {
    let dir = TempDir::new("show");
    for args in [
        &["scripts", "show", "macvtap_drops"][..],
        &["run", "macvtap_drops", "--help"],
    ] {
        let run = vprobe_in(dir.path(), dir.path(), None, args);
        assert!(run.status.success(), "{}", run.describe());
        let out = &run.stdout;
        let first = format!("macvtap_drops {} (built-in)", seed_version());
        assert!(out.starts_with(&first), "{out}");
        assert!(out.contains("The seed case"), "{out}");
        let streams = out
            .lines()
            .find(|l| l.contains("-p streams=16"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(
            streams.contains("integer") && streams.contains("TCP_RR streams"),
            "{streams}"
        );
        assert!(
            out.lines()
                .any(|l| l.contains("-p duration=10s") && l.contains("duration")),
            "{out}"
        );
        assert!(
            out.contains("Attach points:") && out.contains("macvtap.drop"),
            "{out}"
        );
        // whether this kernel has them: checked as root, said so otherwise
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with("tcp.retransmit"))
            .unwrap();
        if util::is_root() {
            assert!(line.contains(" yes "), "{line}");
        } else {
            assert!(line.contains("not checked"), "{line}");
        }
    }
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["scripts", "show", "macvtap_drops", "-f", "json"],
    );
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["params"][1]["name"], "streams");
    assert_eq!(v["params"][1]["type"], "integer");
    assert_eq!(v["params"][1]["default"], "16");
    // without a script, `run --help` is the command's own help
    let run = vprobe_in(dir.path(), dir.path(), None, &["run", "--help"]);
    assert!(
        run.status.success() && run.stdout.contains("--duration"),
        "{}",
        run.describe()
    );
}

/// What the header requires and this host lacks stops a run at the header
/// line that says so, before anything attaches; `show` says it too.
#[test]
fn a_requirement_this_host_lacks_stops_the_run_at_its_header_line() {
    let dir = TempDir::new("requires");
    let s = dir.write(
        "req.rhai",
        "//! name: req\n//! version: 1.0\n//! requires: vprobe >= 0.1, skb.drop\n//! requires: tracepoint:vprobe_none:nothing\n\
         probe(\"skb.drop\").count(\"drops\");\n",
    );
    let path = s.to_str().unwrap();
    // the header is well formed: check has nothing to say without running it here
    let run = vprobe_in(dir.path(), dir.path(), None, &["check", path]);
    assert!(run.status.success(), "{}", run.describe());
    let too_new = dir.write(
        "new.rhai",
        "//! name: new\n//! requires: vprobe >= 99\nprint(1);\n",
    );
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["check", too_new.to_str().unwrap()],
    );
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr
            .contains("new.rhai:2:1: error: the script needs vprobe >= 99"),
        "{}",
        run.describe()
    );
    if !util::root_or_skip(
        "scripts::a_requirement_this_host_lacks_stops_the_run_at_its_header_line",
    ) {
        return;
    }
    let _k = util::kernel_lock();
    let run = vprobe_in(
        dir.path(),
        dir.path(),
        None,
        &["run", path, "-d", "1s", "-f", "json"],
    );
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("req.rhai:4:1: the script requires `tracepoint:vprobe_none:nothing`, which this host does not have"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("\"start\""),
        "attached anyway\n{}",
        run.describe()
    );
    let show = vprobe_in(dir.path(), dir.path(), None, &["scripts", "show", path]);
    assert!(
        show.stdout
            .lines()
            .any(|l| l.contains("skb.drop") && l.contains(" yes ")),
        "{}",
        show.describe()
    );
}
