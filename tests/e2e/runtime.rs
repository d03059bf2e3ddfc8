//! The script runtime suites in `tests/runtime/*.test`, in the manner of
//! bpftrace's tests/runtime: small files of cases, one harness.
//!
//! A case is a block of `KEY value` lines, begun by `NAME`:
//!
//! ```text
//! # a comment
//! NAME count drops by reason
//! RUN {{VPROBE}} -e 'probe("skb.drop").count("d", ["reason"]);' -d 1s --format json
//! EXPECT_JSON /type = "summary"
//! REQUIRES root
//! ```
//!
//! - `RUN`: a `sh -c` command line. `{{VPROBE}}` is the binary under test,
//!   `{{DIR}}` the folder of the `.test` file, `{{ROOT}}` the repository.
//! - `EXPECT text`: stdout or stderr contains `text` (repeatable, all must hold).
//! - `EXPECT_REGEX re`: stdout or stderr matches `re` (multi-line mode).
//! - `EXPECT_JSON /pointer = value`: the last non-empty stdout line is JSON and
//!   the RFC 6901 pointer there equals the JSON `value`.
//! - `TIMEOUT seconds`: kill it after this long (default 10); a timeout fails.
//! - `REQUIRES root`: skipped, and said so, when not root (a failure in CI).
//! - `WILL_FAIL`: the exit status must be non-zero (otherwise it must be 0).
//!
//! Every case also fails if the output contains `panicked`.
//! `VPROBE_RUNTIME_FILTER=text` runs only the cases whose name contains `text`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::util::{self, Run};

#[derive(Debug, Default, PartialEq)]
pub struct Case {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
    pub run: String,
    pub expect: Vec<String>,
    pub expect_regex: Vec<String>,
    pub expect_json: Vec<(String, String)>,
    pub timeout: Option<u64>,
    pub requires: Vec<String>,
    pub will_fail: bool,
}

pub fn parse(file: &Path, text: &str) -> Result<Vec<Case>, String> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", file.display(), i + 1);
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        if key == "NAME" {
            cases.push(Case {
                name: value.to_string(),
                file: file.to_path_buf(),
                line: i + 1,
                ..Case::default()
            });
            continue;
        }
        let Some(case) = cases.last_mut() else {
            return Err(format!("{at}: `{key}` before the first NAME"));
        };
        match key {
            "RUN" => case.run = value.to_string(),
            "EXPECT" => case.expect.push(value.to_string()),
            "EXPECT_REGEX" => {
                regex_lite::Regex::new(value).map_err(|e| format!("{at}: bad regex: {e}"))?;
                case.expect_regex.push(value.to_string())
            }
            "EXPECT_JSON" => {
                let (ptr, want) = value
                    .split_once(" = ")
                    .ok_or_else(|| format!("{at}: expected `/pointer = value`"))?;
                serde_json::from_str::<Value>(want.trim())
                    .map_err(|e| format!("{at}: `{want}` is not JSON: {e}"))?;
                case.expect_json
                    .push((ptr.trim().to_string(), want.trim().to_string()));
            }
            "TIMEOUT" => {
                case.timeout = Some(
                    value
                        .parse()
                        .map_err(|e| format!("{at}: TIMEOUT `{value}`: {e}"))?,
                )
            }
            "REQUIRES" => case
                .requires
                .extend(value.split_whitespace().map(String::from)),
            "WILL_FAIL" => case.will_fail = true,
            _ => return Err(format!("{at}: unknown key `{key}`")),
        }
    }
    for c in &cases {
        if c.run.is_empty() {
            return Err(format!(
                "{}:{}: case `{}` has no RUN",
                c.file.display(),
                c.line,
                c.name
            ));
        }
    }
    Ok(cases)
}

