//! `vprobe list`: the catalog, and what works on this kernel.

use std::process::ExitCode;

use serde::Serialize;
use vprobe_engine::probes::{FieldDef, ProbeDef, CATALOG};
use vprobe_engine::session::{Session, SessionOptions};

#[derive(Serialize)]
struct Listed {
    name: &'static str,
    layer: &'static str,
    about: &'static str,
    fields: &'static [FieldDef],
    mechanisms: Vec<String>,
    available: bool,
    /// Whether a program was actually loaded to find out (needs privileges).
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mechanism: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Lists attach points matching `pattern`.
pub fn run(pattern: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let probes: Vec<&'static ProbeDef> = CATALOG
        .iter()
        .filter(|p| pattern.is_none_or(|pat| p.name.contains(pat)))
        .collect();
    let mut session = if vprobe_engine::session::privileges().sufficient() {
        Session::new(SessionOptions::default()).ok()
    } else {
        None
    };
    let listed: Vec<Listed> = probes
        .iter()
        .map(|p| {
            let (available, verified, mechanism, reason) = match &mut session {
                Some(s) => match s.check_support(p) {
                    Ok(m) => (true, true, Some(m.label()), None),
                    Err(reasons) => (false, true, None, Some(reasons.join("; "))),
                },
                None => (
                    false,
                    false,
                    None,
                    Some(
                        "not checked: needs root or CAP_BPF+CAP_PERFMON to load a test program"
                            .into(),
                    ),
                ),
            };
            Listed {
                name: p.name,
                layer: p.layer,
                about: p.about,
                fields: p.fields,
                mechanisms: p.mechanisms.iter().map(|m| m.label()).collect(),
                available,
                verified,
                mechanism,
                reason,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&listed)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listed.is_empty() {
        println!("no attach point matches `{}`", pattern.unwrap_or_default());
        return Ok(ExitCode::from(1));
    }
    let w = listed.iter().map(|l| l.name.len()).max().unwrap_or(0);
    for l in &listed {
        let status = match (&l.mechanism, &l.reason) {
            (Some(m), _) => m.clone(),
            (None, Some(r)) => format!("unavailable: {r}"),
            (None, None) => "unavailable".into(),
        };
        println!("{:w$}  {:7}  {}", l.name, l.layer, status);
        println!("{:w$}  {:7}  {}", "", "", l.about);
        let fields: Vec<String> = l.fields.iter().map(|f| f.name.to_string()).collect();
        println!("{:w$}  {:7}  fields: {}", "", "", fields.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}
