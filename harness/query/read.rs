//! Streaming reader of NDJSON log exports: one line at a time, bounded line length, bad lines
//! reported with their file and line number and skipped.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::QueryError;
use crate::report::epoch::parse_unix_us;

/// A line longer than this is not a log line we wrote; it is skipped rather than buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Bad lines listed one by one; beyond this they are only counted.
pub const MAX_REPORTED_BAD_LINES: usize = 20;

/// The fields of a log line the seed's queries look at. Everything else on the line is skipped
/// without being copied.
#[derive(Deserialize)]
pub(crate) struct Record<'a> {
    /// RFC 3339.
    #[serde(borrow)]
    pub timestamp: Cow<'a, str>,
    /// `info`, `error`, …
    #[serde(borrow)]
    pub level: Cow<'a, str>,
    /// The seed's prefix, `[trace:… span:… op:…]`.
    #[serde(borrow, default)]
    pub prefix: Cow<'a, str>,
    /// The message.
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
    /// The replay the line came from, when the export names it.
    #[serde(borrow, default)]
    pub scenario: Option<Cow<'a, str>>,
}

/// A record with its timestamp parsed.
pub(crate) struct Parsed<'a> {
    /// The line as read.
    pub record: Record<'a>,
    /// Its timestamp in microseconds since the Unix epoch.
    pub unix_us: i64,
}

/// A line that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.reason)
    }
}

/// What reading saw, beside the records it handed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Lines read.
    pub lines: u64,
    /// Lines the query could use.
    pub usable: u64,
    /// Lines skipped.
    pub bad: u64,
    /// The first [`MAX_REPORTED_BAD_LINES`] bad lines.
    pub reported: Vec<BadLine>,
}

impl ReadStats {
    fn bad(&mut self, path: &Path, line: u64, reason: impl Into<String>) {
        self.bad += 1;
        if self.reported.len() < MAX_REPORTED_BAD_LINES {
            self.reported.push(BadLine {
                path: path.to_owned(),
                line,
                reason: reason.into(),
            });
        }
    }
}

/// Calls `visit` with every usable record of every file, in file order then line order.
/// Blank lines are ignored; lines that are not a JSON log record are counted as bad.
pub(crate) fn for_each_record(
    paths: &[PathBuf],
    stats: &mut ReadStats,
    mut visit: impl FnMut(Parsed<'_>) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let mut buf = Vec::with_capacity(4096);
    for path in paths {
        let file = File::open(path).map_err(|source| QueryError::Read {
            path: path.clone(),
            source,
        })?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(|source| QueryError::Read {
                    path: path.clone(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            line_no += 1;
            stats.lines += 1;
            if buf.len() > MAX_LINE_BYTES {
                skip_rest_of_line(&mut reader).map_err(|source| QueryError::Read {
                    path: path.clone(),
                    source,
                })?;
                stats.bad(path, line_no, format!("longer than {MAX_LINE_BYTES} bytes"));
                continue;
            }
            let text = buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let record: Record<'_> = match serde_json::from_slice(text) {
                Ok(record) => record,
                Err(e) => {
                    stats.bad(path, line_no, format!("not an NDJSON log record: {e}"));
                    continue;
                }
            };
            let Some(unix_us) = parse_unix_us(&record.timestamp) else {
                stats.bad(
                    path,
                    line_no,
                    format!("timestamp `{}` is not RFC 3339", record.timestamp),
                );
                continue;
            };
            stats.usable += 1;
            visit(Parsed { record, unix_us })?;
        }
    }
    Ok(())
}

fn skip_rest_of_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}
