//! The command line without the kernel: `check` errors located at
//! `file:line:col`, `list --json`, missing files, the message an unprivileged
//! user gets, `--help`, and the README's scripts. None needs root except the
//! unprivileged check, which switches to `nobody` when run as root.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::util::{self, Run, TempDir, VPROBE};

const QUICK: Duration = Duration::from_secs(30);

/// Writes `text` as `name`, runs `vprobe check` on it, and checks that it
/// fails with exit status 3 (script error) and a message located at
/// `name:line:COL`.
fn check_fails_at(name: &str, text: &str, line: usize) -> Run {
    let dir = TempDir::new("check");
    let path = dir.write(name, text);
    let run = util::vprobe(&["check", path.to_str().unwrap()], QUICK);
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
    let want =
        regex_lite::Regex::new(&format!(r"{}:{line}:\d+", regex_lite::escape(name))).unwrap();
    assert!(
        want.is_match(&run.stderr),
        "stderr lacks `{name}:{line}:COL`\n{}",
        run.describe()
    );
    run
}

#[test]
fn check_reports_a_syntax_error_with_its_position() {
    check_fails_at(
        "syntax.rhai",
        "// a comment\nprobe(\"skb.drop\").count(\"drops\", [\"reason\"]);\nlet x = ;\n",
        3,
    );
}

#[test]
fn check_suggests_the_probe_meant() {
    let run = check_fails_at(
        "typo.rhai",
        "// counts drops\nprobe(\"skb.dorp\").count(\"drops\", [\"reason\"]);\n",
        2,
    );
    assert!(run.stderr.contains("did you mean"), "{}", run.describe());
    assert!(run.stderr.contains("skb.drop"), "{}", run.describe());
}

#[test]
fn check_rejects_an_unknown_key_field() {
    let run = check_fails_at(
        "key.rhai",
        "let p = probe(\"skb.drop\");\n\np.count(\"drops\", [\"reasn\"]);\n",
        3,
    );
    assert!(run.stderr.contains("reasn"), "{}", run.describe());
}

#[test]
fn check_rejects_an_unknown_filter_field() {
    let run = check_fails_at(
        "filter_field.rhai",
        "probe(\"tcp.retransmit\")\n    .filter(\"dprot\", 80)\n    .count(\"retx\", [\"daddr\"]);\n",
        2,
    );
    assert!(run.stderr.contains("dprot"), "{}", run.describe());
}

#[test]
fn check_rejects_a_filter_value_of_the_wrong_type() {
    let run = check_fails_at(
        "filter_type.rhai",
        "// len is a number\n\n\nprobe(\"skb.drop\").filter(\"len\", \"big\").count(\"drops\", [\"reason\"]);\n",
        4,
    );
    assert!(run.stderr.contains("len"), "{}", run.describe());
}

#[test]
fn check_accepts_the_shipped_scripts() {
    let dir = util::repo_root().join("scripts");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("scripts/") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "rhai") {
            let run = util::vprobe(&["check", p.to_str().unwrap()], QUICK);
            run.assert_no_panic();
            assert!(run.status.success(), "{}", run.describe());
            n += 1;
        }
    }
    assert!(n > 0, "no scripts in {}", dir.display());
}

#[test]
fn list_json_is_an_array_with_skb_drop() {
    // As root, list loads a test program per attach point.
    let _k = util::kernel_lock();
    let run = util::vprobe(&["list", "--json"], QUICK);
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", run.describe()));
    let names = probe_names(&v);
    for want in [
        "skb.drop",
        "tcp.retransmit",
        "dev.rx",
        "dev.xmit",
        "dev.queue",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
}

#[test]
fn list_pattern_narrows_the_list() {
    let _k = util::kernel_lock();
    let run = util::vprobe(&["list", "tcp", "--json"], QUICK);
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let names = probe_names(&v);
    assert!(names.iter().any(|n| n == "tcp.retransmit"), "{names:?}");
    assert!(names.iter().all(|n| n.contains("tcp")), "{names:?}");
}

/// The `name` of each element of `list --json`'s array.
fn probe_names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("list --json is not an array: {v}"))
        .iter()
        .map(|p| match p {
            Value::String(s) => s.clone(),
            _ => p["name"]
                .as_str()
                .unwrap_or_else(|| panic!("element without a name: {p}"))
                .to_string(),
        })
        .collect()
}

#[test]
fn run_of_a_missing_file_fails_cleanly() {
    let run = util::vprobe(&["run", "/nonexistent/vprobe-e2e.rhai"], QUICK);
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(2), "{}", run.describe());
    assert!(
        run.stderr.contains("vprobe-e2e.rhai"),
        "the message should name the file\n{}",
        run.describe()
    );
}

#[test]
fn check_of_a_missing_file_fails_cleanly() {
    let run = util::vprobe(&["check", "/nonexistent/vprobe-e2e.rhai"], QUICK);
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(2), "{}", run.describe());
}

