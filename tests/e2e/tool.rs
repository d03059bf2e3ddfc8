//! vprobe as a Unix tool: which stream each kind of message goes to, each
//! documented exit status, output errors (a full disk, a closed pipe) that
//! end cleanly, SIGHUP, `list` globs, shell completions and the man page.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::util::{self, Run, Session, TempDir, VPROBE};

const QUICK: Duration = Duration::from_secs(30);

/// Runs vprobe with its stdout going to `stdout` (a file, /dev/full, a
/// pipe nobody reads); stderr is collected.
fn run_into(args: &[&str], stdout: Stdio, env: &[(&str, &str)]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(VPROBE)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {VPROBE}: {e}"));
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + QUICK;
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break (st, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().expect("wait"), true);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        what: format!("vprobe {args:?}"),
        status,
        stdout: String::new(),
        stderr: reader.join().unwrap_or_default(),
        timed_out,
    }
}

/// A pipe whose reading end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Stdio::from(write)
}

fn dev_full() -> Stdio {
    Stdio::from(
        File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// The stderr lines that start with `vprobe: `.
fn notes(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("vprobe: "))
        .collect()
}

/// A run ending in a failing callback every 200 ms, as one-liner args.
const FAILING: &str = r#"probe("skb.drop").count("d", ["reason"]); every("200ms", || { print("tick"); let z = 0; print(1 / z); });"#;

// Regression: in text mode `Attached 2 probes…`, `Running for …` and the
// callback errors went to stdout with the data, the error repeated every tick,
// and a run with failing callbacks exited 0.
#[test]
fn each_kind_of_message_goes_to_its_stream() {
    if !util::root_or_skip("tool::each_kind_of_message_goes_to_its_stream") {
        return;
    }
    let _k = util::kernel_lock();
    let run = util::vprobe(&["-e", FAILING, "-d", "1500ms"], QUICK);
    run.assert_no_panic();
    // a script error: its callbacks failed
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    // data: the prints and the summary, nothing else
    assert!(
        run.stdout.matches("tick").count() >= 3,
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.contains("\nduration: ") && run.stdout.contains("callback_errors="),
        "{}",
        run.describe()
    );
    for not_data in ["vprobe:", "attached", "division by zero", "Ctrl-C"] {
        assert!(
            !run.stdout.contains(not_data),
            "`{not_data}` in stdout\n{}",
            run.describe()
        );
    }
    // notes and errors: what was attached once, the error once, the verdict
    let notes = notes(&run);
    assert!(
        notes[0].starts_with("vprobe: attached skb.drop via ")
            && notes[0].ends_with("; running for 1.5s"),
        "{}",
        run.describe()
    );
    assert_eq!(
        notes
            .iter()
            .filter(|l| l.contains("division by zero"))
            .count(),
        1,
        "the same callback error is shown once\n{}",
        run.describe()
    );
    assert!(
        notes.last().is_some_and(|l| l.contains("callback errors")),
        "{}",
        run.describe()
    );
    assert_eq!(
        run.stderr.lines().count(),
        notes.len(),
        "{}",
        run.describe()
    );

    // -q: data and errors only
    let quiet = util::vprobe(&["-q", "-e", FAILING, "-d", "700ms"], QUICK);
    assert_eq!(quiet.status.code(), Some(3), "{}", quiet.describe());
    assert!(!quiet.stderr.contains("attached"), "{}", quiet.describe());
    assert!(
        quiet.stderr.contains("division by zero"),
        "{}",
        quiet.describe()
    );

    // -o FILE: the data there, nothing on stdout
    let dir = TempDir::new("tool-o");
    let out = dir.path().join("out.txt");
    let to_file = util::vprobe(
        &["-e", FAILING, "-d", "700ms", "-o", out.to_str().unwrap()],
        QUICK,
    );
    assert_eq!(to_file.status.code(), Some(3), "{}", to_file.describe());
    assert!(to_file.stdout.is_empty(), "{}", to_file.describe());
    let data = std::fs::read_to_string(&out).unwrap();
    assert!(
        data.contains("tick") && data.contains("duration: "),
        "{data}"
    );
}

// Regression: two long "fell back" lines per probe instance, even when the
// mechanism used was fine; now one compact line, the reasons with -v.
#[test]
fn fallback_reasons_only_with_verbose() {
    if !util::root_or_skip("tool::fallback_reasons_only_with_verbose") {
        return;
    }
    let _k = util::kernel_lock();
    let script = r#"probe("skb.drop").count("a", []); probe("skb.drop").count("b", ["reason"]);"#;
    let args = ["-e", script, "-d", "300ms", "--disable-mechanism", "tp_btf"];
    let run = util::vprobe(&args, QUICK);
    assert!(run.status.success(), "{}", run.describe());
    let notes = notes(&run);
    assert_eq!(notes.len(), 2, "{}", run.describe());
    assert!(
        notes[0].contains("skb.drop via ") && notes[0].contains("→ a, b"),
        "one attach point, named once\n{}",
        run.describe()
    );
    assert_eq!(
        notes[1],
        "vprobe: skb.drop: 1 preferred mechanism does not work here (-v says why)"
    );
    let verbose = util::vprobe(&[&["-v"][..], &args].concat(), QUICK);
    assert!(
        verbose
            .stderr
            .contains("vprobe: skb.drop fell back: tp_btf/kfree_skb is disabled by request"),
        "{}",
        verbose.describe()
    );
    assert!(
        !verbose.stdout.contains("fell back"),
        "{}",
        verbose.describe()
    );
}

/// The documented statuses, one case each (the README's and `--help`'s table).
#[test]
fn each_documented_exit_status() {
    let dir = TempDir::new("tool-status");
    let bad = dir.write("bad.rhai", "probe(\"skb.dorp\").count(\"d\");\n");
    let status = |args: &[&str]| {
        let run = util::vprobe(args, QUICK);
        run.assert_no_panic();
        (run.status.code(), run)
    };
    // 2: usage
    for args in [
        &["--nope"][..],
        &["run", "/nonexistent/vprobe-e2e.rhai"],
        &["list", "-o", "/nonexistent-dir/out.txt"],
        &["list", "--json", "--format", "text"],
        &["-d", "1s", "list"],
    ] {
        let (code, run) = status(args);
        assert_eq!(code, Some(2), "{}", run.describe());
    }
    // 3: script error
    let (code, run) = status(&["check", bad.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{}", run.describe());
    // 1: the answer is no; stdout stays empty, the note goes to stderr
    let (code, run) = status(&["list", "nosuch-vprobe"]);
    assert_eq!(code, Some(1), "{}", run.describe());
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert!(
        run.stderr
            .contains("no attach point matches `nosuch-vprobe`"),
        "{}",
        run.describe()
    );
    if !util::root_or_skip("tool::each_documented_exit_status (the runs)") {
        return;
    }
    // a script's verdict and its own statuses
    for (script, want) in [
        ("verdict(true);", 0),
        ("verdict(false);", 1),
        ("verdict(true); verdict(false); verdict(true);", 1),
        ("verdict(false); exit(0);", 0),
        ("exit(1);", 1),
        ("exit(13);", 13),
        ("exit(125);", 125),
        // the statuses a script cannot take: a located script error
        ("exit(300);", 3),
        ("exit(-1);", 3),
        ("exit(4);", 3),
    ] {
        let (code, run) = status(&["-e", script]);
        assert_eq!(code, Some(want), "{script}\n{}", run.describe());
        if want == 3 {
            assert!(
                run.stderr.contains("<expr>:1:") && run.stderr.contains("exit status"),
                "{}",
                run.describe()
            );
        }
    }
    // --plot is checked before anything attaches: a bad path, no tcp_rr
    let plot = dir.path().join("p.svg");
    for (plot, says) in [
        (
            "/nonexistent-dir/p.svg",
            "cannot write /nonexistent-dir/p.svg",
        ),
        (plot.to_str().unwrap(), "this run has none"),
    ] {
        let started = Instant::now();
        let (code, run) = status(&[
            "-e",
            r#"probe("skb.drop").count("d");"#,
            "-d",
            "20s",
            "--plot",
            plot,
        ]);
        assert_eq!(code, Some(2), "{}", run.describe());
        assert!(run.stderr.contains(says), "{}", run.describe());
        assert!(!run.stderr.contains("attached"), "{}", run.describe());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            run.describe()
        );
    }
    assert!(!plot.exists(), "an unused plot file is not left behind");
}

// Regression: `check`, `lab status` and others panicked ("failed printing to
// stdout", status 101) into /dev/full or a closed pipe.
#[test]
fn output_errors_end_cleanly() {
    let state = TempDir::new("tool-state");
    let env = [("VPROBE_STATE_DIR", state.path().to_str().unwrap())];
    let script = util::repo_root().join("scripts/drops_by_reason.rhai");
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["check", script.to_str().unwrap()],
        vec!["list"],
        vec!["doctor"],
        vec!["lab", "status", "--json"],
        vec!["completions", "bash"],
        vec!["man"],
    ];
    let run_script = r#"probe("skb.drop").count("d"); every("100ms", || print("tick"));"#;
    if util::root_or_skip("tool::output_errors_end_cleanly (run)") {
        commands.push(vec!["-e", run_script, "-d", "3s"]);
        commands.push(vec!["-e", run_script, "-d", "3s", "-f", "json"]);
    }
    let _k = util::kernel_lock();
    for args in &commands {
        let full = run_into(args, dev_full(), &env);
        full.assert_no_panic();
        assert_eq!(full.status.code(), Some(5), "{}", full.describe());
        let said: Vec<&str> = full
            .stderr
            .lines()
            .filter(|l| l.contains("No space left on device"))
            .collect();
        assert_eq!(
            said,
            ["vprobe: cannot write to stdout: No space left on device (os error 28)"],
            "one message\n{}",
            full.describe()
        );
        // a reader that went away is a normal end, said nothing about
        let closed = run_into(args, closed_pipe(), &env);
        closed.assert_no_panic();
        assert_eq!(closed.status.code(), Some(0), "{}", closed.describe());
        assert!(
            !closed.stderr.to_lowercase().contains("pipe"),
            "{}",
            closed.describe()
        );
    }
}

// Regression: SIGHUP killed a run with status 129 and no summary.
#[test]
fn sighup_ends_a_run_with_its_summary() {
    if !util::root_or_skip("tool::sighup_ends_a_run_with_its_summary") {
        return;
    }
    let _k = util::kernel_lock();
    let mut s = Session::spawn(&[
        "-e",
        r#"probe("skb.drop").count("d", ["reason"]);"#,
        "-f",
        "json",
    ]);
    s.wait_start();
    s.signal(Signal::SIGHUP);
    let f = s.finish();
    f.assert_success();
    assert!(f.summary()["maps"]["d"].is_object(), "{}", f.describe());
}

// Regression: `list 'tracepoint:net:*'` was refused (bpftrace lists them).
#[test]
fn list_globs_over_tracepoints_and_kernel_functions() {
    if !util::root_or_skip("tool::list_globs_over_tracepoints_and_kernel_functions") {
        return;
    }
    let run = util::vprobe(&["list", "tracepoint:net:*"], QUICK);
    assert!(run.status.success(), "{}", run.describe());
    let names: Vec<&str> = run.stdout.lines().collect();
    assert!(
        names.contains(&"tracepoint:net:net_dev_queue"),
        "{}",
        run.describe()
    );
    assert!(
        names.iter().all(|n| n.starts_with("tracepoint:net:")),
        "{}",
        run.describe()
    );
    let run = util::vprobe(&["list", "tracepoint:*:net_dev_*", "--json"], QUICK);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "tracepoint:net:net_dev_xmit"),
        "{}",
        run.describe()
    );
    let run = util::vprobe(&["list", "kprobe:tcp_retransmit_s*"], QUICK);
    assert!(run.status.success(), "{}", run.describe());
    assert!(
        run.stdout.lines().any(|l| l == "kprobe:tcp_retransmit_skb"),
        "{}",
        run.describe()
    );
    let run = util::vprobe(&["list", "skb.*"], QUICK);
    assert!(
        run.stdout.starts_with("skb.drop "),
        "catalog globs\n{}",
        run.describe()
    );
    let none = util::vprobe(&["list", "tracepoint:nosuch_vprobe:*"], QUICK);
    assert_eq!(none.status.code(), Some(1), "{}", none.describe());
}

