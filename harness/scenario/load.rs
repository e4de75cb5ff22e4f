//! Loading scenario files from disk: one file, or every `*.toml` of a directory.

use std::path::{Path, PathBuf};

use super::{Scenario, ScenarioError};

impl Scenario {
    /// Reads and parses the scenario file at `path`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }
}

/// Loads every scenario named by `paths`; all errors are collected so one run shows them all.
pub(crate) fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match scenario_files(path) {
            Ok(found) => files.extend(found),
            Err(e) => errors.push(e),
        }
    }
    let mut scenarios = Vec::new();
    for file in files {
        match Scenario::load(&file) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(scenarios)
    } else {
        Err(errors)
    }
}

/// The scenario files `path` names: itself if it is not a directory, else its `*.toml` files
/// in name order (an error if it has none).
pub(crate) fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read_error = |source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    };
    if !path.is_dir() {
        // A missing file is reported by the load that follows, with its path.
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the directory holds no *.toml scenario files",
        )));
    }
    Ok(files)
}
