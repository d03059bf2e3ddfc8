//! `vprobe list`: the catalog and the generic attach points, and what works on
//! this kernel (each mechanism load-tested, not attached).

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
use vprobe_engine::generic;
use vprobe_engine::generic::glob::{glob_match, is_glob};
use vprobe_engine::probes::{
    FieldDef, FieldKind, GenericDef, MechanismKind, ProbeDef, CATALOG, GENERIC,
};
use vprobe_engine::session::{Session, SessionOptions, Support};

use crate::cli::{Format, OutputArgs};
use crate::exit::Status;
use crate::say;

#[derive(Serialize)]
struct Field {
    name: &'static str,
    kind: FieldKind,
    filter: bool,
    key: bool,
    about: &'static str,
}

impl From<&FieldDef> for Field {
    fn from(f: &FieldDef) -> Self {
        Field {
            name: f.name,
            kind: f.kind,
            filter: f.filter,
            key: f.key,
            about: f.about,
        }
    }
}

#[derive(Serialize)]
struct Mech {
    kind: MechanismKind,
    label: String,
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// What the kernel needs for it.
    needs: &'static str,
}

#[derive(Serialize)]
struct Unreadable {
    name: String,
    why: String,
}

#[derive(Serialize)]
struct Listed {
    name: &'static str,
    /// How a generic attach point is written (`kprobe:FUNCTION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'static str>,
    subsystem: &'static str,
    about: &'static str,
    /// What the kernel does on this path without the attach point seeing it.
    #[serde(skip_serializing_if = "str::is_empty")]
    unseen: &'static str,
    fields: Vec<Field>,
    /// Fields of a tracepoint that vprobe cannot read, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<Unreadable>,
    available: bool,
    /// Whether programs were actually loaded to find out (needs privileges).
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mechanism: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    mechanisms: Vec<Mech>,
    /// What the kernel needs: for each mechanism, in preference order.
    kernel: String,
}

/// What one row describes and the def its availability is tested with.
struct Row {
    def: &'static ProbeDef,
    generic: Option<&'static GenericDef>,
    unreadable: Vec<Unreadable>,
}

