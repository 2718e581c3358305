//! [`CheckpointError`]: what can go wrong while saving or restoring a checkpoint.

use std::io;
use std::path::PathBuf;

use adapeft_selection::integrity::IntegrityError;
use adapeft_selection::{SelectionError, StoreError};
use thiserror::Error;

/// Why a checkpoint could not be saved or restored. The model and the trainer passed in are
/// never changed when this is returned.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A file or folder of the checkpoint could not be created, read or written.
    #[error("I/O error on `{}`: {source}", file.display())]
    Io {
        /// The file or folder.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing or reading the trained tensors failed (see
    /// [`save_tensors`](adapeft_selection::save_tensors) / [`load_tensors`](adapeft_selection::load_tensors)).
    /// A damaged tensor file is [`CheckpointError::Integrity`] instead.
    #[error(transparent)]
    Store(StoreError),

    /// burn could not serialise or read the optimizer state.
    #[error("optimizer state `{}`: {message}", file.display())]
    Record {
        /// The optimizer state file.
        file: PathBuf,
        /// burn's error text.
        message: String,
    },

    /// The manifest is not an adapeft checkpoint manifest (not JSON, another format, a field
    /// missing).
    #[error("`{}` is not an adapeft checkpoint: {reason}", file.display())]
    NotACheckpoint {
        /// The manifest file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The checkpoint was written with a format version this build does not read.
    #[error(
        "`{}` is checkpoint version {found}; this build reads version {supported}",
        file.display()
    )]
    UnsupportedVersion {
        /// The manifest file.
        file: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },

    /// A file of the checkpoint was damaged since it was saved: a length or checksum does not
    /// match the manifest's, the manifest has no checksum, or a file does not describe what
    /// the manifest says (a parameter id, a state entry that does not add up).
    #[error(transparent)]
    Integrity(#[from] IntegrityError),

    /// The checkpoint was saved from another model: a float parameter is missing on one side
    /// or has another shape.
    #[error(
        "the checkpoint is from another model: parameter `{path}` is {} in the checkpoint but {} in this model",
        shape_words(.saved),
        shape_words(.found)
    )]
    ModelMismatch {
        /// The first parameter path (in model order) that differs.
        path: String,
        /// Its shape in the checkpoint (`None`: not there).
        saved: Option<Vec<usize>>,
        /// Its shape in the model given (`None`: not there).
        found: Option<Vec<usize>>,
    },

    /// The checkpoint was saved from another kind of trainer (`masked`, `reselect`,
    /// `gen<masked>`, `gen<reselect>`).
    #[error("the checkpoint holds a `{saved}` trainer, but a `{given}` was given to restore it")]
    AdapterMismatch {
        /// The kind saved.
        saved: String,
        /// The kind given.
        given: &'static str,
    },

    /// The checkpoint's optimizer state is from another optimizer (another type, another
    /// gradient clipping, or state the given optimizer cannot read).
    #[error("the checkpoint's optimizer is {saved}, but the trainer given uses {given}")]
    OptimizerMismatch {
        /// The optimizer saved, in words.
        saved: String,
        /// The optimizer given, in words.
        given: String,
    },

    /// A setting of the trainer given differs from the one the checkpoint was trained with
    /// (the GeN settings, the re-selection period): resuming with it would not continue the
    /// same run.
    #[error("setting `{setting}` is {saved} in the checkpoint but {given} in the trainer given")]
    SettingsMismatch {
        /// The setting's name.
        setting: &'static str,
        /// Its saved value.
        saved: String,
        /// Its value in the trainer given.
        given: String,
    },

    /// On save: the optimizer holds state for a parameter that is not a trained parameter of
    /// the model given (the trainer was used with another model). Nothing is written.
    #[error("the optimizer holds state for {what}, which is not a trained parameter of this model")]
    ForeignState {
        /// The parameter, by path or id.
        what: String,
    },

    /// The selection stored in the checkpoint could not be read.
    #[error("the checkpoint's selection: {0}")]
    Selection(#[from] SelectionError),
}

impl From<StoreError> for CheckpointError {
    /// A damaged tensor file is an [`CheckpointError::Integrity`] error, as a damaged
    /// optimizer record or manifest is.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Integrity(e) => CheckpointError::Integrity(e),
            other => CheckpointError::Store(other),
        }
    }
}

/// [`IntegrityError::Corrupt`] for `file`.
pub(crate) fn corrupt(file: &std::path::Path, reason: String) -> CheckpointError {
    CheckpointError::Integrity(IntegrityError::Corrupt {
        file: file.to_path_buf(),
        reason,
    })
}

fn shape_words(shape: &Option<Vec<usize>>) -> String {
    match shape {
        Some(shape) => format!("of shape {shape:?}"),
        None => "absent".to_string(),
    }
}
