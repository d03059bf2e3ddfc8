//! The prompt: `vprobe> `, or `vprobe[2]> ` while two probes are attached,
//! and `... ` on continuation lines.

use std::borrow::Cow;

use reedline::{Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus};

use super::{lock, Shared};

/// The REPL's prompt, showing how many probes are attached.
pub struct ReplPrompt {
    known: Shared,
}

impl ReplPrompt {
    /// A prompt reading the session's state from `known`.
    pub fn new(known: Shared) -> Self {
        Self { known }
    }
}

/// The left prompt for `attached` probes.
pub fn left(attached: usize) -> String {
    match attached {
        0 => "vprobe".into(),
        n => format!("vprobe[{n}]"),
    }
}

impl Prompt for ReplPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        Cow::Owned(left(lock(&self.known).attached))
    }

    fn render_prompt_right(&self) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed("> ")
    }

    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed("... ")
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let failing = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({failing}search: {}) ", search.term))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_attached_probes() {
        assert_eq!(left(0), "vprobe");
        assert_eq!(left(2), "vprobe[2]");
    }
}
