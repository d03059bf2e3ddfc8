//! Tab completion: REPL commands and their arguments, attach point names
//! (also inside the string of `probe("…`), the fields of the probe a
//! `.filter` / `.count` / `.hist` is called on, drop reasons and devices as
//! filter values, aggregation names, API functions and the session's variables.
//!
//! Everything comes from the catalog, the engine's API table and what the
//! engine last told [`Known`]; [`suggest`] is a pure function of the line.

use std::ops::Range;

use reedline::{Completer, CompletionResult, Span, Suggestion};
use vprobe_engine::library::SearchPath;
use vprobe_engine::probes::{FieldDef, ProbeDef, CATALOG};
use vprobe_engine::script::API;
use vprobe_lab::{Topology, KNOBS};

use super::colon::{ColonCommand, LabAction};
use super::lexer::{open_brackets, tokenize, Kind, Token};
use super::{lock, Known, Shared};

/// The completer reedline calls on Tab.
pub struct ReplCompleter {
    known: Shared,
}

impl ReplCompleter {
    /// Completes from what `known` says of the session.
    pub fn new(known: Shared) -> Self {
        Self { known }
    }
}

impl Completer for ReplCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        let known = lock(&self.known);
        CompletionResult::fresh(suggest(line, pos, &known))
    }
}

/// One candidate: the text, and what it is.
struct Candidate {
    value: String,
    about: String,
}

fn cand(value: impl Into<String>, about: impl Into<String>) -> Candidate {
    Candidate {
        value: value.into(),
        about: about.into(),
    }
}

