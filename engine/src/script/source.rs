//! The shape of script text: Rhai locates errors in 16 bits (line and
//! column up to 65535, then it saturates), so a longer script or line is
//! refused rather than given wrong error positions. [`check_shape`] applies
//! to any script text, however it came (a file, `-e`, a REPL line, an
//! import); reading files, with their size limit, is the library's
//! ([`crate::library::read`]).

/// Lines in one script or module: Rhai's line numbers stop at 65535.
pub const MAX_LINES: usize = u16::MAX as usize;
/// Characters in one line: Rhai's column numbers stop at 65535.
pub const MAX_LINE_CHARS: usize = u16::MAX as usize;

/// Text whose errors Rhai could not locate.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// More lines than Rhai can number.
    #[error("more than {MAX_LINES} lines: errors past that line could not be located (Rhai numbers lines in 16 bits); split it into modules")]
    TooManyLines,
    /// A line longer than Rhai can number the columns of.
    #[error("a line of more than {MAX_LINE_CHARS} characters: errors past that column could not be located (Rhai numbers columns in 16 bits)")]
    LineTooLong {
        /// The line (1-based).
        line: usize,
    },
}

impl ShapeError {
    /// (line, column) where the text stops being locatable.
    pub fn position(&self) -> (usize, usize) {
        match self {
            ShapeError::TooManyLines => (MAX_LINES + 1, 0),
            ShapeError::LineTooLong { line } => (*line, MAX_LINE_CHARS + 1),
        }
    }
}

/// Refuses text whose errors Rhai could not locate: more than [`MAX_LINES`]
/// lines, or a line of more than [`MAX_LINE_CHARS`] characters.
pub fn check_shape(text: &str) -> Result<(), ShapeError> {
    for (i, line) in text.split('\n').enumerate() {
        // an empty last line is the end of the file, not a line of its own
        if i >= MAX_LINES && !(i == MAX_LINES && line.is_empty()) {
            return Err(ShapeError::TooManyLines);
        }
        // bytes bound characters from above: count only long lines
        if line.len() > MAX_LINE_CHARS && line.chars().count() > MAX_LINE_CHARS {
            return Err(ShapeError::LineTooLong { line: i + 1 });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_errors_could_not_be_located_in_is_refused() {
        let lines = "\n".repeat(MAX_LINES - 1);
        check_shape(&lines).unwrap();
        check_shape(&format!("{lines}x")).unwrap();
        check_shape(&format!("{lines}x\n")).unwrap();
        let e = check_shape(&format!("{lines}x\ny")).unwrap_err();
        assert_eq!(e, ShapeError::TooManyLines);
        assert_eq!(e.position(), (65536, 0));
        check_shape(&"é".repeat(MAX_LINE_CHARS)).unwrap();
        let e = check_shape(&format!("1;\n{}", "x".repeat(MAX_LINE_CHARS + 1))).unwrap_err();
        assert_eq!(e, ShapeError::LineTooLong { line: 2 });
        assert_eq!(e.position(), (2, 65536));
    }
}