// Regression: `vprobe check /dev/zero` grew to 4 GB in 15 s, and a FIFO
// blocked `check` until something wrote to it.
#[test]
fn what_is_not_a_script_file_is_refused_at_once() {
    let dir = TempDir::new("notfile");
    let fifo = dir.path().join("fifo.rhai");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let big = dir.write("big.rhai", &" ".repeat(2 << 20));
    let cases = [
        ("/dev/zero", "it is a character device, not a regular file"),
        (fifo.to_str().unwrap(), "it is a FIFO, not a regular file"),
        (big.to_str().unwrap(), "larger than 1048576 bytes"),
        (
            dir.path().to_str().unwrap(),
            "it is a directory, not a regular file",
        ),
    ];
    for (path, why) in cases {
        for cmd in ["check", "run"] {
            let run = util::vprobe(&[cmd, path], Duration::from_secs(10));
            run.assert_no_panic();
            assert_eq!(run.status.code(), Some(2), "{}", run.describe());
            assert!(
                run.stderr.contains(why) && run.stderr.contains(path),
                "`vprobe {cmd} {path}` should say `{why}`\n{}",
                run.describe()
            );
        }
    }
}

// Regression: `doctor` said "btf yes" when /sys/kernel/btf/vmlinux existed
// but could not be parsed (and then nothing could load).
#[test]
fn doctor_says_btf_no_when_it_does_not_parse() {
    if !util::root_or_skip("cli::doctor_says_btf_no_when_it_does_not_parse") {
        return;
    }
    let dir = TempDir::new("btf");
    let garbage = dir.write("vmlinux", "not BTF");
    // a private mount namespace: the host's BTF is untouched
    let script = format!(
        "mount --bind {} /sys/kernel/btf/vmlinux && exec {VPROBE} doctor --json",
        garbage.display()
    );
    let (out, timed_out) = util::output_within(
        Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]),
        QUICK,
    );
    let run = Run::from_output("doctor with broken BTF".into(), out, timed_out);
    run.assert_no_panic();
    // "this host cannot" (cli/src/exit.rs, Status::Unsupported)
    assert_eq!(run.status.code(), Some(4), "{}", run.describe());
    let v: Value = serde_json::from_str(&run.stdout).expect("doctor --json");
    let btf = v["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "btf"))
        .unwrap_or_else(|| panic!("no btf line\n{}", run.describe()));
    assert_eq!(btf["ok"], false, "{}", run.describe());
    assert!(
        btf["detail"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be parsed"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_bad_one_liner_fails_before_touching_the_kernel() {
    let run = util::vprobe(
        &["-e", "probe(\"skb.drop\").count(", "--duration", "1s"],
        QUICK,
    );
    run.assert_no_panic();
    assert_eq!(run.status.code(), Some(3), "{}", run.describe());
}

// Regression: `--disable-mechanism` took any string, so a misspelt kind such
// as `tp-btf` was silently ignored and the run used tp_btf anyway.
#[test]
fn an_unknown_mechanism_kind_is_a_usage_error() {
    let one_liner = ["-e", "probe(\"skb.drop\").count(\"d\", []);"];
    for args in [
        [&one_liner[..], &["--disable-mechanism", "tp-btf"]].concat(),
        vec![
            "run",
            "/nonexistent/vprobe-e2e.rhai",
            "--disable-mechanism",
            "kprobes",
        ],
        vec!["repl", "--disable-mechanism", "BTF"],
    ] {
        let run = util::vprobe(&args, QUICK);
        run.assert_no_panic();
        assert_eq!(run.status.code(), Some(2), "{}", run.describe());
        assert!(
            run.stderr.contains("invalid value")
                && run.stderr.contains(
                    "[possible values: tp_btf, raw_tracepoint, tracepoint, kprobe, fentry, uprobe]"
                ),
            "a usage error listing the kinds expected\n{}",
            run.describe()
        );
    }
}

#[test]
fn help_lists_the_subcommands() {
    let run = util::vprobe(&["--help"], QUICK);
    run.assert_no_panic();
    assert!(run.status.success(), "{}", run.describe());
    for sub in ["run", "check", "list", "doctor"] {
        assert!(
            run.stdout.contains(sub),
            "--help lacks `{sub}`\n{}",
            run.describe()
        );
    }
}

/// Without privileges a run must say what is missing, not fail obscurely.
#[test]
fn an_unprivileged_run_says_what_is_missing() {
    let dir = TempDir::new("nobody");
    let run = if util::is_root() {
        // A copy that `nobody` can reach whatever the checkout's permissions.
        let bin = dir.path().join("vprobe");
        std::fs::copy(VPROBE, &bin).expect("copy vprobe");
        let (out, timed_out) = util::output_within(
            Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                ])
                .arg(&bin)
                .args([
                    "-e",
                    r#"probe("skb.drop").count("drops", ["reason"]);"#,
                    "--duration",
                    "1s",
                    "--format",
                    "json",
                ])
                .current_dir(dir.path()),
            QUICK,
        );
        Run::from_output("setpriv nobody vprobe -e …".into(), out, timed_out)
    } else {
        util::vprobe(
            &[
                "-e",
                r#"probe("skb.drop").count("drops", ["reason"]);"#,
                "--duration",
                "1s",
            ],
            QUICK,
        )
    };
    run.assert_no_panic();
    // 4: this host (this user) cannot
    assert_eq!(
        run.status.code(),
        Some(4),
        "ran without privileges?\n{}",
        run.describe()
    );
    let says = regex_lite::Regex::new(r"(?i)\broot\b|CAP_BPF").unwrap();
    assert!(
        says.is_match(&run.stderr),
        "the message should name root or CAP_BPF\n{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("\"start\""),
        "claimed to have attached\n{}",
        run.describe()
    );
}