/// Suggestions for the cursor at byte `pos` of `line`.
pub fn suggest(line: &str, pos: usize, known: &Known) -> Vec<Suggestion> {
    let pos = floor_char_boundary(line, pos.min(line.len()));
    let before = &line[..pos];
    if before.trim_start().starts_with(':') {
        return command(before, known);
    }
    code(line, pos, known)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Keeps the candidates that start with `prefix`, replacing `span`.
fn finish(
    cands: Vec<Candidate>,
    prefix: &str,
    span: Range<usize>,
    suffix: &str,
) -> Vec<Suggestion> {
    let mut seen = std::collections::BTreeSet::new();
    cands
        .into_iter()
        .filter(|c| c.value.starts_with(prefix) && seen.insert(c.value.clone()))
        .map(|c| Suggestion {
            value: format!("{}{suffix}", c.value),
            description: (!c.about.is_empty()).then_some(c.about),
            span: Span::new(span.start, span.end),
            ..Suggestion::default()
        })
        .collect()
}

fn command(before: &str, known: &Known) -> Vec<Suggestion> {
    let lead = before.len() - before.trim_start().len();
    let rest = &before[lead..];
    let Some(space) = rest.find(char::is_whitespace) else {
        let cands = ColonCommand::ALL
            .into_iter()
            .map(|c| cand(c.name(), c.about()))
            .collect();
        return finish(cands, rest, lead..before.len(), "");
    };
    let Some(command) = ColonCommand::named(&rest[..space]) else {
        return Vec::new();
    };
    let arg_start = before
        .rfind(char::is_whitespace)
        .map_or(before.len(), |i| i + 1);
    let prefix = &before[arg_start..];
    let span = arg_start..before.len();
    let probes = || CATALOG.iter().map(|p| cand(p.name, p.about));
    let aggs = || {
        known
            .aggregations
            .iter()
            .map(|a| cand(a.as_str(), "aggregation"))
    };
    let cands: Vec<Candidate> = match command {
        ColonCommand::Help => ColonCommand::ALL
            .into_iter()
            .map(|c| cand(c.topic(), c.about()))
            .chain(API.iter().map(|f| cand(f.name, f.about)))
            .chain(probes())
            .collect(),
        ColonCommand::List => probes().collect(),
        ColonCommand::Detach => std::iter::once(cand("all", "every probe and timer"))
            .chain(known.targets.iter().map(|(t, what)| cand(t.as_str(), what)))
            .chain(aggs())
            .chain(
                known
                    .attached_probes
                    .iter()
                    .map(|p| cand(p.as_str(), "attach point")),
            )
            .collect(),
        ColonCommand::Clear => aggs().collect(),
        ColonCommand::Save => return paths(prefix, span),
        ColonCommand::Load => return scripts_and_paths(prefix, span),
        ColonCommand::Lab => {
            // the words between the command and the one being completed
            let done: Vec<&str> = rest[space..arg_start - lead].split_whitespace().collect();
            match done.as_slice() {
                [] => LabAction::WORDS
                    .into_iter()
                    .map(|(word, about)| cand(word, about))
                    .collect(),
                ["up"] => return lab_spec(prefix, span),
                _ => Vec::new(),
            }
        }
        ColonCommand::Probes | ColonCommand::Maps | ColonCommand::Quit => Vec::new(),
    };
    finish(cands, prefix, span, "")
}

/// A lab spec being typed: a topology, then after `:` or `,` a knob name.
fn lab_spec(prefix: &str, span: Range<usize>) -> Vec<Suggestion> {
    match prefix.rfind([':', ',']) {
        None => {
            let cands = Topology::ALL
                .iter()
                .map(|t| cand(t.name(), t.about()))
                .collect();
            finish(cands, prefix, span, "")
        }
        Some(i) => {
            let (head, part) = prefix.split_at(i + 1);
            if part.contains('=') {
                return Vec::new();
            }
            let cands = KNOBS
                .iter()
                .map(|k| cand(format!("{head}{}=", k.name), k.about))
                .collect();
            finish(cands, prefix, span, "")
        }
    }
}

/// The library's scripts by name (`:load macvtap_drops`), then file names.
fn scripts_and_paths(prefix: &str, span: Range<usize>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    if !prefix.contains('/') {
        let cands = SearchPath::from_env()
            .scripts()
            .into_iter()
            .map(|l| cand(l.file.name.clone(), l.meta.summary()))
            .collect();
        out = finish(cands, prefix, span.clone(), "");
    }
    out.extend(paths(prefix, span));
    out
}

/// File names under the folder of `prefix` that start with its last part.
fn paths(prefix: &str, span: Range<usize>) -> Vec<Suggestion> {
    let (dir, part) = match prefix.rfind('/') {
        Some(i) => (&prefix[..=i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut cands: Vec<Candidate> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && !part.starts_with('.') {
                return None;
            }
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let value = format!("{dir}{name}{}", if is_dir { "/" } else { "" });
            Some(cand(value, ""))
        })
        .collect();
    cands.sort_by(|a, b| a.value.cmp(&b.value));
    finish(cands, prefix, span, "")
}

/// Where the cursor is inside a call: `name(`…, which argument, whether
/// inside a `[...]` list, and the probe of the receiver of a method.
struct Call<'a> {
    name: &'a str,
    method: bool,
    arg: usize,
    in_list: bool,
    /// Index of the call's `(`.
    open: usize,
    probe: Option<&'static ProbeDef>,
}

/// The call whose arguments hold a cursor placed after `tokens`.
fn call<'a>(line: &'a str, tokens: &[Token], known: &Known) -> Option<Call<'a>> {
    let open = open_brackets(tokens);
    let (in_list, paren) = match open.as_slice() {
        [.., ('(', p), ('[', _)] => (true, *p),
        [.., ('(', p)] => (false, *p),
        _ => return None,
    };
    let name_tok = tokens.get(paren.checked_sub(1)?)?;
    if name_tok.kind != Kind::Ident {
        return None;
    }
    let method = paren >= 2 && tokens[paren - 2].kind == Kind::Punct('.');
    let mut depth = 0i32;
    let mut arg = 0;
    for t in &tokens[paren + 1..] {
        match t.kind {
            Kind::Punct('(' | '[' | '{') => depth += 1,
            Kind::Punct(')' | ']' | '}') => depth -= 1,
            Kind::Punct(',') if depth == 0 => arg += 1,
            _ => {}
        }
    }
    let probe = if method {
        receiver_probe(line, tokens, paren - 2, known)
    } else {
        None
    };
    Some(Call {
        name: name_tok.text(line),
        method,
        arg,
        in_list,
        open: paren,
        probe,
    })
}

