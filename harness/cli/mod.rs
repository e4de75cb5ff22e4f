//! The bodies of the `trace-harness` commands, behind the argument parsing of `main.rs`: each
//! takes plain options, prints what the command shows, and returns how it ended as an [`Exit`].

mod commands;
mod diff;
mod progress;
mod receive;
mod run;

use std::io::Write;
use std::path::Path;

pub use commands::{
    explain, import, list, overhead, query, serve, serve_contract, ImportOptions, SeedQuery,
};
pub use diff::{diff, DiffFormat, DiffOptions};
pub use receive::{receive, ReceiveFormat, ReceiveOptions};
pub use run::{run, OtlpOptions, RunOptions, Shard};

use crate::scenario::ScenarioError;

/// How a command ended; `main` maps each to its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Success,
    /// An assertion or invariant failed (or a measurement could not be made).
    Failed,
    /// The input was unusable: a scenario, a file, an option.
    BadInput,
    /// An OTLP export failed.
    ExportFailed,
}

/// Reports every scenario error, a blank line after each.
fn bad_input(errors: Vec<ScenarioError>) -> Exit {
    for e in errors {
        eprintln!("error: {e}\n");
    }
    Exit::BadInput
}

/// Reports `error` as bad input.
fn fail(error: impl std::fmt::Display) -> Exit {
    eprintln!("error: {error}");
    Exit::BadInput
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Readable by others, as files usually are: CI uploads artifacts as another user.
    let mut file = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Whether progress may redraw a bar: standard error is a terminal and this is not CI.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}