#[test]
fn completions_are_generated_for_each_shell() {
    let run = util::vprobe(&["completions", "bash"], QUICK);
    assert!(run.status.success(), "{}", run.describe());
    let dir = TempDir::new("tool-completions");
    let path = dir.write("vprobe.bash", &run.stdout);
    // it loads, and completes subcommands and flags
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#"source {} && complete -p vprobe &&
               COMP_WORDS=(vprobe l); COMP_CWORD=1; _vprobe vprobe l vprobe; echo "${{COMPREPLY[@]}}";
               COMP_WORDS=(vprobe list --fo); COMP_CWORD=2; _vprobe vprobe --fo list; echo "${{COMPREPLY[@]}}""#,
            path.display()
        ))
        .output()
        .expect("bash");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].ends_with(" vprobe"), "{said}");
    assert!(
        lines[1].contains("list") && lines[1].contains("lab"),
        "{said}"
    );
    assert_eq!(lines[2], "--format", "{said}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = util::vprobe(&["completions", shell], QUICK);
        assert!(run.status.success(), "{}", run.describe());
        assert!(
            run.stdout.contains("completions") || run.stdout.contains("lab"),
            "{shell}"
        );
    }
    let bad = util::vprobe(&["completions", "tcsh"], QUICK);
    assert_eq!(bad.status.code(), Some(2), "{}", bad.describe());
}