/// The attach point of the expression before the `.` at `dot`:
/// `probe("skb.drop").filter(..)` or a variable that holds a probe.
fn receiver_probe(
    line: &str,
    tokens: &[Token],
    dot: usize,
    known: &Known,
) -> Option<&'static ProbeDef> {
    // walk back over the method chain to where the expression starts
    let mut depth = 0i32;
    let mut start = 0;
    for i in (0..dot).rev() {
        match tokens[i].kind {
            Kind::Punct(')' | ']' | '}') => depth += 1,
            Kind::Punct('(' | '[' | '{') => {
                if depth == 0 {
                    start = i + 1;
                    break;
                }
                depth -= 1;
            }
            Kind::Punct(';' | ',' | '=') if depth == 0 => {
                start = i + 1;
                break;
            }
            _ => {}
        }
    }
    let chain = &tokens[start..dot];
    match chain {
        [name, paren, arg, ..]
            if name.text(line) == "probe"
                && paren.kind == Kind::Punct('(')
                && matches!(arg.kind, Kind::Str { .. }) =>
        {
            vprobe_engine::probes::find(arg.string_body(line))
        }
        [var, ..] if var.kind == Kind::Ident => known
            .variables
            .iter()
            .rev()
            .find(|(n, _)| n == var.text(line))
            .and_then(|(_, p)| *p),
        _ => None,
    }
}

/// Fields of `probe` (of every probe when unknown) that pass `keep`.
fn fields(probe: Option<&'static ProbeDef>, keep: fn(&FieldDef) -> bool) -> Vec<Candidate> {
    let probes: Vec<&'static ProbeDef> = match probe {
        Some(p) => vec![p],
        None => CATALOG.iter().collect(),
    };
    probes
        .iter()
        .flat_map(|p| p.fields.iter())
        .filter(|f| keep(f))
        .map(|f| cand(f.name, f.about))
        .collect()
}

/// The string values that fit argument `c.arg` of call `c`.
fn arguments(line: &str, tokens: &[Token], c: &Call, known: &Known) -> Vec<Candidate> {
    let aggs = || {
        known
            .aggregations
            .iter()
            .map(|a| cand(a.as_str(), "aggregation"))
            .collect()
    };
    match (c.method, c.name, c.arg) {
        (false, "probe", 0) => CATALOG.iter().map(|p| cand(p.name, p.about)).collect(),
        (false, "print" | "print_delta" | "clear", 0) => aggs(),
        (true, "filter", 0) => fields(c.probe, |f| f.filter),
        (true, "filter", 1) => {
            let field = tokens
                .get(c.open + 1)
                .filter(|t| matches!(t.kind, Kind::Str { closed: true }))
                .map(|t| t.string_body(line));
            match field {
                Some("reason") => known
                    .reasons
                    .iter()
                    .map(|r| cand(r.as_str(), "drop reason"))
                    .collect(),
                Some("dev") => devices(),
                _ => Vec::new(),
            }
        }
        (true, "count", 1) | (true, "hist", 2) | (true, "lhist", 3) => fields(c.probe, |f| f.key),
        (true, "hist" | "lhist", 1) if !c.in_list => fields(c.probe, |f| f.kind.is_quantity()),
        _ => Vec::new(),
    }
}

/// Network devices of this namespace, for `.filter("dev", "…`.
fn devices() -> Vec<Candidate> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut v: Vec<Candidate> = dir
        .flatten()
        .map(|e| cand(e.file_name().to_string_lossy(), "device"))
        .collect();
    v.sort_by(|a, b| a.value.cmp(&b.value));
    v
}

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue",
    "return", "true", "false", "import", "as",
];

