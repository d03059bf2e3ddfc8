//! `vprobe test TARGET...`: runs `.test` files (the format is in
//! `case.rs`): the shipped scripts' own tests (`scripts/tests/`), a team's
//! tests of its scripts, and vprobe's runtime suites (`tests/runtime/`).

mod case;
mod process;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use vprobe_engine::library::SearchPath;

use case::Case;
use process::{Interrupted, Ran};

/// A `.test` file to run, and what its variables stand for.
struct TestFile {
    /// As shown in results.
    shown: String,
    text: String,
    /// `{{DIR}}`: its folder (none for a built-in test).
    dir: Option<PathBuf>,
    /// `{{SCRIPT}}`: the script it tests, when known.
    script: Option<String>,
}

enum Outcome {
    Pass,
    Skip(String),
    Fail(String),
}

/// Runs every case of the targets; exits 1 when one fails.
pub fn run(targets: &[String], filter: Option<&str>, strict: bool) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for t in targets {
        collect(t, &mut files)?;
    }
    let mut cases = Vec::new();
    for f in &files {
        for c in case::parse(&f.shown, &f.text)? {
            if filter.is_none_or(|w| c.name.contains(w)) {
                cases.push((f, c));
            }
        }
    }
    if cases.is_empty() {
        anyhow::bail!(
            "no test cases in {}{}",
            targets.join(", "),
            filter
                .map(|w| format!(" whose name contains `{w}`"))
                .unwrap_or_default()
        );
    }
    let interrupted = Interrupted::install()?;
    let vprobe = std::env::current_exe().context("cannot find the vprobe executable")?;
    let (mut passed, mut skipped, mut failed) = (0, 0, Vec::new());
    let mut out = std::io::stdout().lock();
    for (file, c) in &cases {
        let at = format!("{}:{}", c.file, c.line);
        match run_case(file, c, &vprobe, strict, &interrupted) {
            Outcome::Pass => {
                passed += 1;
                writeln!(out, "ok    {} ({at})", c.name)?;
            }
            Outcome::Skip(why) => {
                skipped += 1;
                writeln!(out, "SKIP  {} ({at}): {why}", c.name)?;
            }
            Outcome::Fail(why) => {
                writeln!(out, "FAIL  {} ({at}): {why}", c.name)?;
                failed.push(format!("{} ({at})", c.name));
            }
        }
        if interrupted.is_set() {
            writeln!(out, "interrupted")?;
            return Ok(ExitCode::from(130));
        }
    }
    writeln!(
        out,
        "{passed} passed, {} failed, {skipped} skipped",
        failed.len()
    )?;
    for f in &failed {
        writeln!(out, "  failed: {f}")?;
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The test files a target names: a `.test` file, a folder's, or a script's.
fn collect(target: &str, out: &mut Vec<TestFile>) -> anyhow::Result<()> {
    let path = Path::new(target);
    if path.is_dir() {
        let mut found = Vec::new();
        test_files(path, 0, &mut found);
        found.sort();
        if found.is_empty() {
            anyhow::bail!("no .test files under {target}");
        }
        for p in found {
            out.push(test_file(&p)?);
        }
        return Ok(());
    }
    if target.ends_with(".test") {
        out.push(test_file(path)?);
        return Ok(());
    }
    // a script: its tests/NAME.test
    let search = SearchPath::from_env();
    let script = search.find(target)?;
    let Some((test_path, text)) = search.test_of(&script) else {
        anyhow::bail!(
            "script `{}` ({}) has no tests/{}.test",
            script.name,
            script.location(),
            script.name
        );
    };
    out.push(TestFile {
        shown: match &test_path {
            Some(p) => p.display().to_string(),
            None => format!("built-in:tests/{}.test", script.name),
        },
        text,
        dir: test_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf),
        script: Some(match &script.path {
            Some(p) => p.display().to_string(),
            None => script.name.clone(),
        }),
    });
    Ok(())
}

fn test_file(path: &Path) -> anyhow::Result<TestFile> {
    // read as scripts are: one place decides what a readable file is
    let text = vprobe_engine::library::read(path)?;
    Ok(TestFile {
        shown: path.display().to_string(),
        text,
        dir: path.parent().map(Path::to_path_buf),
        script: case::script_of(path).map(|p| p.display().to_string()),
    })
}