#[test]
fn the_man_page_renders_with_every_status() {
    let run = util::vprobe(&["man"], QUICK);
    assert!(run.status.success(), "{}", run.describe());
    let page = &run.stdout;
    assert!(page.contains(".TH vprobe 1"), "{page}");
    assert!(page.is_ascii(), "roff escapes, not raw UTF-8");
    let dir = TempDir::new("tool-man");
    let path = dir.write("vprobe.1", page);
    // troff's own check: no warnings, and the sections are there
    let out = Command::new("groff")
        // -P-cbou: plain text, no overstriking for bold and underline
        .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
        .arg(&path)
        .output()
        .expect("groff (Debian groff-base)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "troff warnings");
    for want in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "--quiet",
        "completions",
    ] {
        assert!(text.contains(want), "`{want}` missing\n{text}");
    }
    let statuses = text.split("EXIT STATUS").nth(1).unwrap_or_default();
    for code in ["0", "1", "2", "3", "4", "5", "10-125"] {
        assert!(
            statuses.lines().any(|l| l.trim_start().starts_with(code)),
            "status {code}\n{text}"
        );
    }
    // one page per subcommand
    let pages = TempDir::new("tool-man-dir");
    let run = util::vprobe(&["man", "--dir", pages.path().to_str().unwrap()], QUICK);
    assert!(run.status.success(), "{}", run.describe());
    for name in [
        "vprobe.1",
        "vprobe-run.1",
        "vprobe-list.1",
        "vprobe-lab-up.1",
        "vprobe-completions.1",
    ] {
        assert!(pages.path().join(name).is_file(), "{name}");
    }
}

