//! Multi-line input: Enter on a line whose brackets, strings or block
//! comments are still open continues it on the next line.

use reedline::{ValidationResult, Validator};

use super::lexer;

/// Says whether the buffer is a whole input yet.
pub struct ReplValidator;

/// Whether `buffer` is ready to run. A `:` command is always whole.
pub fn is_complete(buffer: &str) -> bool {
    buffer.trim_start().starts_with(':') || !lexer::is_incomplete(buffer)
}

impl Validator for ReplValidator {
    fn validate(&self, line: &str) -> ValidationResult {
        if is_complete(line) {
            ValidationResult::Complete
        } else {
            ValidationResult::Incomplete
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_code_continues_commands_do_not() {
        assert!(!is_complete("every(\"1s\", || {"));
        assert!(!is_complete("print(`drops: ${"));
        assert!(is_complete("every(\"1s\", || {\n  print(\"x\");\n});"));
        assert!(is_complete(":save \"unclosed("));
        assert!(is_complete("  :help"));
        assert!(is_complete(""));
    }
}
