//! Errors of selections.

use thiserror::Error;

/// A selection could not be read or transferred.
#[derive(Debug, Error)]
pub enum SelectionError {
    /// The JSON was written with a schema version this build does not read.
    #[error(
        "selection schema version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },
    /// The text is not JSON, or not a selection of this schema version.
    #[error("not a selection: {0}")]
    Json(#[source] serde_json::Error),
    /// The JSON has no schema version: it was not written by [`Selection::to_json`](crate::Selection::to_json).
    #[error("not a selection: the JSON has no `version` field")]
    MissingVersion,
    /// Paths that have no counterpart in the other model.
    #[error("cannot transfer the selection: {} path(s) do not match: {}", .paths.len(), .paths.join(", "))]
    Unmatched {
        /// Every unmatched path, prefixed with the side it is on (`source:` / `target:`).
        paths: Vec<String>,
    },
    /// A cell of the JSON's groups has no tiling, or lies outside it.
    #[error("not a selection: cell {cell} of `{path}` {reason}")]
    InvalidCell {
        /// The tensor's path.
        path: String,
        /// The cell.
        cell: u32,
        /// What is wrong.
        reason: &'static str,
    },
}