/// `vprobe --help` and the README list the same exit statuses.
#[test]
fn the_readme_documents_every_exit_status() {
    let help = util::vprobe(&["--help"], QUICK);
    let readme = std::fs::read_to_string(util::repo_root().join("README.md")).unwrap();
    let codes: Vec<&str> = help
        .stdout
        .split("Exit status:")
        .nth(1)
        .expect("an exit status table in --help")
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .filter(|c| c.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(
        codes,
        ["0", "1", "2", "3", "4", "5", "10-125"],
        "{}",
        help.stdout
    );
    for c in codes {
        assert!(
            readme.contains(&format!("| `{c}` |")),
            "README lacks status {c}"
        );
    }
}

// The seed case into a file: only data there (the issue's acceptance test),
// and the status follows the script's verdict.
#[test]
fn the_seed_run_leaves_only_data_on_stdout() {
    if !util::root_or_skip("tool::the_seed_run_leaves_only_data_on_stdout") {
        return;
    }
    let _k = util::kernel_lock();
    let script = util::repo_root().join("scripts/macvtap_drops.rhai");
    let run = util::vprobe(
        &[
            "run",
            script.to_str().unwrap(),
            "--lab",
            "macvtap",
            "-p",
            "duration=3s",
        ],
        Duration::from_secs(60),
    );
    run.assert_no_panic();
    let matched = run.stdout.contains("\nmatch: true\n");
    assert!(
        matched || run.stdout.contains("\nmatch: false\n"),
        "{}",
        run.describe()
    );
    // a verdict: 0 when the numbers match, 1 when not
    assert_eq!(
        run.status.code(),
        Some(if matched { 0 } else { 1 }),
        "{}",
        run.describe()
    );
    for data in [
        "@macvtap_drops",
        "workload rr:",
        "@latency_ms",
        "≥ 200 ms",
        "duration: ",
    ] {
        assert!(run.stdout.contains(data), "`{data}`\n{}", run.describe());
    }
    for not_data in [
        "vprobe:",
        "attached",
        "lab macvtap",
        "ended:",
        "fell back",
        "Ctrl-C",
        "[128K",
    ] {
        assert!(
            !run.stdout.contains(not_data),
            "`{not_data}` in stdout\n{}",
            run.describe()
        );
    }
    // each fact once: the verdict line, and the attach point in the notes
    assert_eq!(
        run.stdout.matches("match: ").count(),
        1,
        "{}",
        run.describe()
    );
    let attached: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("attached"))
        .collect();
    assert_eq!(attached.len(), 1, "{}", run.describe());
    assert_eq!(
        attached[0].matches("macvtap.drop").count(),
        1,
        "{}",
        run.describe()
    );
    assert!(
        run.stderr.contains("vprobe: lab macvtap"),
        "{}",
        run.describe()
    );
}
