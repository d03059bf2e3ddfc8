//! The `//!` header of a script: its contract with whoever runs it.
//!
//! ```text
//! //! name: macvtap_drops
//! //! version: 1.0.0
//! //! about: macvtap RX drops by reason (several `about` lines are joined)
//! //! requires: vprobe >= 0.1, macvtap.drop, skb.drop, btf
//! //! param: dev=macvtap*  the devices to watch: a name or a prefix glob
//! //! param: streams=16  TCP_RR streams
//! //! param: every=5s  how often to print
//! //! param: layer=tap|tun|bridge  one of these (the first is the default)
//! //! param: ports=[80, 443]  a list: -p ports=80,443
//! //! param: target  required: no default
//! ```
//!
//! A parameter's type is its default's: an integer, a duration (`5s`), `true`
//! or `false`, a list in brackets, else a string. A script with a header
//! declares every parameter it reads: `-p` of any other name, an empty value
//! or a value of the wrong type is refused before anything attaches.
//! Reading the header never fails: what it cannot read is a [`Problem`] that
//! `vprobe check` reports.

use std::fmt;

/// What a script says about itself: for `vprobe scripts`, `vprobe scripts
/// show`, `--help` of a script, and checking `-p` before a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `//! name: drops_by_reason`
    pub name: Option<String>,
    /// `//! version: 1.2.0`
    pub version: Option<String>,
    /// `//! about: Count every skb drop ...` (several lines are joined with a space).
    pub about: Option<String>,
    /// `//! requires: vprobe >= 0.1, skb.drop, fentry`, every line's items in order.
    pub requires: Vec<Requirement>,
    /// `//! param: key=default  description`, in order.
    pub params: Vec<Param>,
    /// Header lines that could not be read.
    pub problems: Vec<Problem>,
}

/// The type of a parameter, taken from its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// `16`, `-1`
    Integer,
    /// `500ms`, `10s`: a string a duration reads from.
    Duration,
    /// `true` or `false`
    Bool,
    /// `[80, 443]`: `-p ports=80,443`.
    IntegerList,
    /// `[eth0, eth1]`
    StringList,
    /// Anything else (and a parameter without a default).
    String,
}

impl ParamKind {
    /// What a value of this type looks like, for messages.
    pub fn expected(self) -> &'static str {
        match self {
            ParamKind::Integer => "an integer",
            ParamKind::Duration => "a duration like 500ms or 10s",
            ParamKind::Bool => "true or false",
            ParamKind::IntegerList => "a comma-separated list of integers",
            ParamKind::StringList => "a comma-separated list",
            ParamKind::String => "a string",
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamKind::Integer => "integer",
            ParamKind::Duration => "duration",
            ParamKind::Bool => "bool",
            ParamKind::IntegerList => "list of integers",
            ParamKind::StringList => "list",
            ParamKind::String => "string",
        })
    }
}

/// One `//! param:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// How `-p` and `param(..)` name it.
    pub name: String,
    /// Its type, from the default.
    pub kind: ParamKind,
    /// The default as written (quotes removed); `None`: `-p` must give it.
    pub default: Option<String>,
    /// The values it may take (`layer=tap|tun`), empty when any value of its type will do.
    pub choices: Vec<String>,
    /// What it is, in a few words.
    pub doc: String,
    /// Its header line (1-based).
    pub line: usize,
}

/// One item of `//! requires:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `vprobe >= 0.2`: at least this version of vprobe.
    Vprobe {
        /// As written (`0.2`).
        version: String,
        /// Its header line.
        line: usize,
    },
    /// An attach point (`skb.drop`, `tracepoint:net:net_dev_queue`).
    Probe {
        /// As written.
        name: String,
        /// Its header line.
        line: usize,
    },
    /// A kernel feature as `vprobe doctor` names it (`btf`, `fentry`, `kprobe`).
    Feature {
        /// As written.
        name: String,
        /// Its header line.
        line: usize,
    },
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Vprobe { version, .. } => write!(f, "vprobe >= {version}"),
            Requirement::Probe { name, .. } | Requirement::Feature { name, .. } => {
                f.write_str(name)
            }
        }
    }
}

/// A header line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong, in house style.
    pub message: String,
}

/// The header keys, for "did you mean".
pub const KEYS: [&str; 5] = ["name", "version", "about", "requires", "param"];