fn code(line: &str, pos: usize, known: &Known) -> Vec<Suggestion> {
    let before = &line[..pos];
    let tokens = tokenize(before);
    let Some(last) = tokens.last() else {
        return Vec::new();
    };
    let touching = last.span.end == pos;
    match last.kind {
        // inside a "string": complete it, and close it if it is open after the cursor
        Kind::Str { closed: false } if before.as_bytes()[last.span.start] == b'"' => {
            let rest = &tokens[..tokens.len() - 1];
            let Some(c) = call(before, rest, known) else {
                return Vec::new();
            };
            let cands = arguments(before, rest, &c, known);
            let closed_after = line[pos..].starts_with('"');
            let start = last.span.start + 1;
            finish(
                cands,
                &before[start..],
                start..pos,
                if closed_after { "" } else { "\"" },
            )
        }
        Kind::Ident if touching => {
            let prefix = last.text(before);
            let span = last.span.clone();
            let after_dot = tokens.len() >= 2 && tokens[tokens.len() - 2].kind == Kind::Punct('.');
            finish(names(after_dot, known), prefix, span, "")
        }
        Kind::Punct('.') if touching => finish(names(true, known), "", pos..pos, ""),
        // at the start of an argument: offer the quoted strings that fit
        Kind::Punct('(' | ',' | '[') => {
            let Some(c) = call(before, &tokens, known) else {
                return Vec::new();
            };
            let cands = arguments(before, &tokens, &c, known)
                .into_iter()
                .map(|x| cand(format!("\"{}\"", x.value), x.about))
                .collect();
            finish(cands, "", pos..pos, "")
        }
        _ => Vec::new(),
    }
}

