//! What is wrong with a recipe, and where: byte spans while reading, rendered as
//! `file:line:col` once the whole recipe has been looked at.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub type Span = Range<usize>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    /// The recipe is valid but probably not what was meant, or cannot run on
    /// this build; checking still succeeds.
    Warning,
}

/// A finding at a byte span of the recipe text.
#[derive(Clone, Debug)]
struct Finding {
    severity: Severity,
    span: Span,
    message: String,
}

/// Findings and the span of every key read, collected while reading so that
/// one pass reports everything.
#[derive(Default)]
pub struct Collector {
    findings: RefCell<Vec<Finding>>,
    spans: RefCell<BTreeMap<String, Span>>,
}

impl Collector {
    pub fn error(&self, span: Span, message: impl Into<String>) {
        self.push(Severity::Error, span, message.into());
    }

    pub fn warn(&self, span: Span, message: impl Into<String>) {
        self.push(Severity::Warning, span, message.into());
    }

    fn push(&self, severity: Severity, span: Span, message: String) {
        self.findings.borrow_mut().push(Finding {
            severity,
            span,
            message,
        });
    }

    /// Remembers where the key at dotted `path` (`train.steps`) is.
    pub fn record_span(&self, path: String, span: Span) {
        self.spans.borrow_mut().insert(path, span);
    }

    /// Where the key at `path` is or, when it was left to its default, the
    /// nearest enclosing table that is in the file.
    pub fn span_of(&self, path: &str) -> Span {
        let spans = self.spans.borrow();
        let mut path = path;
        loop {
            if let Some(span) = spans.get(path) {
                return span.clone();
            }
            match path.rfind('.') {
                Some(dot) => path = &path[..dot],
                None => return spans.get("").cloned().unwrap_or(0..0),
            }
        }
    }

    pub fn has_errors(&self) -> bool {
        self.findings
            .borrow()
            .iter()
            .any(|finding| finding.severity == Severity::Error)
    }

    /// The findings in the order of the file, with line and column.
    pub fn into_diagnostics(self, path: &Path, text: &str) -> Vec<Diagnostic> {
        let mut findings = self.findings.into_inner();
        findings.sort_by_key(|finding| (finding.span.start, finding.severity));
        findings
            .into_iter()
            .map(|finding| {
                let (line, column) = line_column(text, finding.span.start);
                Diagnostic {
                    file: path.to_path_buf(),
                    line,
                    column,
                    severity: finding.severity,
                    message: finding.message,
                }
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One finding, placed in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\n[héllo]\nkey = 2";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        let key = text.find("key").unwrap();
        assert_eq!(line_column(text, key), (3, 1));
        let bracket = text.find(']').unwrap();
        assert_eq!(line_column(text, bracket), (2, 7));
    }

    #[test]
    fn defaulted_keys_point_at_their_table() {
        let collector = Collector::default();
        collector.record_span(String::new(), 0..100);
        collector.record_span("train".into(), 10..20);
        assert_eq!(collector.span_of("train.warmup_steps"), 10..20);
        assert_eq!(collector.span_of("qat.steps"), 0..100);
    }
}