impl Meta {
    /// Whether the script has a header: then it declares every parameter it
    /// reads, and `-p` is checked against them.
    pub fn is_contract(&self) -> bool {
        self.name.is_some()
            || self.version.is_some()
            || self.about.is_some()
            || !self.requires.is_empty()
            || !self.params.is_empty()
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The first sentence of `about` (up to a `. ` before a capital), for
    /// one-line listings.
    pub fn summary(&self) -> &str {
        let about = self.about.as_deref().unwrap_or("");
        let end = about
            .match_indices(". ")
            .find(|(i, _)| about[i + 2..].starts_with(|c: char| c.is_uppercase()))
            .map_or(about.len(), |(i, _)| i);
        about[..end].trim_end_matches('.')
    }
}

/// Reads the `//!` lines of a script; other lines are ignored, and so is a
/// `//!` line that does not start with `word:` (free text).
///
/// ```
/// use vprobe_engine::script::{parse_meta, ParamKind};
/// let m = parse_meta("//! name: d\n//! param: every=5s  how often\n");
/// assert_eq!(m.name.as_deref(), Some("d"));
/// assert_eq!(m.params[0].kind, ParamKind::Duration);
/// assert_eq!(m.params[0].default.as_deref(), Some("5s"));
/// ```
pub fn parse_meta(text: &str) -> Meta {
    let mut meta = Meta::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let Some(rest) = line.trim_start().strip_prefix("//!") else {
            continue;
        };
        let Some((key, value)) = rest.split_once(':') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let value = value.trim();
        let problem: Option<String> = match key {
            "name" | "version" if value.is_empty() => Some(format!("`{key}:` without a value")),
            "name" if meta.name.is_some() => Some("a second `name:`".into()),
            "name" => {
                meta.name = Some(value.to_string());
                None
            }
            "version" if meta.version.is_some() => Some("a second `version:`".into()),
            "version" if version_numbers(value).is_none() => Some(format!(
                "version `{value}` is not a version like 1.2 or 1.2.3"
            )),
            "version" => {
                meta.version = Some(value.to_string());
                None
            }
            "about" => {
                if !value.is_empty() {
                    meta.about = Some(match meta.about.take() {
                        Some(prev) => format!("{prev} {value}"),
                        None => value.to_string(),
                    });
                }
                None
            }
            "requires" => match parse_requires(value, line_no) {
                Ok(r) => {
                    meta.requires.extend(r);
                    None
                }
                Err(m) => Some(m),
            },
            "param" => match parse_param(value, line_no) {
                Ok(p) if meta.param(&p.name).is_some() => {
                    Some(format!("parameter `{}` is declared twice", p.name))
                }
                Ok(p) => {
                    meta.params.push(p);
                    None
                }
                Err(m) => Some(m),
            },
            other => Some(match vprobe_probes::suggest(other, KEYS) {
                Some(s) => format!("unknown header key `{other}`; did you mean `{s}`?"),
                None => format!(
                    "unknown header key `{other}` (the keys are {})",
                    KEYS.join(", ")
                ),
            }),
        };
        if let Some(message) = problem {
            meta.problems.push(Problem {
                line: line_no,
                message,
            });
        }
    }
    meta
}

/// `1.2.3` as numbers; `None` when it is not dotted numbers.
pub fn version_numbers(v: &str) -> Option<Vec<u64>> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    v.split('.').map(|n| n.parse().ok()).collect()
}

/// Whether version `have` is at least `want` (`0.1.0` >= `0.1`).
pub fn version_at_least(have: &str, want: &str) -> bool {
    let (Some(mut h), Some(mut w)) = (version_numbers(have), version_numbers(want)) else {
        return false;
    };
    let n = h.len().max(w.len());
    h.resize(n, 0);
    w.resize(n, 0);
    h >= w
}

fn parse_requires(value: &str, line: usize) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err("`requires:` has an empty item (items are separated by commas)".into());
        }
        if let Some(v) = item.strip_prefix("vprobe") {
            let v = v.trim();
            let v = v.strip_prefix(">=").unwrap_or(v).trim();
            if version_numbers(v).is_none() {
                return Err(format!(
                    "`requires: {item}`: expected `vprobe >= VERSION`, like `vprobe >= 0.1`"
                ));
            }
            out.push(Requirement::Vprobe {
                version: v.to_string(),
                line,
            });
        } else if item.contains(char::is_whitespace) {
            return Err(format!(
                "`requires: {item}`: an item is one attach point or kernel feature name"
            ));
        } else if item.contains(['.', ':']) {
            out.push(Requirement::Probe {
                name: item.to_string(),
                line,
            });
        } else {
            out.push(Requirement::Feature {
                name: item.to_string(),
                line,
            });
        }
    }
    Ok(out)
}

