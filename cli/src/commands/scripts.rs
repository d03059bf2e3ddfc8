//! `vprobe scripts`: the scripts and modules vprobe can find, and `vprobe
//! scripts show NAME` (also `vprobe run NAME --help`): one script's contract
//! and whether this host can meet it.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;

use serde::Serialize;
use vprobe_engine::generic;
use vprobe_engine::kernel::{privileges, Features};
use vprobe_engine::library::{Listed, Place, SearchPath};
use vprobe_engine::probes::ProbeDef;
use vprobe_engine::script::{version_at_least, Meta, Requirement, Script};
use vprobe_engine::session::{Session, SessionOptions};
use vprobe_engine::symbols::Symbols;

use crate::cli::Format;

#[derive(Serialize)]
struct Shadowed {
    place: Place,
    location: String,
}

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    version: Option<&'a str>,
    about: Option<&'a str>,
    place: Place,
    location: String,
    shadows: Vec<Shadowed>,
}

impl<'a> From<&'a Listed> for Entry<'a> {
    fn from(l: &'a Listed) -> Self {
        Entry {
            name: &l.file.name,
            version: l.meta.version.as_deref(),
            about: l.meta.about.as_deref(),
            place: l.file.place,
            location: l.file.location(),
            shadows: l
                .shadows
                .iter()
                .map(|(place, location)| Shadowed {
                    place: *place,
                    location: location.clone(),
                })
                .collect(),
        }
    }
}

