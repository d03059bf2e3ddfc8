//! The `.test` file format, in the manner of bpftrace's tests/runtime: small
//! files of cases, each a block of `KEY value` lines begun by `NAME`.
//!
//! ```text
//! # a comment
//! NAME drops in the seed lab are counted by reason
//! RUN {{VPROBE}} run {{SCRIPT}} --lab macvtap --load tcp_rr:duration=3s -f json
//! EXPECT_JSON /type = "summary"
//! EXPECT_REGEX "reason":"FULL_RING"
//! REQUIRES root
//! TIMEOUT 60
//! ```
//!
//! - `RUN`: a `sh -c` command line. `{{VPROBE}}` is the vprobe running the
//!   tests, `{{DIR}}` the folder of the `.test` file, `{{SCRIPT}}` the script
//!   the file tests (`NAME.rhai` for `NAME.test`, beside it or one folder up;
//!   for a built-in test, the built-in script's name).
//! - `AFTER`: a `sh -c` command started once RUN's probes are attached (its
//!   output says `Attached` or has a `start` line), stopped when RUN ends: the
//!   traffic the script should see (repeatable).
//! - `EXPECT text`: stdout or stderr contains `text` (repeatable, all must hold).
//! - `EXPECT_REGEX re`: stdout or stderr matches `re` (multi-line mode).
//! - `EXPECT_JSON /pointer = value`: the last non-empty stdout line is JSON and
//!   the RFC 6901 pointer there equals the JSON `value`.
//! - `TIMEOUT seconds`: kill it after this long (default 10); a timeout fails.
//! - `REQUIRES root`: skipped, and said so, when not root (a failure with
//!   `--strict`); `REQUIRES COMMAND`: skipped unless the `sh -c` command succeeds.
//! - `WILL_FAIL`: the exit status must be non-zero (otherwise it must be 0).
//!
//! Every case also fails if the output contains `panicked`.

use std::path::{Path, PathBuf};

/// One case of a `.test` file.
#[derive(Debug, Default)]
pub struct Case {
    pub name: String,
    /// The file it is in, as shown (a path, or `built-in:tests/NAME.test`).
    pub file: String,
    pub line: usize,
    pub run: String,
    pub after: Vec<String>,
    pub expect: Vec<String>,
    pub expect_regex: Vec<regex_lite::Regex>,
    pub expect_json: Vec<(String, serde_json::Value)>,
    pub timeout: Option<u64>,
    pub requires: Vec<String>,
    pub will_fail: bool,
}

/// A `.test` file that cannot be read as cases.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {why}")]
pub struct FormatError {
    pub file: String,
    pub line: usize,
    pub why: String,
}

/// The cases of `text` (the file called `file`).
pub fn parse(file: &str, text: &str) -> Result<Vec<Case>, FormatError> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| FormatError {
            file: file.to_string(),
            line: i + 1,
            why,
        };
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        if key == "NAME" {
            cases.push(Case {
                name: value.to_string(),
                file: file.to_string(),
                line: i + 1,
                ..Case::default()
            });
            continue;
        }
        let Some(case) = cases.last_mut() else {
            return Err(bad(format!("`{key}` before the first NAME")));
        };
        match key {
            "RUN" => case.run = value.to_string(),
            "AFTER" => case.after.push(value.to_string()),
            "EXPECT" => case.expect.push(value.to_string()),
            "EXPECT_REGEX" => case.expect_regex.push(
                regex_lite::Regex::new(&format!("(?m){value}"))
                    .map_err(|e| bad(format!("bad regex: {e}")))?,
            ),
            "EXPECT_JSON" => {
                let (ptr, want) = value
                    .split_once(" = ")
                    .ok_or_else(|| bad("expected `/pointer = value`".into()))?;
                let want = serde_json::from_str(want.trim())
                    .map_err(|e| bad(format!("`{want}` is not JSON: {e}")))?;
                case.expect_json.push((ptr.trim().to_string(), want));
            }
            "TIMEOUT" => {
                case.timeout = Some(
                    value
                        .parse()
                        .map_err(|e| bad(format!("TIMEOUT `{value}`: {e}")))?,
                )
            }
            "REQUIRES" => case.requires.push(value.to_string()),
            "WILL_FAIL" => case.will_fail = true,
            _ => {
                let keys = [
                    "NAME",
                    "RUN",
                    "AFTER",
                    "EXPECT",
                    "EXPECT_REGEX",
                    "EXPECT_JSON",
                    "TIMEOUT",
                    "REQUIRES",
                    "WILL_FAIL",
                ];
                let hint = vprobe_engine::probes::suggest(key, keys)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(bad(format!("unknown key `{key}`{hint}")));
            }
        }
    }
    if let Some(c) = cases.iter().find(|c| c.run.is_empty()) {
        return Err(FormatError {
            file: file.to_string(),
            line: c.line,
            why: format!("case `{}` has no RUN", c.name),
        });
    }
    Ok(cases)
}

/// The script a test file tests: `NAME.rhai` beside `DIR/NAME.test`, or in
/// the folder above `DIR` (for `scripts/tests/NAME.test`).
pub fn script_of(test: &Path) -> Option<PathBuf> {
    let stem = test.file_stem()?.to_string_lossy().into_owned();
    let dir = test.parent()?;
    let beside = dir.join(format!("{stem}.rhai"));
    if beside.is_file() {
        return Some(beside);
    }
    let above = dir.parent()?.join(format!("{stem}.rhai"));
    above.is_file().then_some(above)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_cases() {
        let text = "# c\nNAME a\nRUN {{VPROBE}} list\nAFTER ping -c 1 127.0.0.1\nEXPECT skb.drop\n\
                    EXPECT_JSON /type = \"summary\"\nTIMEOUT 5\n\nNAME b\nRUN true\nREQUIRES root\nWILL_FAIL\n";
        let cases = parse("x.test", text).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].run, "{{VPROBE}} list");
        assert_eq!(cases[0].after, ["ping -c 1 127.0.0.1"]);
        assert_eq!(cases[0].expect, ["skb.drop"]);
        assert_eq!(
            cases[0].expect_json,
            [("/type".to_string(), serde_json::json!("summary"))]
        );
        assert_eq!(cases[0].timeout, Some(5));
        assert_eq!(cases[1].requires, ["root"]);
        assert!(cases[1].will_fail);
    }

    #[test]
    fn parse_errors_are_located() {
        let e = |t: &str| parse("x.test", t).unwrap_err().to_string();
        assert_eq!(e("RUN true\n"), "x.test:1: `RUN` before the first NAME");
        assert!(e("NAME a\nRUN true\nEXPECT_JSON /a 1\n").starts_with("x.test:3: expected"));
        assert_eq!(
            e("NAME a\nRUM true\n"),
            "x.test:2: unknown key `RUM`; did you mean `RUN`?"
        );
        assert_eq!(e("NAME a\n"), "x.test:1: case `a` has no RUN");
        assert!(e("NAME a\nRUN x\nEXPECT_REGEX (\n").contains("bad regex"));
    }
}