/// `key=default  description`, `key="a default"  description`,
/// `key=[a, b]  description`, `key=a|b|c  description` or `key  description`.
fn parse_param(s: &str, line: usize) -> Result<Param, String> {
    let end = s
        .find(|c: char| c == '=' || c.is_whitespace())
        .unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() {
        return Err("`param:` needs a name: `param: NAME=DEFAULT  what it is`".into());
    }
    if !is_identifier(name) {
        return Err(format!(
            "parameter name `{name}` must be letters, digits and `_`, not starting with a digit"
        ));
    }
    let rest = &s[end..];
    let Some(rest) = rest.strip_prefix('=') else {
        return Ok(Param {
            name: name.to_string(),
            kind: ParamKind::String,
            default: None,
            choices: Vec::new(),
            doc: rest.trim().to_string(),
            line,
        });
    };
    let (written, doc) = split_default(rest).map_err(|why| format!("parameter `{name}`: {why}"))?;
    let quoted = written.starts_with('"');
    let mut choices: Vec<String> = if quoted || written.starts_with('[') {
        Vec::new()
    } else {
        written.split('|').map(|c| c.trim().to_string()).collect()
    };
    if choices.len() < 2 {
        choices.clear();
    }
    let default = match (quoted, choices.first()) {
        (true, _) => written[1..written.len() - 1].to_string(),
        (false, Some(first)) => first.clone(),
        (false, None) => written.to_string(),
    };
    if choices.iter().any(String::is_empty) {
        return Err(format!(
            "parameter `{name}`: an empty choice in `{written}`"
        ));
    }
    let kind = if quoted {
        ParamKind::String
    } else {
        kind_of(&default)
    };
    if let Some(bad) = choices.iter().find(|c| kind_of(c) != kind) {
        return Err(format!(
            "parameter `{name}`: choice `{bad}` is not {} like the default `{default}`",
            kind.expected()
        ));
    }
    if !matches!(kind, ParamKind::IntegerList | ParamKind::StringList)
        && default.is_empty()
        && !quoted
    {
        return Err(format!(
            "parameter `{name}`: empty default (write `{name}=\"\"` for an empty string, or `{name}` alone for a required parameter)"
        ));
    }
    Ok(Param {
        name: name.to_string(),
        kind,
        default: Some(default),
        choices,
        doc: doc.trim().to_string(),
        line,
    })
}

/// Splits `DEFAULT  doc` where DEFAULT is a word, a `"quoted string"` or a `[list]`.
fn split_default(s: &str) -> Result<(&str, &str), String> {
    let close = match s.chars().next() {
        Some('"') => Some('"'),
        Some('[') => Some(']'),
        _ => None,
    };
    let end = match close {
        Some(c) => {
            s[1..]
                .find(c)
                .ok_or_else(|| format!("no closing `{c}` in `{s}`"))?
                + 2
        }
        None => s.find(char::is_whitespace).unwrap_or(s.len()),
    };
    Ok((&s[..end], &s[end..]))
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Whether `s` reads as an integer (decimal, optionally negative).
pub(crate) fn is_integer(s: &str) -> bool {
    s.parse::<i64>().is_ok()
}

/// Whether `s` reads as a duration with a unit (`5s`, `1.5ms`; a bare number is an integer).
pub(crate) fn is_duration(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
        && s.contains(|c: char| c.is_ascii_alphabetic())
        && vprobe_time::duration::parse(s).is_ok()
}

/// The items of a list value: `[a, b]` in a header, `a,b` on the command line.
pub(crate) fn list_items(s: &str) -> Vec<&str> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if s.trim().is_empty() {
        return Vec::new();
    }
    s.split(',').map(|x| x.trim().trim_matches('"')).collect()
}