/// Methods of a probe after a `.`; else free functions, variables and keywords.
fn names(after_dot: bool, known: &Known) -> Vec<Candidate> {
    if after_dot {
        return API
            .iter()
            .filter(|f| f.method)
            .map(|f| cand(f.name, f.usage))
            .collect();
    }
    API.iter()
        .filter(|f| !f.method)
        .map(|f| cand(f.name, f.usage))
        .chain(
            known
                .variables
                .iter()
                .map(|(n, p)| cand(n.as_str(), p.map_or("variable", |p| p.name))),
        )
        .chain(KEYWORDS.iter().map(|k| cand(*k, "")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            aggregations: vec!["drops".into(), "sizes".into()],
            variables: vec![
                ("d".into(), vprobe_engine::probes::find("tcp.retransmit")),
                ("n".into(), None),
            ],
            reasons: vec!["FULL_RING".into(), "NOT_SPECIFIED".into()],
            targets: vec![("1".into(), "skb.drop".into())],
            attached_probes: vec!["skb.drop".into()],
            ..Known::default()
        }
    }

    /// Values suggested with the cursor at the end of `line`.
    fn values(line: &str) -> Vec<String> {
        suggest(line, line.len(), &known())
            .into_iter()
            .map(|s| s.value)
            .collect()
    }

    /// The line after taking the only suggestion.
    fn apply(line: &str, pos: usize) -> String {
        let s = suggest(line, pos, &known());
        assert_eq!(s.len(), 1, "{line:?}: {s:?}");
        let mut out = line.to_string();
        out.replace_range(s[0].span.start..s[0].span.end, &s[0].value);
        out
    }

    #[test]
    fn probe_names_inside_the_string() {
        assert_eq!(apply(r#"probe("skb.d"#, 12), r#"probe("skb.drop""#);
        // already closed after the cursor: no second quote
        assert_eq!(apply(r#"probe("skb.d")"#, 12), r#"probe("skb.drop")"#);
        assert_eq!(
            values(r#"let x = probe("dev."#),
            ["dev.rx\"", "dev.xmit\"", "dev.queue\""]
        );
        assert_eq!(
            values(r#"probe("#),
            CATALOG
                .iter()
                .map(|p| format!("\"{}\"", p.name))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn fields_of_the_receiver_probe() {
        let v = values(r#"probe("skb.drop").filter(""#);
        assert!(v.contains(&"reason\"".to_string()), "{v:?}");
        assert!(!v.contains(&"state\"".to_string()), "{v:?}");
        // a variable holding tcp.retransmit
        let v = values(r#"d.filter("s"#);
        assert!(v.contains(&"sport\"".to_string()), "{v:?}");
        assert!(v.iter().all(|x| x.starts_with('s')), "{v:?}");
        // keys inside the list of .count, after a filter in the chain
        let v = values(r#"probe("skb.drop").filter("dev", "x").count("c", ["re"#);
        assert_eq!(v, ["reason\""]);
        let v = values(r#"probe("dev.xmit").hist("h", ""#);
        assert_eq!(v, ["len\"", "rc\""], "only numeric fields are histogrammed");
    }

    #[test]
    fn filter_values_aggregations_and_names() {
        assert_eq!(
            values(r#"probe("skb.drop").filter("reason", "FU"#),
            ["FULL_RING\""]
        );
        assert_eq!(values(r#"print("dr"#), ["drops\""]);
        assert_eq!(values("print_d"), ["print_delta"]);
        assert_eq!(values(r#"probe("skb.drop").co"#), ["count"]);
        let v = values(r#"probe("skb.drop")."#);
        assert!(v.contains(&"on_event".to_string()) && !v.contains(&"every".to_string()));
        assert!(values("pro").contains(&"probe".to_string()));
        assert_eq!(values("dev_"), ["dev_stat"]);
        assert!(values("d").contains(&"d".to_string()));
        assert!(values("x + 1").is_empty());
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(values(":de"), [":detach"]);
        assert_eq!(values(":detach d"), ["drops"]);
        let v = values(":detach ");
        assert!(
            v.contains(&"all".into()) && v.contains(&"1".into()),
            "{v:?}"
        );
        assert_eq!(values(":clear s"), ["sizes"]);
        assert_eq!(values(":list skb"), ["skb.drop"]);
        assert!(values(":help pro").contains(&"probe".to_string()));
        assert!(values(":help pro").contains(&"probes".to_string()));
    }

    #[test]
    fn lab_subcommands_topologies_and_knobs() {
        assert_eq!(values(":la"), [":lab"]);
        assert_eq!(values(":lab "), ["up", "down", "status"]);
        assert_eq!(values(":lab d"), ["down"]);
        assert_eq!(values(":lab up "), ["macvtap", "bridge", "veth"]);
        assert_eq!(values(":lab  up  b"), ["bridge"]);
        assert_eq!(
            values(":lab up macvtap:q"),
            ["macvtap:qlen=", "macvtap:queues="]
        );
        assert_eq!(
            values(":lab up macvtap:qlen=8,st"),
            ["macvtap:qlen=8,stall="]
        );
        assert!(values(":lab up macvtap:qlen=").is_empty());
        assert!(values(":lab down ").is_empty());
        assert!(values(":lab up veth x").is_empty());
        assert!(values(":help la").contains(&"lab".to_string()));
    }

    #[test]
    fn file_names_for_load_and_save() {
        let dir = std::env::temp_dir().join(format!("vprobe-complete-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("drops.rhai"), "").unwrap();
        let d = dir.display();
        let v = values(&format!(":load {d}/d"));
        assert_eq!(v, [format!("{d}/drops.rhai")]);
        let v = values(&format!(":save {d}/s"));
        assert_eq!(v, [format!("{d}/sub/")]);
        std::fs::remove_dir_all(&dir).unwrap();
        // the library's scripts by name
        assert!(values(":load macvtap_d").contains(&"macvtap_drops".to_string()));
    }
}
