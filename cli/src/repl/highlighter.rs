//! Syntax colours: keywords, API functions, strings, numbers, comments; an
//! attach point name in `probe("…")` green when the catalog has it, red when
//! not; a `:` command blue when known, red when not. None when `NO_COLOR` is
//! set (<https://no-color.org>).

use nu_ansi_term::{Color, Style};
use reedline::{Highlighter, StyledText};
use vprobe_engine::script::API;

use super::colon::ColonCommand;
use super::lexer::{tokenize, Kind};

/// What a part of the line is, for its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Whitespace, operators, plain names.
    Plain,
    /// `let`, `fn`, `if`, ...
    Keyword,
    /// A vprobe API function being called.
    Function,
    /// A string or character literal.
    Str,
    /// An attach point name the catalog has.
    KnownProbe,
    /// Something that is certainly wrong: an unknown probe or command.
    Unknown,
    /// Numbers, `true`, `false`.
    Literal,
    /// A comment.
    Comment,
    /// A known `:` command.
    Command,
}

impl Class {
    fn style(self) -> Style {
        match self {
            Class::Plain => Style::new(),
            Class::Keyword => Color::Purple.bold(),
            Class::Function => Color::Cyan.normal(),
            Class::Str => Color::Green.normal(),
            Class::KnownProbe => Color::Green.bold(),
            Class::Unknown => Color::Red.normal(),
            Class::Literal => Color::Yellow.normal(),
            Class::Comment => Color::DarkGray.normal(),
            Class::Command => Color::Blue.bold(),
        }
    }
}

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "break",
    "continue", "return", "throw", "try", "catch", "switch", "import", "export", "as", "private",
    "global", "this",
];

/// The line cut into classified parts that cover it exactly.
pub fn classify(line: &str) -> Vec<(Class, &str)> {
    let mut out = Vec::new();
    let lead = line.len() - line.trim_start().len();
    if line[lead..].starts_with(':') {
        let end = line[lead..]
            .find(char::is_whitespace)
            .map_or(line.len(), |i| lead + i);
        let word = &line[lead..end];
        let class = if ColonCommand::named(word).is_some() {
            Class::Command
        } else {
            Class::Unknown
        };
        out.push((Class::Plain, &line[..lead]));
        out.push((class, word));
        out.push((Class::Plain, &line[end..]));
        out.retain(|(_, s)| !s.is_empty());
        return out;
    }
    let tokens = tokenize(line);
    let mut at = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.span.start > at {
            out.push((Class::Plain, &line[at..t.span.start]));
        }
        let text = t.text(line);
        let prev = |n: usize| i.checked_sub(n).map(|j| &tokens[j]);
        let next_is_call = tokens
            .get(i + 1)
            .is_some_and(|n| n.kind == Kind::Punct('('));
        let class = match t.kind {
            Kind::Ident if text == "true" || text == "false" => Class::Literal,
            Kind::Ident if KEYWORDS.contains(&text) => Class::Keyword,
            Kind::Ident if next_is_call && API.iter().any(|f| f.name == text) => Class::Function,
            Kind::Ident => Class::Plain,
            Kind::Number => Class::Literal,
            Kind::Str { .. }
                if prev(1).is_some_and(|p| p.kind == Kind::Punct('('))
                    && prev(2).is_some_and(|p| p.text(line) == "probe")
                    && line.as_bytes()[t.span.start] == b'"' =>
            {
                // unfinished names are not wrong yet
                let name = t.string_body(line);
                match t.kind {
                    _ if vprobe_engine::probes::find(name).is_some() => Class::KnownProbe,
                    Kind::Str { closed: true } => Class::Unknown,
                    _ => Class::Str,
                }
            }
            Kind::Str { .. } | Kind::Char { .. } => Class::Str,
            Kind::Comment { .. } => Class::Comment,
            Kind::Punct(_) => Class::Plain,
        };
        out.push((class, text));
        at = t.span.end;
    }
    if at < line.len() {
        out.push((Class::Plain, &line[at..]));
    }
    out
}

/// Whether colours are wanted: not when `NO_COLOR` is set to anything but
/// the empty string.
pub fn colors_wanted(no_color: Option<&std::ffi::OsStr>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

/// Colours the line being edited (or only classifies it, without colours).
pub struct ReplHighlighter {
    /// Whether to colour at all.
    pub colors: bool,
}

impl Highlighter for ReplHighlighter {
    fn highlight(&self, line: &str, _cursor: usize) -> StyledText {
        let mut styled = StyledText::new();
        for (class, text) in classify(line) {
            let style = if self.colors {
                class.style()
            } else {
                Style::new()
            };
            styled.push((style, text.to_string()));
        }
        styled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(line: &str) -> Vec<(Class, &str)> {
        classify(line)
            .into_iter()
            .filter(|(c, _)| *c != Class::Plain)
            .collect()
    }

    #[test]
    fn parts_cover_the_line_exactly() {
        for line in [
            r#"  let d = probe("skb.drop").count("n", ["dev"]); // x"#,
            "every(\"1s\", || {\n\tprint(`a ${b}`);\n})",
            "  :probes  ",
            "é + 'x' /* open",
            "",
        ] {
            let joined: String = classify(line).iter().map(|(_, s)| *s).collect();
            assert_eq!(joined, line);
            let styled = ReplHighlighter { colors: true }.highlight(line, 0);
            assert_eq!(styled.raw_string(), line);
        }
    }

    #[test]
    fn probe_names_functions_and_keywords() {
        assert_eq!(
            classes(r#"let d = probe("skb.drop"); probe("skb.dorp"); probe("skb.d"#),
            [
                (Class::Keyword, "let"),
                (Class::Function, "probe"),
                (Class::KnownProbe, "\"skb.drop\""),
                (Class::Function, "probe"),
                (Class::Unknown, "\"skb.dorp\""),
                (Class::Function, "probe"),
                (Class::Str, "\"skb.d"),
            ]
        );
        assert_eq!(
            classes("d.count(\"x\"); count; 12 true // c"),
            [
                (Class::Function, "count"),
                (Class::Str, "\"x\""),
                (Class::Literal, "12"),
                (Class::Literal, "true"),
                (Class::Comment, "// c"),
            ]
        );
    }

    // Regression: NO_COLOR was ignored by the highlighter.
    #[test]
    fn no_color_means_no_escape_sequences() {
        let line = r#"let d = probe("skb.drop"); :nope"#;
        let plain = ReplHighlighter { colors: false }.highlight(line, 0);
        assert!(plain.buffer.iter().all(|(s, _)| *s == Style::new()));
        assert!(!plain.render_simple().contains('\x1b'));
        let colored = ReplHighlighter { colors: true }.highlight(line, 0);
        assert!(colored.render_simple().contains('\x1b'));
        assert!(colors_wanted(None));
        assert!(colors_wanted(Some("".as_ref())));
        assert!(!colors_wanted(Some("1".as_ref())));
    }

    #[test]
    fn commands() {
        assert_eq!(
            classify(" :probes x"),
            [
                (Class::Plain, " "),
                (Class::Command, ":probes"),
                (Class::Plain, " x")
            ]
        );
        assert_eq!(classes(":nope"), [(Class::Unknown, ":nope")]);
    }
}