/// Every Rhai script the README shows (`-e '…'` one-liners and ```rhai
/// blocks) passes `vprobe check`, so the tour runs as written.
#[test]
fn readme_scripts_pass_check() {
    let readme = std::fs::read_to_string(util::repo_root().join("README.md")).expect("README.md");
    let scripts = readme_scripts(&readme);
    assert!(!scripts.is_empty(), "found no script in README.md");
    let dir = TempDir::new("readme");
    for (i, s) in scripts.iter().enumerate() {
        let path = dir.write(&format!("readme{i}.rhai"), s);
        let run = util::vprobe(&["check", path.to_str().unwrap()], QUICK);
        run.assert_no_panic();
        assert!(
            run.status.success(),
            "README script:\n{s}\n{}",
            run.describe()
        );
    }
}

/// The scripts in a README: the single-quoted argument of each `-e` (which
/// may span lines) and every ```rhai block.
fn readme_scripts(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(i) = rest.find("-e '") {
        let after = &rest[i + 4..];
        let Some(j) = after.find('\'') else { break };
        out.push(after[..j].to_string());
        rest = &after[j + 1..];
    }
    let mut rest = md;
    while let Some(i) = rest.find("```rhai\n") {
        let after = &rest[i + 8..];
        let Some(j) = after.find("```") else { break };
        out.push(after[..j].to_string());
        rest = &after[j + 3..];
    }
    out
}

#[test]
fn readme_script_extraction() {
    let md = "x\n```sh\nvprobe -e 'probe(\"a\")\n  .count(\"b\", []);' -d 1s\n```\n```rhai\nlet a = 1;\n```\n";
    assert_eq!(
        readme_scripts(md),
        vec![
            "probe(\"a\")\n  .count(\"b\", []);".to_string(),
            "let a = 1;\n".to_string()
        ]
    );
}

/// The repository's top-level entries a doc may name a path under.
const TOP: &[&str] = &[
    "time",
    "probes",
    "lab",
    "load",
    "engine",
    "cli",
    "scripts",
    "tests",
    "bench",
    "docs",
    "deploy",
    "third_party",
    ".ci",
];

/// The repo-relative paths a markdown text names: `code spans` that start with a
/// top-level entry, and links relative to the document. Patterns (`<object>`,
/// `*`) name no single file and are skipped.
fn named_paths(doc: &std::path::Path, text: &str) -> Vec<std::path::PathBuf> {
    let root = util::repo_root();
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let first = span.split('/').next().unwrap_or("");
        if span.contains('/')
            && TOP.contains(&first)
            && !span.contains(['<', '*', ' ', '{'])
            && !span.contains("..")
        {
            out.push(root.join(span.split(':').next().unwrap()));
        }
    }
    let link = regex_lite::Regex::new(r"\]\(([^)#:]+)(#[^)]*)?\)").unwrap();
    for c in link.captures_iter(text) {
        out.push(doc.parent().unwrap().join(&c[1]));
    }
    out
}

#[test]
fn docs_name_only_paths_that_exist() {
    let root = util::repo_root();
    let arch = root.join("docs/ARCHITECTURE.md");
    assert!(
        arch.is_file(),
        "docs/ARCHITECTURE.md is the map a newcomer reads first"
    );
    let mut missing = Vec::new();
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(root.join("README.md"));
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for p in named_paths(doc, &text) {
            if !p.exists() {
                missing.push(format!("{} names {}", doc.display(), p.display()));
            }
        }
    }
    // Code cites the design notes by file: those files must be there.
    let cite = regex_lite::Regex::new(r"docs/[A-Za-z_]+\.md").unwrap();
    let mut sources = vec![root.join("README.md")];
    for dir in [
        "engine/src",
        "cli/src",
        "probes/src",
        "lab/src",
        "load/src",
        "time/src",
    ] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    sources.push(p);
                }
            }
        }
    }
    for src in &sources {
        let text = std::fs::read_to_string(src).unwrap();
        for m in cite.find_iter(&text) {
            if !root.join(m.as_str()).is_file() {
                missing.push(format!("{} cites {}", src.display(), m.as_str()));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