/// `.test` files under `dir`, a few folders deep.
fn test_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth < 4 {
            test_files(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "test") {
            out.push(p);
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `text` with `{{VPROBE}}`, `{{DIR}}` and `{{SCRIPT}}` put in.
fn expand(text: &str, file: &TestFile, vprobe: &Path) -> Result<String, String> {
    let mut s = text.replace("{{VPROBE}}", &shell_quote(&vprobe.to_string_lossy()));
    if s.contains("{{DIR}}") {
        let dir = file
            .dir
            .as_ref()
            .ok_or("{{DIR}} has no meaning in a built-in test")?;
        s = s.replace("{{DIR}}", &shell_quote(&dir.to_string_lossy()));
    }
    if s.contains("{{SCRIPT}}") {
        let script = file
            .script
            .as_ref()
            .ok_or("{{SCRIPT}}: no NAME.rhai beside this NAME.test or in the folder above")?;
        s = s.replace("{{SCRIPT}}", &shell_quote(script));
    }
    Ok(s)
}

fn run_case(
    file: &TestFile,
    c: &Case,
    vprobe: &Path,
    strict: bool,
    interrupted: &Interrupted,
) -> Outcome {
    for r in &c.requires {
        if r == "root" {
            if nix::unistd::geteuid().is_root() {
                continue;
            }
            return if strict {
                Outcome::Fail("needs root (and --strict forbids skipping)".into())
            } else {
                Outcome::Skip("needs root".into())
            };
        }
        let cmd = match expand(r, file, vprobe) {
            Ok(cmd) => cmd,
            Err(e) => return Outcome::Fail(e),
        };
        let ran = process::run(&cmd, &[], Duration::from_secs(10), interrupted);
        if ran.timed_out || !ran.status.is_some_and(|s| s.success()) {
            return Outcome::Skip(format!("REQUIRES `{r}` does not hold here"));
        }
    }
    let expanded = std::iter::once(&c.run)
        .chain(&c.after)
        .map(|t| expand(t, file, vprobe))
        .collect::<Result<Vec<_>, _>>();
    let (run, after) = match expanded {
        Ok(mut v) => {
            let run = v.remove(0);
            (run, v)
        }
        Err(e) => return Outcome::Fail(e),
    };
    let timeout = Duration::from_secs(c.timeout.unwrap_or(10));
    let ran = process::run(&run, &after, timeout, interrupted);
    judge(c, &ran, timeout)
}

fn judge(c: &Case, ran: &Ran, timeout: Duration) -> Outcome {
    let mut why = Vec::new();
    if ran.timed_out {
        why.push(format!("timed out after {}s", timeout.as_secs()));
    }
    if let Some(e) = &ran.after_error {
        why.push(e.clone());
    }
    let both = format!("{}{}", ran.stdout, ran.stderr);
    if both.contains("panicked") {
        why.push("output contains `panicked`".into());
    }
    let success = ran.status.is_some_and(|s| s.success());
    if !ran.timed_out && c.will_fail == success {
        why.push(format!(
            "exit status {} (expected {})",
            ran.status
                .and_then(|s| s.code())
                .map_or("none".into(), |c| c.to_string()),
            if c.will_fail { "non-zero" } else { "0" }
        ));
    }
    for e in &c.expect {
        if !both.contains(e.as_str()) {
            why.push(format!("no `{e}` in the output"));
        }
    }
    for re in &c.expect_regex {
        if !re.is_match(&both) {
            why.push(format!(
                "nothing matches /{}/",
                re.as_str().trim_start_matches("(?m)")
            ));
        }
    }
    if !c.expect_json.is_empty() {
        let last = ran
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        match serde_json::from_str::<Value>(last) {
            Err(e) => why.push(format!("the last stdout line is not JSON ({e})")),
            Ok(v) => {
                for (ptr, want) in &c.expect_json {
                    match v.pointer(ptr) {
                        Some(got) if got == want => {}
                        Some(got) => why.push(format!("{ptr} is {got}, expected {want}")),
                        None => why.push(format!("no {ptr} in the last stdout line")),
                    }
                }
            }
        }
    }
    if why.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "{}\n  $ {}\n  --- stdout\n{}\n  --- stderr\n{}",
            why.join("; "),
            ran.command,
            indent(&ran.stdout),
            indent(&ran.stderr)
        ))
    }
}

/// The last lines of `s`, indented: enough to see why, not a flood.
fn indent(s: &str) -> String {
    const SHOWN: usize = 40;
    let lines: Vec<&str> = s.lines().collect();
    let skip = lines.len().saturating_sub(SHOWN);
    let mut out: Vec<String> = Vec::new();
    if skip > 0 {
        out.push(format!("  ({skip} lines before)"));
    }
    out.extend(lines[skip..].iter().map(|l| format!("  {l}")));
    out.join("\n")
}
