//! Why a scenario could not be loaded, and where in its file: `file:line:col` with the line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a scenario could not be loaded. Every variant names the file; parse and validation
/// errors also give line and column and show the offending line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read, or a scenario directory could not be listed or holds no
    /// `*.toml` file.
    #[error("{}: cannot read the scenario: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error (`NotFound` for a directory without scenarios).
        source: std::io::Error,
    },
    /// The text is not valid TOML, or breaks the scenario format's rules or limits; boxed
    /// to keep the error small.
    #[error("{0}")]
    Invalid(Box<Located>),
}

/// A message pinned to a place in a scenario file.
#[derive(Debug)]
pub struct Located {
    /// The scenario file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
    source_line: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gutter = " ".repeat(self.line.to_string().len());
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        writeln!(f, "{gutter} |")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{gutter} | {}^",
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

/// Where a TOML string's content begins: past the opening quote(s).
pub(super) fn string_content_start(text: &str, span: Range<usize>) -> usize {
    let raw = text.get(span.clone()).unwrap_or_default();
    let quotes = ["\"\"\"", "'''", "\"", "'"]
        .into_iter()
        .find(|q| raw.starts_with(q))
        .map_or(0, str::len);
    span.start + quotes
}

/// A TOML decoding message with serde's Rust type names (`expected usize`, `expected struct
/// BookStep`) said in the file's terms.
pub(crate) fn in_toml_terms(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once("expected ") else {
        return message.to_owned();
    };
    let plain = match expected.trim_end() {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number, 0 or more",
        "i64" | "i32" | "i16" | "i8" | "isize" => "a whole number",
        "f64" | "f32" => "a number",
        "a sequence" => "an array `[…]`",
        "a map" => "a table `{ … }`",
        other if other.starts_with("struct ") => "a table `{ … }`",
        _ => return message.to_owned(),
    };
    format!("{head}expected {plain}")
}

pub(crate) fn locate(path: &Path, text: &str, offset: usize, message: String) -> Located {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    let source_line = text[line_start..]
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    Located {
        path: path.to_owned(),
        line,
        column,
        message,
        source_line,
    }
}
