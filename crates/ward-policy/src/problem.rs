//! Load errors that name every problem at once: what is wrong, where
//! (`file:line:column`) and, when Cedar knows, how to fix it.
//!
//! Cedar reports positions as byte offsets in miette labels; this module owns
//! turning those into human positions in the file the text came from.

use std::fmt;

use miette::Diagnostic;

/// A position in a source file; line and column are 1-based, the column
/// counts characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name the text was loaded under.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
}

impl Location {
    /// The position of byte `offset` in `text`; offsets past the end (or
    /// inside a character) clamp to the last valid position before them.
    pub fn from_offset(file: &str, text: &str, offset: usize) -> Self {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end = end.saturating_sub(1);
        }
        let before = text.get(..end).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        Self {
            file: file.to_owned(),
            line: before.matches('\n').count() + 1,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One thing wrong with a schema, policy or entity file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// Where, when the source gives a position; otherwise the file alone is
    /// named in `what`.
    pub location: Option<Location>,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl Problem {
    /// A problem without a position.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            location: None,
            help: None,
        }
    }

    /// Adds a fix hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// A problem from a Cedar diagnostic whose labels are offsets in `text`
    /// (the content of `file`).
    pub(crate) fn from_diagnostic(diag: &dyn Diagnostic, file: &str, text: &str) -> Self {
        let offset = diag
            .labels()
            .and_then(|mut labels| labels.next())
            .map(|label| label.offset());
        let mut what = diag.to_string();
        // Cedar nests the interesting part of some errors one level down.
        if let Some(related) = diag.related() {
            for inner in related {
                what.push_str("; ");
                what.push_str(&inner.to_string());
            }
        }
        Self {
            what,
            location: Some(match offset {
                Some(offset) => Location::from_offset(file, text, offset),
                None => Location {
                    file: file.to_owned(),
                    line: 1,
                    column: 1,
                },
            }),
            help: diag.help().map(|h| h.to_string()),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        f.write_str(&self.what)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Why a schema, policy set or bundle was rejected: every problem found, in
/// file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    problems: Vec<Problem>,
}

impl LoadError {
    /// Wraps the problems found; callers only build one when there is at
    /// least one.
    pub fn new(problems: Vec<Problem>) -> Self {
        Self { problems }
    }

    /// Every problem, in the order found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n{problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "ab\nçd\nef";
        let at = |o| Location::from_offset("f.cedar", text, o).to_string();
        assert_eq!(at(0), "f.cedar:1:1");
        assert_eq!(at(3), "f.cedar:2:1");
        // 'ç' is two bytes; 'd' is the second character.
        assert_eq!(at(5), "f.cedar:2:2");
        // Inside 'ç' clamps back to its start; past the end clamps to the end.
        assert_eq!(at(4), "f.cedar:2:1");
        assert_eq!(at(100), "f.cedar:3:3");
    }

    #[test]
    fn load_error_lists_every_problem() {
        let err = LoadError::new(vec![
            Problem::new("first"),
            Problem::new("second").with_help("do this"),
        ]);
        let text = err.to_string();
        assert!(text.starts_with("2 problems"), "{text}");
        assert!(text.contains("first") && text.contains("second\n  help: do this"));
    }
}
