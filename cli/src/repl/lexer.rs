//! A small, forgiving tokenizer of Rhai source for the editor: the validator
//! asks whether brackets and strings are closed, the highlighter colours
//! tokens, the completer finds the call and argument the cursor is in.
//!
//! It never fails: unfinished input (an open string, a lone quote) gives
//! tokens marked unclosed. Positions are byte offsets into the line.

use std::ops::Range;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A name: a variable, function, keyword.
    Ident,
    /// A number literal.
    Number,
    /// `"..."` or `` `...` ``; `closed` is false when the line ends inside it.
    Str { closed: bool },
    /// `'c'`.
    Char { closed: bool },
    /// `// ...` or `/* ... */` (nested, as in Rhai).
    Comment { closed: bool },
    /// One punctuation character: brackets, `.`, `,`, `;`, operators.
    Punct(char),
}

/// One token and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Its kind.
    pub kind: Kind,
    /// Its bytes in the line.
    pub span: Range<usize>,
}

impl Token {
    /// Its text in `line`.
    pub fn text<'a>(&self, line: &'a str) -> &'a str {
        &line[self.span.clone()]
    }

    /// The contents of a string token (without quotes), escapes left as written.
    pub fn string_body<'a>(&self, line: &'a str) -> &'a str {
        match self.kind {
            Kind::Str { closed } => {
                let end = if closed {
                    self.span.end - 1
                } else {
                    self.span.end
                };
                &line[self.span.start + 1..end.max(self.span.start + 1)]
            }
            _ => self.text(line),
        }
    }

    /// Whether it is neither whitespace-like nor a comment.
    pub fn is_code(&self) -> bool {
        !matches!(self.kind, Kind::Comment { .. })
    }
}

/// Splits `line` into tokens (whitespace is dropped).
pub fn tokenize(line: &str) -> Vec<Token> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment { closed: true }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (end, closed) = block_comment(b, i);
                i = end;
                Kind::Comment { closed }
            }
            b'"' => {
                let (end, closed) = quoted(b, i, b'"');
                i = end;
                Kind::Str { closed }
            }
            b'`' => {
                let (end, closed) = template(b, i);
                i = end;
                Kind::Str { closed }
            }
            b'\'' => {
                let (end, closed) = quoted(b, i, b'\'');
                i = end;
                Kind::Char { closed }
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                // a fraction, but not a range `1..2`
                if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                }
                Kind::Number
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                Kind::Ident
            }
            _ => {
                // one character, whole (UTF-8 in operators is an error Rhai reports)
                let ch = line[i..].chars().next().unwrap_or('?');
                i += ch.len_utf8();
                Kind::Punct(ch)
            }
        };
        out.push(Token {
            kind,
            span: start..i,
        });
    }
    out
}

/// A `quote`-delimited literal from `start`: (end, closed). A backslash
/// escapes the next byte; a line break does not end it (Rhai's `\` line
/// continuation aside, an unclosed string is what the validator must see).
fn quoted(b: &[u8], start: usize, quote: u8) -> (usize, bool) {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == quote => return (i + 1, true),
            _ => i += 1,
        }
    }
    (b.len(), false)
}

/// A backtick string with `${ ... }` interpolations, which may hold strings
/// and braces of their own.
fn template(b: &[u8], start: usize) -> (usize, bool) {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'`' => return (i + 1, true),
            b'$' if b.get(i + 1) == Some(&b'{') => {
                let mut depth = 1;
                i += 2;
                while i < b.len() && depth > 0 {
                    match b[i] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        b'"' => {
                            i = quoted(b, i, b'"').0;
                            continue;
                        }
                        b'`' => {
                            i = template(b, i).0;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    (b.len(), false)
}

fn block_comment(b: &[u8], start: usize) -> (usize, bool) {
    let mut depth = 0;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return (i, true);
            }
        } else {
            i += 1;
        }
    }
    (b.len(), false)
}

/// The brackets still open at the end of `tokens`, innermost last, each with
/// its token index.
pub fn open_brackets(tokens: &[Token]) -> Vec<(char, usize)> {
    let mut stack = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.kind {
            Kind::Punct(c @ ('(' | '[' | '{')) => stack.push((c, i)),
            Kind::Punct(c @ (')' | ']' | '}')) => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                // a stray closer is Rhai's error to report, not the editor's
                if stack.last().is_some_and(|(o, _)| *o == open) {
                    stack.pop();
                }
            }
            _ => {}
        }
    }
    stack
}

/// Whether `line` ends with something still open: a string, a block
/// comment, a bracket. Such input continues on the next line.
pub fn is_incomplete(line: &str) -> bool {
    let tokens = tokenize(line);
    let open_token = tokens.last().is_some_and(|t| {
        matches!(
            t.kind,
            Kind::Str { closed: false } | Kind::Comment { closed: false }
        )
    });
    open_token || !open_brackets(&tokens).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<(Kind, &str)> {
        tokenize(line)
            .into_iter()
            .map(|t| (t.kind, &line[t.span]))
            .collect()
    }

    #[test]
    fn splits_a_probe_line() {
        let k = kinds(r#"probe("skb.drop").count("d", ["dev"]); // hi"#);
        assert_eq!(k[0], (Kind::Ident, "probe"));
        assert_eq!(k[2], (Kind::Str { closed: true }, "\"skb.drop\""));
        assert_eq!(k[4], (Kind::Punct('.'), "."));
        assert_eq!(
            k.last().unwrap(),
            &(Kind::Comment { closed: true }, "// hi")
        );
    }

    #[test]
    fn strings_keep_escapes_and_interpolations() {
        let k = kinds(r#""a\"b" `x ${ "}" + `y` } z` 'c'"#);
        assert_eq!(
            k,
            [
                (Kind::Str { closed: true }, r#""a\"b""#),
                (Kind::Str { closed: true }, r#"`x ${ "}" + `y` } z`"#),
                (Kind::Char { closed: true }, "'c'"),
            ]
        );
    }

    #[test]
    fn numbers_ranges_and_unicode() {
        let k = kinds("1..=2.5 é");
        assert_eq!(k[0], (Kind::Number, "1"));
        assert_eq!(k[1], (Kind::Punct('.'), "."));
        assert_eq!(k[4], (Kind::Number, "2.5"));
        assert_eq!(k[5], (Kind::Punct('é'), "é"));
    }

    #[test]
    fn open_input_is_incomplete() {
        assert!(is_incomplete("probe(\"skb.drop\""));
        assert!(is_incomplete("every(\"1s\", || {"));
        assert!(is_incomplete("print(\"abc"));
        assert!(is_incomplete("print(`a ${ x"));
        assert!(is_incomplete("/* note"));
        assert!(is_incomplete("let a = [1,\n 2,"));
        assert!(!is_incomplete("every(\"1s\", || {\n print(1);\n});"));
        assert!(!is_incomplete("print(\"(\")"));
        assert!(!is_incomplete("// (unclosed in a comment"));
        assert!(!is_incomplete(")"), "a stray closer is Rhai's error");
        assert!(!is_incomplete(""));
    }

    #[test]
    fn string_bodies() {
        let line = r#"probe("skb.dr"#;
        let t = tokenize(line);
        assert_eq!(t[2].string_body(line), "skb.dr");
        let line = r#"x("")"#;
        assert_eq!(tokenize(line)[2].string_body(line), "");
    }
}