fn kind_of(default: &str) -> ParamKind {
    if default.starts_with('[') {
        let items = list_items(default);
        if !items.is_empty() && items.iter().all(|i| is_integer(i)) {
            ParamKind::IntegerList
        } else {
            ParamKind::StringList
        }
    } else if default == "true" || default == "false" {
        ParamKind::Bool
    } else if is_integer(default) {
        ParamKind::Integer
    } else if is_duration(default) {
        ParamKind::Duration
    } else {
        ParamKind::String
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(line: &str) -> Param {
        let m = parse_meta(&format!("//! param: {line}\n"));
        assert_eq!(m.problems, vec![], "{line}");
        m.params[0].clone()
    }

    #[test]
    fn reads_name_version_about_and_requires() {
        let m = parse_meta(
            "//! name: macvtap_drops\n//! version: 1.2.0\n//! about: Count macvtap RX drops\n//! about: by queue\n\
             //! requires: vprobe >= 0.1, macvtap.drop, btf\n//! requires: tracepoint:net:net_dev_queue\n\
             let x = 1; //! name: not this\n// param: nope=1\n//! free text, not a key\n",
        );
        assert_eq!(m.name.as_deref(), Some("macvtap_drops"));
        assert_eq!(m.version.as_deref(), Some("1.2.0"));
        assert_eq!(m.about.as_deref(), Some("Count macvtap RX drops by queue"));
        assert_eq!(
            m.requires,
            vec![
                Requirement::Vprobe {
                    version: "0.1".into(),
                    line: 5
                },
                Requirement::Probe {
                    name: "macvtap.drop".into(),
                    line: 5
                },
                Requirement::Feature {
                    name: "btf".into(),
                    line: 5
                },
                Requirement::Probe {
                    name: "tracepoint:net:net_dev_queue".into(),
                    line: 6
                },
            ]
        );
        assert_eq!(m.problems, vec![]);
        assert!(m.is_contract());
    }

    #[test]
    fn a_parameter_has_the_type_of_its_default() {
        let cases = [
            ("streams=16  TCP_RR streams", ParamKind::Integer, "16"),
            ("every=5s  period", ParamKind::Duration, "5s"),
            ("verbose=false  say more", ParamKind::Bool, "false"),
            ("dev=macvtap*  devices", ParamKind::String, "macvtap*"),
            (
                "ports=[80, 443]  ports",
                ParamKind::IntegerList,
                "[80, 443]",
            ),
            (
                "devs=[eth0,eth1]  devices",
                ParamKind::StringList,
                "[eth0,eth1]",
            ),
            ("label=\"5 s\"  quoted", ParamKind::String, "5 s"),
            ("n=\"16\"  quoted number", ParamKind::String, "16"),
        ];
        for (line, kind, default) in cases {
            let p = param(line);
            assert_eq!(
                (p.kind, p.default.as_deref()),
                (kind, Some(default)),
                "{line}"
            );
        }
        let p = param("streams=16  TCP_RR streams (connections)");
        assert_eq!(p.doc, "TCP_RR streams (connections)");
        let p = param("target  the server");
        assert_eq!((p.default, p.kind), (None, ParamKind::String));
    }

    #[test]
    fn choices_are_the_alternatives_default_first() {
        let p = param("layer=tap|tun|bridge  which layer");
        assert_eq!(p.default.as_deref(), Some("tap"));
        assert_eq!(p.choices, ["tap", "tun", "bridge"]);
        let p = param("n=1|2|4  streams");
        assert_eq!(p.kind, ParamKind::Integer);
        let m = parse_meta("//! param: n=1|two  mixed\n");
        assert!(m.problems[0].message.contains("choice `two`"), "{m:?}");
    }

    #[test]
    fn problems_are_located_and_suggest() {
        let m = parse_meta(
            "//! verison: 1\n//! param: =3\n//! param: 9x=1\n//! param: a=1\n//! param: a=2\n\
             //! requires: vprobe 1.x\n//! version: one\n//! param: e=  empty\n//! param: q=\"open\n",
        );
        let lines: Vec<usize> = m.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 5, 6, 7, 8, 9], "{m:?}");
        assert_eq!(
            m.problems[0].message,
            "unknown header key `verison`; did you mean `version`?"
        );
        assert!(m.problems[3].message.contains("declared twice"));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("0.1.0", "0.1"));
        assert!(version_at_least("0.10.0", "0.9"));
        assert!(!version_at_least("0.1.0", "0.2"));
        assert!(!version_at_least("x", "0.1"));
    }

    #[test]
    fn the_summary_is_the_first_sentence() {
        let m = parse_meta("//! about: Scope it (`run ... --lab`). Only the lab. More.\n");
        assert_eq!(m.summary(), "Scope it (`run ... --lab`)");
        assert_eq!(parse_meta("//! about: One.\n").summary(), "One");
    }

    #[test]
    fn no_header_is_no_contract() {
        let m = parse_meta("probe(\"skb.drop\");");
        assert_eq!(m, Meta::default());
        assert!(!m.is_contract());
    }
}