/// Lists every script and module of the search path.
pub fn list(format: Format) -> anyhow::Result<ExitCode> {
    let search = SearchPath::from_env();
    let scripts = search.scripts();
    let modules = search.modules(None);
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let v = serde_json::json!({
            "scripts": scripts.iter().map(Entry::from).collect::<Vec<_>>(),
            "modules": modules.iter().map(Entry::from).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    table(&mut out, &scripts)?;
    if !modules.is_empty() {
        writeln!(out, "\nmodules (import \"NAME\" as NAME;):")?;
        table(&mut out, &modules)?;
    }
    writeln!(
        out,
        "\nsearched: {}\n`vprobe scripts show NAME` for a script's parameters",
        search.describe()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn table(out: &mut impl Write, rows: &[Listed]) -> std::io::Result<()> {
    let w = rows.iter().map(|l| l.file.name.len()).max().unwrap_or(0);
    let vw = rows
        .iter()
        .map(|l| l.meta.version.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(0);
    let pw = rows
        .iter()
        .map(|l| l.file.place.to_string().len())
        .max()
        .unwrap_or(0);
    for l in rows {
        let place = l.file.place.to_string();
        writeln!(
            out,
            "{:w$}  {:vw$}  {place:pw$}  {}",
            l.file.name,
            l.meta.version.as_deref().unwrap_or("-"),
            shorten(l.meta.summary(), 100)
        )?;
        if l.file.place != Place::BuiltIn {
            writeln!(
                out,
                "{:w$}  {:vw$}  {:pw$}  {}",
                "",
                "",
                "",
                l.file.location()
            )?;
        }
        for (place, location) in &l.shadows {
            writeln!(
                out,
                "{:w$}  {:vw$}  {:pw$}  shadows {location} ({place})",
                "", "", ""
            )?;
        }
    }
    Ok(())
}

/// Whether this host can use an attach point, as far as can be told.
#[derive(Serialize)]
struct AttachPoint {
    name: String,
    /// `None`: not checked (no privileges to load a test program).
    available: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mechanism: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
struct Param<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: String,
    default: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    choices: &'a [String],
    doc: &'a str,
}

#[derive(Serialize)]
struct Needed {
    requirement: String,
    ok: Option<bool>,
    detail: String,
}

const NOT_CHECKED: &str = "not checked: needs root or CAP_BPF+CAP_PERFMON to load a test program";

/// Shows one script: its contract and what this host has of what it needs.
/// `as_help`: for `vprobe run NAME --help` (says how to run it).
pub fn show(what: &str, format: Format, as_help: bool) -> anyhow::Result<ExitCode> {
    let file = super::find_script(what)?;
    let meta = vprobe_engine::script::parse_meta(&file.text);
    let (probes, unknown, plan_note) = attach_points(&file, &meta);
    let (mut points, needed) = availability(&probes, &meta);
    points.extend(unknown.into_iter().map(|(name, why)| AttachPoint {
        name,
        available: Some(false),
        mechanism: None,
        reason: Some(why),
    }));
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        let params: Vec<Param> = meta
            .params
            .iter()
            .map(|p| Param {
                name: &p.name,
                kind: p.kind.to_string(),
                default: p.default.as_deref(),
                choices: &p.choices,
                doc: &p.doc,
            })
            .collect();
        let v = serde_json::json!({
            "name": file.name,
            "version": meta.version,
            "about": meta.about,
            "place": file.place,
            "location": file.location(),
            "params": params,
            "requires": needed,
            "attach_points": points,
            "note": plan_note,
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let version = meta
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    writeln!(out, "{}{version} ({})", file.name, file.location())?;
    if let Some(about) = &meta.about {
        for line in wrap(about, 76) {
            writeln!(out, "  {line}")?;
        }
    }
    let runs = if file.place == Place::Path {
        file.location()
    } else {
        file.name.clone()
    };
    writeln!(
        out,
        "\nUsage: vprobe run {runs} [-p NAME=VALUE]... [OPTIONS]"
    )?;
    if meta.params.is_empty() {
        writeln!(out, "\nParameters: none")?;
    } else {
        writeln!(out, "\nParameters:")?;
        let shown: Vec<String> = meta
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("-p {}={d}", p.name),
                None => format!("-p {}=VALUE", p.name),
            })
            .collect();
        let w = shown.iter().map(String::len).max().unwrap_or(0);
        let kinds: Vec<String> = meta
            .params
            .iter()
            .map(|p| match p.default {
                Some(_) => p.kind.to_string(),
                None => format!("{}, required", p.kind),
            })
            .collect();
        let kw = kinds.iter().map(String::len).max().unwrap_or(0);
        for ((p, s), k) in meta.params.iter().zip(&shown).zip(&kinds) {
            writeln!(out, "  {s:w$}  {k:kw$}  {}", p.doc)?;
            if !p.choices.is_empty() {
                writeln!(
                    out,
                    "  {:w$}  {:kw$}  one of: {}",
                    "",
                    "",
                    p.choices.join(", ")
                )?;
            }
        }
    }
    if !needed.is_empty() {
        writeln!(out, "\nRequires:")?;
        let w = needed
            .iter()
            .map(|n| n.requirement.len())
            .max()
            .unwrap_or(0);
        for n in &needed {
            writeln!(
                out,
                "  {:w$}  {:3}  {}",
                n.requirement,
                yes_no(n.ok),
                n.detail
            )?;
        }
    }
    writeln!(out, "\nAttach points:")?;
    let w = points.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in &points {
        let detail = p.mechanism.as_deref().or(p.reason.as_deref()).unwrap_or("");
        writeln!(out, "  {:w$}  {:3}  {detail}", p.name, yes_no(p.available))?;
    }
    if let Some(note) = plan_note {
        writeln!(out, "  ({note})")?;
    }
    if as_help {
        writeln!(
            out,
            "\nRun options (--duration, --lab, --load, --format, ...): vprobe help run"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// The attach points the script uses: what its top level asks for with the
/// default parameters, and what its header requires (those this host cannot
/// even name, with why). A note says why the top level could not tell, when
/// it could not.
fn attach_points(
    file: &vprobe_engine::library::ScriptFile,
    meta: &Meta,
) -> (
    Vec<&'static ProbeDef>,
    Vec<(String, String)>,
    Option<String>,
) {
    let mut unknown = Vec::new();
    let mut defs: Vec<&'static ProbeDef> = Vec::new();
    let mut push = |d: &'static ProbeDef| {
        if !defs.iter().any(|x| x.name == d.name) {
            defs.push(d);
        }
    };
    let mut note = None;
    let symbols = Rc::new(Symbols::load(true));
    let options = super::options(Some(file), Vec::new(), true);
    match Script::compile(file.source_name(), &file.text, symbols, options) {
        Ok(mut s) => match s.diagnose() {
            (Some(plan), _) => plan.requests.iter().for_each(|r| push(r.probe)),
            (None, found) => {
                note = found
                    .into_iter()
                    .next()
                    .map(|d| format!("its top level does not run as is: {d}"))
            }
        },
        Err(e) => note = Some(format!("it does not compile: {e}")),
    }
    for r in &meta.requires {
        if let Requirement::Probe { name, .. } = r {
            let def = match vprobe_engine::probes::find(name) {
                Some(d) => Ok(Some(d)),
                None => generic::resolve(name),
            };
            match def {
                Ok(Some(d)) => push(d),
                Ok(None) => unknown.push((name.clone(), "not an attach point".into())),
                Err(e) => unknown.push((name.clone(), e.to_string())),
            }
        }
    }
    (defs, unknown, note)
}

/// Each attach point's and each required feature's state on this host.
fn availability(probes: &[&'static ProbeDef], meta: &Meta) -> (Vec<AttachPoint>, Vec<Needed>) {
    let privileged = privileges().sufficient();
    let mut session = if privileged {
        Session::new(SessionOptions::default()).ok()
    } else {
        None
    };
    let support = session.as_mut().map(|s| s.support(probes));
    let points = probes
        .iter()
        .enumerate()
        .map(|(i, def)| match support.as_ref().map(|v| &v[i]) {
            Some(s) => AttachPoint {
                name: def.name.to_string(),
                available: Some(s.chosen().is_some()),
                mechanism: s.chosen().map(|m| m.label()),
                reason: s.reason(),
            },
            None => AttachPoint {
                name: def.name.to_string(),
                available: None,
                mechanism: None,
                reason: Some(NOT_CHECKED.into()),
            },
        })
        .collect();
    let mut features: Option<Features> = None;
    let mut needed = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &meta.requires {
        if !seen.insert(r.to_string()) {
            continue;
        }
        match r {
            Requirement::Vprobe { version, .. } => {
                let this = env!("CARGO_PKG_VERSION");
                needed.push(Needed {
                    requirement: r.to_string(),
                    ok: Some(version_at_least(this, version)),
                    detail: format!("this is vprobe {this}"),
                });
            }
            Requirement::Feature { name, .. } => {
                let f = features.get_or_insert_with(|| {
                    let mut f = Features::detect();
                    if let Some(s) = session.as_mut() {
                        s.load_features(&mut f);
                    }
                    f
                });
                needed.push(match f.get(name) {
                    Some(feat) => Needed {
                        requirement: r.to_string(),
                        ok: Some(feat.ok),
                        detail: feat.detail.clone(),
                    },
                    None => Needed {
                        requirement: r.to_string(),
                        ok: None,
                        detail: if privileged {
                            "not a feature `vprobe doctor` knows".into()
                        } else {
                            NOT_CHECKED.into()
                        },
                    },
                });
            }
            // listed with the attach points
            Requirement::Probe { .. } => {}
        }
    }
    (points, needed)
}

/// `text` cut at a word to at most `width` characters, with `...` when cut.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out = String::new();
    for word in text.split_whitespace() {
        if out.chars().count() + word.chars().count() + 4 > width {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push_str(" ...");
    out
}

/// `text` in lines of at most `width` characters (words are not split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("", 5), Vec::<String>::new());
        assert_eq!(shorten("aa bb cc dd", 10), "aa bb ...");
        assert_eq!(shorten("aa", 10), "aa");
    }
}