/// The rows for `pattern`: a generic name (`tracepoint:net:net_dev_queue`)
/// lists that attach point with its own fields; otherwise names containing it.
fn rows(pattern: Option<&str>) -> anyhow::Result<Vec<Row>> {
    if let Some(p) = pattern.filter(|p| p.contains(':') && !is_glob(p)) {
        let def = generic::resolve(p)
            .map_err(|e| anyhow::anyhow!(e))?
            .ok_or_else(|| anyhow::anyhow!("`{p}` is not an attach point name"))?;
        let unreadable = match p
            .strip_prefix("tracepoint:")
            .and_then(|r| r.split_once(':'))
        {
            Some((cat, ev)) => generic::tracepoint(cat, ev)
                .map_err(|e| anyhow::anyhow!(e))?
                .unsupported
                .iter()
                .map(|(name, why)| Unreadable {
                    name: name.clone(),
                    why: why.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        return Ok(vec![Row {
            def,
            generic: None,
            unreadable,
        }]);
    }
    let matches = |name: &str| match pattern {
        None => true,
        Some(pat) if is_glob(pat) => glob_match(pat, name),
        Some(pat) => name.contains(pat),
    };
    let mut out: Vec<Row> = CATALOG
        .iter()
        .filter(|p| matches(p.name))
        .map(|def| Row {
            def,
            generic: None,
            unreadable: Vec::new(),
        })
        .collect();
    for g in GENERIC.iter().filter(|g| matches(g.kind)) {
        // availability is tested on the example (`kprobe:tcp_retransmit_skb`)
        let def = generic::representative(g.kind)
            .ok_or_else(|| anyhow::anyhow!("no representative for `{}`", g.kind))?;
        out.push(Row {
            def,
            generic: Some(g),
            unreadable: Vec::new(),
        });
    }
    Ok(out)
}

fn kernel_needs(def: &ProbeDef) -> String {
    def.mechanisms
        .iter()
        .map(|m| format!("{} ({})", m.needs(), m.kind()))
        .collect::<Vec<_>>()
        .join(", or ")
}

/// Lists attach points matching `pattern`.
pub fn run(pattern: Option<&str>, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    let json = output.format() == Format::Json;
    if let Some(p) = pattern.filter(|p| p.contains(':') && is_glob(p)) {
        return names(p, json, output);
    }
    let privileged = vprobe_engine::kernel::privileges().sufficient();
    let rows = rows(pattern)?;
    // why nothing could be load-tested, when nothing could
    let (mut session, unchecked) = if privileged {
        match Session::new(SessionOptions::default()) {
            Ok(s) => (Some(s), String::new()),
            Err(e) => (None, format!("not checked: {e}")),
        }
    } else {
        (None, NOT_CHECKED.to_string())
    };
    let defs: Vec<&'static ProbeDef> = rows.iter().map(|r| r.def).collect();
    let support: Option<Vec<Support>> = session.as_mut().map(|s| s.support(&defs));
    let listed: Vec<Listed> = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let s = support.as_ref().map(|v| &v[i]);
            let mechanisms = row
                .def
                .mechanisms
                .iter()
                .enumerate()
                .map(|(j, m)| {
                    let r = s.map(|s| &s.mechanisms[j].1);
                    Mech {
                        kind: m.kind(),
                        label: match row.generic {
                            Some(g) => g.usage.to_string(),
                            None => m.label(),
                        },
                        available: r.is_some_and(|r| r.is_ok()),
                        reason: match r {
                            Some(Ok(())) => None,
                            Some(Err(e)) => Some(e.to_string()),
                            None => Some(unchecked.clone()),
                        },
                        needs: m.needs(),
                    }
                })
                .collect();
            let (available, mechanism, reason) = match s {
                Some(s) => match s.chosen() {
                    Some(m) => (
                        true,
                        Some(match row.generic {
                            Some(_) => m.kind().to_string(),
                            None => m.label(),
                        }),
                        None,
                    ),
                    None => (false, None, s.reason()),
                },
                None => (false, None, Some(unchecked.clone())),
            };
            let (name, usage, subsystem, about, fields) = match row.generic {
                Some(g) => (g.kind, Some(g.usage), "generic", g.about, g.fields),
                None => (
                    row.def.name,
                    None,
                    row.def.subsystem,
                    row.def.about,
                    row.def.fields,
                ),
            };
            Listed {
                name,
                usage,
                subsystem,
                about,
                unseen: match row.generic {
                    Some(_) => "",
                    None => row.def.unseen,
                },
                fields: fields.iter().map(Field::from).collect(),
                unreadable: row.unreadable,
                available,
                verified: s.is_some(),
                mechanism,
                reason,
                mechanisms,
                kernel: kernel_needs(row.def),
            }
        })
        .collect();
    let mut out = say::data(output.file.as_deref())?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&listed)?)?;
        out.flush()?;
        return Ok(found(listed.len(), pattern));
    }
    if listed.is_empty() {
        return Ok(found(0, pattern));
    }
    let label = |l: &Listed| l.usage.unwrap_or(l.name).to_string();
    let w = listed.iter().map(|l| label(l).len()).max().unwrap_or(0);
    let sw = listed.iter().map(|l| l.subsystem.len()).max().unwrap_or(0);
    for l in &listed {
        let status = match (&l.mechanism, &l.reason) {
            (Some(m), _) => m.clone(),
            (None, Some(r)) => format!("unavailable: {r}"),
            (None, None) => "unavailable".into(),
        };
        writeln!(out, "{:w$}  {:sw$}  {}", label(l), l.subsystem, status)?;
        writeln!(out, "{:w$}  {:sw$}  {}", "", "", l.about)?;
        if !l.fields.is_empty() {
            let fields: Vec<&str> = l.fields.iter().map(|f| f.name).collect();
            writeln!(out, "{:w$}  {:sw$}  fields: {}", "", "", fields.join(" "))?;
        }
        if !l.unseen.is_empty() {
            writeln!(out, "{:w$}  {:sw$}  not seen: {}", "", "", l.unseen)?;
        }
        for u in &l.unreadable {
            writeln!(
                out,
                "{:w$}  {:sw$}  not readable: {} ({})",
                "", "", u.name, u.why
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The generic attach points a glob matches (`tracepoint:net:*`), one name a
/// line, as `bpftrace -l` lists them; `vprobe list NAME` shows one's fields.
fn names(pattern: &str, json: bool, output: &OutputArgs) -> anyhow::Result<ExitCode> {
    #[derive(Serialize)]
    struct Name<'a> {
        name: &'a str,
    }
    let names = generic::glob::matching(pattern)?;
    let mut out = say::data(output.file.as_deref())?;
    if json {
        let v: Vec<Name> = names.iter().map(|n| Name { name: n }).collect();
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    } else {
        for n in &names {
            writeln!(out, "{n}")?;
        }
    }
    out.flush()?;
    Ok(found(names.len(), Some(pattern)))
}

/// Success, or status 1 with a note when nothing matched (like grep).
fn found(n: usize, pattern: Option<&str>) -> ExitCode {
    if n > 0 {
        return ExitCode::SUCCESS;
    }
    say::warn(format_args!(
        "no attach point matches `{}`",
        pattern.unwrap_or_default()
    ));
    Status::Verdict.into()
}

const NOT_CHECKED: &str = "not checked: needs root or CAP_BPF+CAP_PERFMON to load a test program";
