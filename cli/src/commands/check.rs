//! `vprobe check SCRIPT`: validate without root and without attaching.
//!
//! Every finding is reported, not only the first: as `FILE:LINE:COL: error:
//! MESSAGE` lines on stderr, or with `--format json` as one JSON array on
//! stdout (shellcheck's shape, for CI pipelines). Exit status: 0 when there
//! is no error (warnings allowed), 3 (a script error) otherwise, 2 when the
//! script cannot be found or read.

use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

use serde::Serialize;
use vprobe_engine::message::suggestion;
use vprobe_engine::plan::Origin;
use vprobe_engine::script::{Diagnostic, Plan, Script, Severity};
use vprobe_engine::symbols::Symbols;

use crate::cli::Format;
use crate::exit::Status;

/// One finding, as `--format json` writes it.
#[derive(Serialize)]
struct Finding<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    severity: Severity,
    message: &'a str,
    suggestion: Option<&'a str>,
}

/// Checks the script; prints what it would attach, or what is wrong.
pub fn run(what: &str, params: Vec<(String, String)>, format: Format) -> anyhow::Result<ExitCode> {
    // a script that cannot be found or read is the command line's mistake
    let mut unreadable = false;
    let (name, plan, found) = match check(what, params) {
        Ok(r) => r,
        // not found or unreadable: a finding about the file itself
        Err(e) => {
            let d = Diagnostic {
                severity: Severity::Error,
                origin: Origin {
                    source: what.to_string(),
                    line: 0,
                    col: 0,
                },
                suggestion: suggestion(&e.to_string()).map(String::from),
                message: vprobe_engine::message::with_causes(e.as_ref()),
            };
            if format == Format::Text {
                return Err(e);
            }
            unreadable = true;
            (what.to_string(), None, vec![d])
        }
    };
    let errors = found
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    match format {
        Format::Json => {
            let findings: Vec<Finding> = found
                .iter()
                .map(|d| Finding {
                    file: &d.origin.source,
                    line: d.origin.line,
                    column: d.origin.col,
                    severity: d.severity,
                    message: &d.message,
                    suggestion: d.suggestion.as_deref(),
                })
                .collect();
            let mut out = crate::say::data(None)?;
            writeln!(out, "{}", serde_json::to_string(&findings)?).and_then(|()| out.flush())?;
        }
        Format::Text => {
            let mut err = std::io::stderr().lock();
            for d in &found {
                let what = match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                writeln!(err, "{}: {what}: {}", d.origin, d.message)?;
            }
            if let (0, Some(plan)) = (errors, &plan) {
                let warnings = found.len();
                let w = if warnings > 0 {
                    format!(", {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                };
                let mut out = crate::say::data(None)?;
                writeln!(out, "{name}: ok ({}{w})", counts(plan)).and_then(|()| out.flush())?;
            } else {
                writeln!(err, "{name}: {errors} error{}", plural(errors))?;
            }
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else if unreadable {
        Status::Usage.into()
    } else {
        Status::Script.into()
    })
}

/// The script's name, its plan when its top level ran, and every finding.
fn check(
    what: &str,
    params: Vec<(String, String)>,
) -> anyhow::Result<(String, Option<Plan>, Vec<Diagnostic>)> {
    let file = super::find_script(what)?;
    // kallsyms names are readable without root (addresses are not): enough to check symbols
    let symbols = Rc::new(Symbols::load(true));
    let name = file.source_name().to_string();
    // checking runs nothing; `vprobe run` asks for --allow exec itself
    let options = super::options(Some(&file), params, true);
    let mut script = match Script::compile(&name, &file.text, symbols, options) {
        Ok(s) => s,
        Err(e) => return Ok((name, None, vec![e.into()])),
    };
    let (plan, found) = script.diagnose();
    Ok((name, plan, found))
}

fn counts(plan: &Plan) -> String {
    format!(
        "{} probe instance{}, {} timer{}, {} end callback{}",
        plan.requests.len(),
        plural(plan.requests.len()),
        plan.timers.len(),
        plural(plan.timers.len()),
        plan.on_end.len(),
        plural(plan.on_end.len())
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