enum Outcome {
    Pass,
    Skip(String),
    Fail(String),
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run_case(c: &Case) -> Outcome {
    for r in &c.requires {
        match r.as_str() {
            "root" if !util::is_root() => {
                if util::skips_are_failures() {
                    return Outcome::Fail("needs root (and skipping is not allowed here)".into());
                }
                return Outcome::Skip("needs root".into());
            }
            "root" => {}
            other => return Outcome::Fail(format!("unknown REQUIRES `{other}`")),
        }
    }
    let dir = c.file.parent().unwrap_or(Path::new("."));
    let cmd = c
        .run
        .replace("{{VPROBE}}", &shell_quote(util::VPROBE))
        .replace("{{DIR}}", &shell_quote(&dir.to_string_lossy()))
        .replace(
            "{{ROOT}}",
            &shell_quote(&util::repo_root().to_string_lossy()),
        );
    let timeout = Duration::from_secs(c.timeout.unwrap_or(10));
    let (out, timed_out) = util::output_within(Command::new("sh").args(["-c", &cmd]), timeout);
    let run = Run::from_output(cmd.clone(), out, timed_out);
    let mut why = Vec::new();
    if run.timed_out {
        why.push(format!("timed out after {timeout:?}"));
    }
    let both = format!("{}{}", run.stdout, run.stderr);
    if both.contains("panicked") {
        why.push("output contains `panicked`".into());
    }
    if c.will_fail == run.status.success() {
        why.push(format!(
            "exit status {} (expected {})",
            run.status,
            if c.will_fail { "non-zero" } else { "0" }
        ));
    }
    for e in &c.expect {
        if !both.contains(e.as_str()) {
            why.push(format!("no `{e}` in the output"));
        }
    }
    for e in &c.expect_regex {
        let re = regex_lite::Regex::new(&format!("(?m){e}")).expect("checked when parsed");
        if !re.is_match(&both) {
            why.push(format!("nothing matches /{e}/"));
        }
    }
    if !c.expect_json.is_empty() {
        let last = run
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        match serde_json::from_str::<Value>(last) {
            Err(e) => why.push(format!("last stdout line is not JSON ({e}): `{last}`")),
            Ok(v) => {
                for (ptr, want) in &c.expect_json {
                    let want: Value = serde_json::from_str(want).expect("checked when parsed");
                    match v.pointer(ptr) {
                        Some(got) if *got == want => {}
                        Some(got) => why.push(format!("{ptr} is {got}, expected {want}")),
                        None => why.push(format!("no {ptr} in the last line")),
                    }
                }
            }
        }
    }
    if why.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!("{}\n{}", why.join("; "), run.describe()))
    }
}

#[test]
fn runtime_suites() {
    let dir = util::repo_root().join("tests/runtime");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let filter = std::env::var("VPROBE_RUNTIME_FILTER").unwrap_or_default();
    let _k = util::kernel_lock();
    let (mut passed, mut skipped, mut failed) = (0, 0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read .test");
        let cases = parse(f, &text).unwrap_or_else(|e| panic!("{e}"));
        for c in cases.iter().filter(|c| c.name.contains(&filter)) {
            let at = format!("{}:{}", f.file_name().unwrap().to_string_lossy(), c.line);
            match run_case(c) {
                Outcome::Pass => {
                    passed += 1;
                    eprintln!("runtime ok    {} ({at})", c.name);
                }
                Outcome::Skip(why) => {
                    skipped += 1;
                    eprintln!("runtime SKIP  {} ({at}): SKIPPED ({why})", c.name);
                }
                Outcome::Fail(why) => {
                    eprintln!("runtime FAIL  {} ({at}): {why}", c.name);
                    failed.push(format!("{} ({at})", c.name));
                }
            }
        }
    }
    eprintln!(
        "runtime suites: {passed} passed, {} failed, {skipped} skipped",
        failed.len()
    );
    assert!(
        passed + failed.len() + skipped > 0,
        "no runtime cases in {}",
        dir.display()
    );
    assert!(failed.is_empty(), "runtime cases failed: {failed:#?}");
}

#[test]
fn parse_reads_cases() {
    let text = "# c\nNAME a\nRUN {{VPROBE}} list\nEXPECT skb.drop\nEXPECT_JSON /type = \"summary\"\nTIMEOUT 5\n\nNAME b\nRUN true\nREQUIRES root\nWILL_FAIL\n";
    let cases = parse(Path::new("x.test"), text).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].run, "{{VPROBE}} list");
    assert_eq!(cases[0].expect, ["skb.drop"]);
    assert_eq!(
        cases[0].expect_json,
        [("/type".to_string(), "\"summary\"".to_string())]
    );
    assert_eq!(cases[0].timeout, Some(5));
    assert_eq!(cases[1].requires, ["root"]);
    assert!(cases[1].will_fail);
    assert!(parse(Path::new("x.test"), "RUN true\n").is_err());
    assert!(parse(Path::new("x.test"), "NAME a\nRUN true\nEXPECT_JSON /a 1\n").is_err());
    assert!(parse(Path::new("x.test"), "NAME a\nRUM true\n").is_err());
}
