//! Saving and loading the trained subset of a model's parameters.
//!
//! After fine-tuning only a selection of a model's tensors, there is no reason to write the
//! whole model back to disk: [`save_tensors`] writes just the selected tensors to a
//! [SafeTensors](https://github.com/huggingface/safetensors) file, together with a small
//! *manifest* (a JSON string describing the selection) kept in the file's header metadata
//! under [`MANIFEST_KEY`]. This is the same idea as a PEFT adapter file: its size follows the
//! number of trained elements, not the size of the model.
//!
//! Later, [`load_tensors`] puts the stored tensors back onto a freshly built base model of the
//! same architecture, and [`read_manifest`] reads the manifest alone (from the header, without
//! touching the tensor data).
//!
//! Tensors are identified by their dotted module path; see [`save_tensors`] for the convention
//! and an example.
//!
//! # Integrity
//!
//! A file written by [`save_tensors`] also carries, under [`INTEGRITY_KEY`], the checksums of
//! the manifest and of every stored tensor's bytes, in the one format of the
//! [`integrity`](crate::integrity) module, and its format version under [`VERSION_KEY`].
//! [`load_tensors`] and [`read_manifest`] verify them before anything is applied, so a
//! damaged file (a flipped bit, a truncated copy) gives a [`StoreError::Integrity`] naming the
//! file and the tensor instead of loading different weights.
//!
//! Nothing loads unverified by accident: see [`load_tensors`] for how a file written before
//! checksums existed is recognised.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use adapeft_importance::{ParamVisitor, layout, visit_params};
use burn::module::{Module, Param};
use burn::store::{
    ApplyError, ModuleSnapshot, ModuleStore, SafetensorsStore, SafetensorsStoreError,
};
use burn::tensor::Tensor;
use serde::Deserialize;

use crate::integrity::{self, Checksums, IntegrityError};

/// Key under which the manifest JSON is stored in the safetensors header metadata.
pub const MANIFEST_KEY: &str = "adapeft.selection";

/// Key under which the checksums of the manifest and of every stored tensor are kept in the
/// safetensors header metadata (see [`load_tensors`]).
pub const INTEGRITY_KEY: &str = "adapeft.integrity";

/// Key under which the file's format version ([`STORE_VERSION`]) is kept in the safetensors
/// header metadata.
pub const VERSION_KEY: &str = "adapeft.version";

/// The format version [`save_tensors`] writes: 2, a file that records checksums and must
/// have them. Version 1 files carry no [`VERSION_KEY`]; they were written with or (by the
/// first builds) without checksums, see [`load_tensors`].
pub const STORE_VERSION: u32 = 2;

/// The metadata entries burn-store writes into every file by default. A file without
/// checksums is recognised as older than them only when its metadata holds these and the
/// manifest, and nothing else.
const BURN_METADATA: [&str; 3] = ["format", "producer", "version"];

/// Largest header [`read_manifest`] accepts, in bytes (the limit the `safetensors` crate uses).
const MAX_HEADER_LEN: u64 = 100_000_000;

/// Everything that can go wrong while saving or loading a subset of a model's tensors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened, read or written.
    #[error("I/O error on `{}`: {source}", file.display())]
    Io {
        /// The file being read or written.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// burn-store's SafeTensors store refused the operation (a malformed container, a dtype
    /// SafeTensors cannot hold, a tensor that failed to load, ...).
    #[error("safetensors store error on `{}`: {message}", file.display())]
    Store {
        /// The file being read or written.
        file: PathBuf,
        /// burn-store's error text.
        message: String,
    },

    /// The file does not start with a well-formed SafeTensors header.
    #[error("`{}` is not a SafeTensors file: {reason}", file.display())]
    InvalidHeader {
        /// The offending file.
        file: PathBuf,
        /// What is wrong with its header.
        reason: String,
    },

    /// The file is a SafeTensors file, but its header metadata has no [`MANIFEST_KEY`] entry,
    /// so it was not written by [`save_tensors`].
    #[error(
        "`{}` has no adapeft manifest (no `{MANIFEST_KEY}` entry in its metadata)",
        file.display()
    )]
    NoManifest {
        /// The offending file.
        file: PathBuf,
    },

    /// A path asked for on save is not the path of a float tensor parameter of the model.
    #[error("`{path}` is not a float tensor parameter of the model")]
    UnknownPath {
        /// The requested path.
        path: String,
    },

    /// A tensor stored in the file has no float tensor parameter at its path in the model.
    #[error("stored tensor `{path}` matches no float tensor parameter of the model")]
    MissingParam {
        /// The stored tensor's path.
        path: String,
    },

    /// A stored tensor and the model's parameter at the same path have different shapes.
    #[error("stored tensor `{path}` has shape {stored:?} but the model's parameter has {model:?}")]
    ShapeMismatch {
        /// The tensor's path.
        path: String,
        /// Shape of the stored tensor.
        stored: Vec<usize>,
        /// Shape of the model's parameter.
        model: Vec<usize>,
    },

    /// The file was damaged after it was saved: a checksum does not match, or the checksums a
    /// file of its version records are missing or unreadable (see [`load_tensors`]).
    #[error(transparent)]
    Integrity(#[from] IntegrityError),

    /// The file's [`VERSION_KEY`] names a format version this build does not read (a newer
    /// build wrote it).
    #[error(
        "`{}` is adapter format version {found}; this build reads versions up to {STORE_VERSION}",
        file.display()
    )]
    UnsupportedVersion {
        /// The offending file.
        file: PathBuf,
        /// The version in the file.
        found: u64,
    },

    /// A stored tensor is not a floating-point tensor, so it cannot be a trained float
    /// parameter.
    #[error("stored tensor `{path}` has non-float dtype {dtype}")]
    NotFloat {
        /// The stored tensor's path.
        path: String,
        /// The stored dtype, as burn names it.
        dtype: String,
    },
}

/// Writes the tensors of `model` named by `paths`, and only those, to the SafeTensors file
/// `file`, with `manifest_json` stored verbatim in the header metadata under [`MANIFEST_KEY`].
///
/// Tensors are identified by their dotted module path, exactly as a [`ModuleVisitor`](burn::module::ModuleVisitor) sees them
/// when it joins the names given to `enter_module` (`layers.0.mha.query.weight`); these are the
/// paths `adapeft_importance::discover` reports. The factors of a LoRA adapter attached with
/// [`Module::apply_lora`] live under the adapted weight's path (`fc.weight.lora.a`,
/// `fc.weight.lora.b`), while `fc.weight` itself names the frozen base, saved as stored, not
/// merged with the adapter.
///
/// Every entry of `paths` must be the path of a float tensor parameter of `model`; duplicates
/// are ignored and the order does not matter. An empty `paths` writes a file holding only the
/// manifest. The manifest is opaque here: it is not parsed, and [`read_manifest`] /
/// [`load_tensors`] return it byte for byte.
///
/// Each tensor is written in its own dtype. The file is an ordinary SafeTensors file written by
/// burn-store's [`SafetensorsStore`], readable by any SafeTensors reader; burn adds its usual
/// `format`, `producer` and `version` metadata entries next to the manifest, and this function
/// adds the checksums of the manifest and of every tensor under [`INTEGRITY_KEY`] and the
/// format version under [`VERSION_KEY`].
///
/// `model` is only read. Reading a lazily initialised parameter initialises it, exactly as a
/// forward pass would, without changing its value. An existing `file` is replaced: the new
/// file is written next to it and renamed into place once complete, so a failed save leaves
/// the old file as it was.
///
/// # Example
///
/// ```
/// use adapeft_selection::{load_tensors, read_manifest, save_tensors};
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = Device::flex();
/// let trained = LinearConfig::new(3, 2).init(&device);
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("adapter.safetensors");
/// save_tensors(&trained, &["bias".to_string()], r#"{"paths":["bias"]}"#, &file)?;
/// assert_eq!(read_manifest(&file)?, r#"{"paths":["bias"]}"#);
///
/// let base = LinearConfig::new(3, 2).init(&device);
/// let (restored, manifest) = load_tensors(base, &file)?;
/// assert_eq!(manifest, r#"{"paths":["bias"]}"#);
/// assert_eq!(
///     restored.bias.map(|b| b.val().into_data()),
///     trained.bias.map(|b| b.val().into_data()),
/// );
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// - [`StoreError::UnknownPath`] if a path is not a float tensor parameter of `model`
///   (nothing is written);
/// - [`StoreError::Io`] / [`StoreError::Store`] if writing fails, naming `file`.
pub fn save_tensors<M: Module>(
    model: &M,
    paths: &[String],
    manifest_json: &str,
    file: impl AsRef<Path>,
) -> Result<(), StoreError> {
    let file = file.as_ref();
    let params = float_params(model);
    let mut selected = BTreeSet::new();
    for path in paths {
        if !params.contains_key(path) {
            return Err(StoreError::UnknownPath { path: path.clone() });
        }
        selected.insert(path.clone());
    }
    let checksums = checksums_of(model, &selected, manifest_json);

    let mut store = SafetensorsStore::from_file(file)
        // burn-store saves *every* tensor when its filter is empty, and an empty filter is
        // what an empty `paths` would give. A predicate that matches nothing keeps the
        // filter non-empty without adding any tensor (the filter's terms are OR-ed).
        .with_predicate(match_nothing)
        .with_full_paths(selected)
        .metadata(MANIFEST_KEY, manifest_json)
        .metadata(INTEGRITY_KEY, checksums.to_json())
        .metadata(VERSION_KEY, STORE_VERSION.to_string())
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| store_error(file, e))
}

/// Reads the manifest that [`save_tensors`] stored in `file`.
///
/// Only the SafeTensors header is read (its 8-byte length prefix and the JSON that follows),
/// never the tensor data, so this is cheap however large the file is. The manifest is checked
/// against its recorded checksum, when the file has one.
///
/// # Errors
///
/// - [`StoreError::Io`] if `file` cannot be opened or read (for instance, it does not exist);
/// - [`StoreError::InvalidHeader`] if it does not start with a well-formed SafeTensors header;
/// - [`StoreError::NoManifest`] if its metadata has no [`MANIFEST_KEY`] entry;
/// - [`StoreError::Integrity`] if the manifest or its checksum record was damaged (see
///   [`load_tensors`]);
/// - [`StoreError::UnsupportedVersion`] if a newer build wrote the file.
pub fn read_manifest(file: impl AsRef<Path>) -> Result<String, StoreError> {
    let file = file.as_ref();
    let (manifest, checksums, _) = manifest_and_checksums(file)?;
    if let Some(checksums) = checksums {
        integrity::verify(file, "(manifest)", manifest.as_bytes(), &checksums.manifest)?;
    }
    Ok(manifest)
}

/// The manifest, the checksum record (`None` only for a file recognised as written before
/// checksums, see [`load_tensors`]) and the rest of the header, from one read of the header.
fn manifest_and_checksums(file: &Path) -> Result<(String, Option<Checksums>, Header), StoreError> {
    let mut header = read_header(file)?;
    let mut metadata = header.metadata.take().unwrap_or_default();
    let manifest = metadata
        .remove(MANIFEST_KEY)
        .ok_or_else(|| StoreError::NoManifest {
            file: file.to_path_buf(),
        })?;
    let format = metadata.remove(VERSION_KEY);
    let record = metadata.remove(INTEGRITY_KEY);
    let missing = |reason: String| IntegrityError::Missing {
        file: file.to_path_buf(),
        reason,
    };
    if let Some(format) = &format {
        match format.parse::<u64>() {
            Ok(v) if v == u64::from(STORE_VERSION) => {}
            Ok(found) if found > u64::from(STORE_VERSION) => {
                return Err(StoreError::UnsupportedVersion {
                    file: file.to_path_buf(),
                    found,
                });
            }
            _ => {
                return Err(IntegrityError::Corrupt {
                    file: file.to_path_buf(),
                    reason: format!(
                        "its `{VERSION_KEY}` entry is `{format}`, not a format version"
                    ),
                }
                .into());
            }
        }
    }
    let checksums = match (record, format) {
        (Some(text), _) => Some(Checksums::parse(file, &text)?),
        (None, Some(format)) => {
            return Err(
                missing(format!("although its format version {format} records them")).into(),
            );
        }
        (None, None) => {
            // Written before checksums existed only if the metadata is what those builds
            // wrote: the manifest and burn-store's own entries.
            let mut keys: Vec<&String> = metadata.keys().collect();
            keys.sort();
            if let Some(key) = keys.iter().find(|k| !BURN_METADATA.contains(&k.as_str())) {
                return Err(missing(format!(
                    "and its metadata entry `{key}` was not written by any build before checksums"
                ))
                .into());
            }
            None
        }
    };
    Ok((manifest, checksums, header))
}

/// Puts the tensors stored in `file` by [`save_tensors`] back onto `model`, matched by path,
/// and returns the updated model together with the stored manifest.
///
/// Every stored tensor must find a float tensor parameter of `model` at its path, with the
/// same shape. This is checked against the file's header before any tensor data is read, so
/// on error nothing has been loaded. Parameters the file does not mention keep their values
/// (a lazily initialised one stays uninitialised).
///
/// What each loaded parameter keeps from `model`:
///
/// - **require-grad**: a SafeTensors file records no gradient settings. A loaded parameter
///   takes the require-grad setting the *receiving* parameter had (burn's
///   `Param::transform_for_load` re-applies it), so a model frozen or LoRA-adapted before
///   loading stays that way. On a device without autodiff no tensor tracks gradients, but
///   the configured setting is kept and takes effect when the module is moved to an autodiff
///   device or put back into training mode.
/// - **parameter id**: SafeTensors records none either, so the receiving parameter's
///   [`ParamId`](burn::module::ParamId) is kept (optimizer state keyed by it stays valid).
/// - **device**: the tensor is placed on the receiving parameter's device.
/// - **dtype**: taken from the file (burn-store keeps a loaded float tensor's stored width);
///   since [`save_tensors`] writes each parameter in its own dtype, a round trip between
///   models of the same precision is exact, bit for bit.
///
/// A LoRA factor (`fc.weight.lora.a`) can only be loaded onto a model that carries the same
/// adapter already (attach it with [`Module::apply_lora`] first).
///
/// # Integrity
///
/// The manifest and every stored tensor are checked against the checksums recorded under
/// [`INTEGRITY_KEY`] before anything is applied. A file loads without checks only when it is
/// recognised as written before checksums existed (adapter format 1, before the checksums):
/// its metadata has no [`VERSION_KEY`] and no [`INTEGRITY_KEY`] entry, and no entry besides
/// the manifest and burn-store's own `format`, `producer` and `version`, exactly what those
/// builds wrote. Any other entry (a record key damaged into another name, say) means a later
/// build wrote the file, and a file whose [`VERSION_KEY`] says [`STORE_VERSION`] must have a
/// readable record: both are refused with a [`StoreError::Integrity`]
/// (`IntegrityError::Missing` / `IntegrityError::Corrupt`), never loaded unverified.
///
/// # Errors
///
/// - [`StoreError::Io`] if `file` cannot be opened or read (for instance, it does not exist);
/// - [`StoreError::InvalidHeader`] if it does not start with a well-formed SafeTensors header;
/// - [`StoreError::NoManifest`] if it has no manifest;
/// - [`StoreError::Integrity`] if the file was damaged after it was saved (checked before any
///   tensor is applied; only files recognised as written before checksums existed are not
///   checked, see above);
/// - [`StoreError::UnsupportedVersion`] if a newer build wrote the file;
/// - [`StoreError::MissingParam`], [`StoreError::ShapeMismatch`], [`StoreError::NotFloat`] if a
///   stored tensor does not fit a float parameter of `model`;
/// - [`StoreError::Store`] if burn-store fails to read or apply the data.
pub fn load_tensors<M: Module>(
    model: M,
    file: impl AsRef<Path>,
) -> Result<(M, String), StoreError> {
    let file = file.as_ref();
    let (manifest, checksums, header) = manifest_and_checksums(file)?;
    if let Some(checksums) = checksums {
        integrity::verify(file, "(manifest)", manifest.as_bytes(), &checksums.manifest)?;
        check_tensors(&checksums, file, &header)?;
    }

    // No filter: every tensor in the file is applied. `allow_partial` because the file holds a
    // subset of the model's parameters by design; `validate(false)` so that apply errors come
    // back as a structured `ApplyResult` rather than as one formatted string.
    let mut store = SafetensorsStore::from_file(file)
        .allow_partial(true)
        .validate(false);

    let params = float_params(&model);
    let stored = store.get_all_tensors().map_err(|e| store_error(file, e))?;
    for (path, tensor) in stored {
        let Some(shape) = params.get(path) else {
            return Err(StoreError::MissingParam { path: path.clone() });
        };
        if !tensor.dtype.is_float() {
            return Err(StoreError::NotFloat {
                path: path.clone(),
                dtype: format!("{:?}", tensor.dtype),
            });
        }
        if tensor.shape.to_vec() != *shape {
            return Err(StoreError::ShapeMismatch {
                path: path.clone(),
                stored: tensor.shape.to_vec(),
                model: shape.clone(),
            });
        }
    }
    let expected: BTreeSet<String> = stored.keys().cloned().collect();

    let mut model = model;
    let result = model
        .load_from(&mut store)
        .map_err(|e| store_error(file, e))?;

    // The checks above make these unreachable in practice; they guard against burn-store
    // resolving paths differently from the walk in `float_params`.
    if let Some(error) = result.errors.first() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => StoreError::ShapeMismatch {
                path: path.clone(),
                stored: found.to_vec(),
                model: expected.to_vec(),
            },
            other => StoreError::Store {
                file: file.to_path_buf(),
                message: other.to_string(),
            },
        });
    }
    if let Some(path) = result.unused.first() {
        return Err(StoreError::MissingParam { path: path.clone() });
    }
    let applied: BTreeSet<String> = result.applied.into_iter().collect();
    if let Some(path) = expected.difference(&applied).next() {
        return Err(StoreError::MissingParam { path: path.clone() });
    }

    Ok((model, manifest))
}

/// The checksums [`save_tensors`] records for `paths` of `model` (the bytes of each stored
/// base tensor, as burn-store writes them) and the manifest.
fn checksums_of<M: Module>(model: &M, paths: &BTreeSet<String>, manifest: &str) -> Checksums {
    struct Sums<'a> {
        paths: &'a BTreeSet<String>,
        out: BTreeMap<String, String>,
    }
    impl ParamVisitor for Sums<'_> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if self.paths.contains(path) {
                let data = param.base().into_data();
                self.out
                    .insert(path.to_string(), integrity::checksum(data.as_bytes()));
            }
        }
    }
    let mut sums = Sums {
        paths,
        out: BTreeMap::new(),
    };
    visit_params(model, &mut sums);
    Checksums {
        manifest: integrity::checksum(manifest.as_bytes()),
        tensors: sums.out,
    }
}

/// Reads the tensor data of `file`, whose `header` was already read, and checks that it
/// stores exactly the recorded tensors, each with its recorded checksum.
fn check_tensors(checksums: &Checksums, file: &Path, header: &Header) -> Result<(), StoreError> {
    let corrupt = |reason: String| IntegrityError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    let io_error = |source: io::Error| StoreError::Io {
        file: file.to_path_buf(),
        source,
    };
    let mut reader = File::open(file).map_err(io_error)?;
    reader
        .seek(SeekFrom::Start(header.data_start))
        .map_err(io_error)?;
    let mut data = Vec::new();
    reader.read_to_end(&mut data).map_err(io_error)?;
    let mut stored = BTreeSet::new();
    for (name, entry) in &header.tensors {
        let Some(expected) = checksums.tensors.get(name) else {
            return Err(corrupt(format!(
                "it stores a tensor `{name}` its checksum record does not list"
            ))
            .into());
        };
        let offsets = entry
            .get("data_offsets")
            .and_then(serde_json::Value::as_array)
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .and_then(|(a, b)| Some((usize::try_from(a).ok()?, usize::try_from(b).ok()?)))
            .filter(|&(a, b)| a <= b && b <= data.len())
            .ok_or_else(|| corrupt(format!("tensor `{name}` has invalid data offsets")))?;
        integrity::verify(file, name, &data[offsets.0..offsets.1], expected)?;
        stored.insert(name.as_str());
    }
    if let Some(missing) = checksums
        .tensors
        .keys()
        .find(|k| !stored.contains(k.as_str()))
    {
        return Err(corrupt(format!(
            "tensor `{missing}` is listed in its checksum record but not stored"
        ))
        .into());
    }
    Ok(())
}

/// Filter predicate that matches no tensor (see [`save_tensors`]).
fn match_nothing(_path: &str, _container: &str) -> bool {
    false
}

/// Wraps a burn-store error, keeping I/O errors typed.
fn store_error(file: &Path, error: SafetensorsStoreError) -> StoreError {
    match error {
        SafetensorsStoreError::Io(source) => StoreError::Io {
            file: file.to_path_buf(),
            source,
        },
        other => StoreError::Store {
            file: file.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// A SafeTensors header as this module reads it: the string metadata, the other entries
/// (the tensors: dtype, shape, data offsets) as raw JSON, and where the tensor data starts.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "__metadata__", default)]
    metadata: Option<HashMap<String, String>>,
    #[serde(flatten)]
    tensors: HashMap<String, serde_json::Value>,
    /// The byte offset of the tensor data: the 8-byte length prefix plus the header's length.
    #[serde(skip)]
    data_start: u64,
}

/// Reads the header of a SafeTensors file, and nothing of the tensor data.
///
/// The format is an 8-byte little-endian header length, then that many bytes of JSON, then
/// the tensor data.
fn read_header(file: &Path) -> Result<Header, StoreError> {
    let invalid = |reason: String| StoreError::InvalidHeader {
        file: file.to_path_buf(),
        reason,
    };
    let io_error = |source: io::Error| StoreError::Io {
        file: file.to_path_buf(),
        source,
    };
    let truncated = |source: io::Error, what: &str| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            invalid(format!("file ends inside the {what}"))
        } else {
            io_error(source)
        }
    };

    let mut reader = File::open(file).map_err(io_error)?;
    let mut len = [0u8; 8];
    reader
        .read_exact(&mut len)
        .map_err(|e| truncated(e, "8-byte header length"))?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER_LEN {
        return Err(invalid(format!(
            "header length {len} exceeds the {MAX_HEADER_LEN}-byte limit"
        )));
    }
    let data_start = len + 8;
    let len = usize::try_from(len)
        .map_err(|_| invalid(format!("header length {len} does not fit in memory")))?;
    let mut header = vec![0u8; len];
    reader
        .read_exact(&mut header)
        .map_err(|e| truncated(e, "header"))?;
    let mut header: Header = serde_json::from_slice(&header)
        .map_err(|e| invalid(format!("header is not valid JSON metadata: {e}")))?;
    header.data_start = data_start;
    Ok(header)
}

/// Every float tensor parameter of `model`, by dotted path, with its shape.
///
/// Shapes are read without initialising lazy parameters.
fn float_params<M: Module>(model: &M) -> HashMap<String, Vec<usize>> {
    layout(model)
        .into_iter()
        .map(|s| (s.path, s.shape))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Lora;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;
    use std::collections::BTreeMap;

    #[derive(Module, Debug)]
    struct Small {
        fc1: Linear,
        fc2: Linear,
        norm: LayerNorm,
    }

    impl Small {
        fn new(device: &Device, hidden: usize) -> Self {
            Self {
                fc1: LinearConfig::new(4, hidden).init(device),
                fc2: LinearConfig::new(hidden, 3).init(device),
                norm: LayerNormConfig::new(3).init(device),
            }
        }
    }

    /// A model with over 100k parameters and a 100-element `small.weight`.
    #[derive(Module, Debug)]
    struct Big {
        big: Linear,
        small: Linear,
    }

    impl Big {
        fn new(device: &Device) -> Self {
            Self {
                big: LinearConfig::new(400, 300).init(device),
                small: LinearConfig::new(10, 10).init(device),
            }
        }
    }

    /// A model whose paths do not exist on [`Small`].
    #[derive(Module, Debug)]
    struct Other {
        extra: Linear,
    }

    /// path -> (raw bytes, require-grad) of every float parameter (the stored base for a
    /// LoRA-adapted weight).
    fn snapshot<M: Module>(model: &M) -> BTreeMap<String, (Vec<u8>, bool)> {
        adapeft_testing::snapshot_base(model)
            .into_iter()
            .map(|(path, bytes, grad)| (path, (bytes, grad)))
            .collect()
    }

    fn bytes<M: Module>(model: &M) -> BTreeMap<String, Vec<u8>> {
        snapshot(model)
            .into_iter()
            .map(|(path, (bytes, _))| (path, bytes))
            .collect()
    }

    fn strings(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    fn stored_keys(file: &Path) -> Vec<String> {
        let mut store = SafetensorsStore::from_file(file);
        store.keys().expect("readable file")
    }

    const MANIFEST: &str =
        r#"{"selection":["fc1.weight","fc2.bias"],"note":"ünïcode \"quoted\" \\ \n"}"#;

    #[test]
    fn round_trip_restores_saved_tensors_and_keeps_the_rest() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("subset.safetensors");

        let trained = Small::new(&device, 8);
        let before = bytes(&trained);
        let paths = strings(&["fc1.weight", "fc2.bias"]);
        save_tensors(&trained, &paths, MANIFEST, &file).expect("save");
        assert_eq!(bytes(&trained), before, "saving must not change the model");
        assert_eq!(stored_keys(&file), paths);
        assert_eq!(read_manifest(&file).expect("manifest"), MANIFEST);

        let fresh = Small::new(&device, 8);
        let fresh_bytes = bytes(&fresh);
        for path in &paths {
            assert_ne!(
                fresh_bytes[path], before[path],
                "fresh init differs at {path}"
            );
        }

        let (loaded, manifest) = load_tensors(fresh, &file).expect("load");
        assert_eq!(manifest, MANIFEST);
        let after = bytes(&loaded);
        assert_eq!(after.len(), 6);
        for (path, value) in &after {
            if paths.contains(path) {
                assert_eq!(value, &before[path], "{path} restored bit-exactly");
            } else {
                assert_eq!(value, &fresh_bytes[path], "{path} keeps the fresh value");
            }
        }
    }

    #[test]
    fn loading_leaves_unmentioned_lazy_params_and_ids_alone() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("bias.safetensors");
        let trained = Small::new(&device, 8);
        save_tensors(&trained, &strings(&["fc2.bias"]), "{}", &file).expect("save");

        let fresh = Small::new(&device, 8);
        let ids = (fresh.fc1.weight.id, fresh.fc2.bias.as_ref().map(|b| b.id));
        let (loaded, _) = load_tensors(fresh, &file).expect("load");
        assert_eq!(
            (loaded.fc1.weight.id, loaded.fc2.bias.as_ref().map(|b| b.id)),
            ids,
            "parameter ids of the receiving model are kept"
        );
        assert!(
            !loaded.fc1.weight.is_initialized(),
            "a parameter the file does not mention is not touched"
        );
    }

    #[test]
    fn empty_selection_writes_only_the_manifest() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("empty.safetensors");
        let trained = Small::new(&device, 8);
        save_tensors(&trained, &[], "[]", &file).expect("save");
        assert!(stored_keys(&file).is_empty());

        let fresh = Small::new(&device, 8);
        let fresh_bytes = bytes(&fresh);
        let (loaded, manifest) = load_tensors(fresh, &file).expect("load");
        assert_eq!(manifest, "[]");
        assert_eq!(bytes(&loaded), fresh_bytes);
    }

    #[test]
    fn saving_again_replaces_the_file() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("twice.safetensors");
        let trained = Small::new(&device, 8);
        save_tensors(&trained, &strings(&["fc1.weight"]), "first", &file).expect("save 1");
        save_tensors(&trained, &strings(&["fc2.weight"]), "second", &file).expect("save 2");
        assert_eq!(stored_keys(&file), strings(&["fc2.weight"]));
        assert_eq!(read_manifest(&file).expect("manifest"), "second");
    }

    #[test]
    fn file_size_follows_saved_elements_not_model_size() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let model = Big::new(&device);
        assert!(model.num_params() > 100_000);
        let manifest = r#"{"selection":["small.weight"]}"#;

        let one = dir.path().join("one.safetensors");
        save_tensors(&model, &strings(&["small.weight"]), manifest, &one).expect("save");
        let one_len = std::fs::metadata(&one).expect("metadata").len();
        assert!(
            one_len < 4096 + manifest.len() as u64,
            "100 saved elements gave a {one_len}-byte file"
        );
        assert!(one_len >= 400);

        // 300 more f32 elements: 1200 bytes of data plus one header entry.
        let two = dir.path().join("two.safetensors");
        save_tensors(
            &model,
            &strings(&["small.weight", "big.bias"]),
            manifest,
            &two,
        )
        .expect("save");
        let two_len = std::fs::metadata(&two).expect("metadata").len();
        let growth = two_len - one_len;
        assert!(
            (1200..1200 + 256).contains(&growth),
            "300 more f32 elements grew the file by {growth} bytes"
        );
    }

    #[test]
    fn lora_factors_round_trip() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("lora.safetensors");

        let trained = Small::new(&device, 8).apply_lora(Lora::new(2, 4.0));
        let before = bytes(&trained);
        let paths: Vec<String> = before
            .keys()
            .filter(|p| p.contains(".lora."))
            .cloned()
            .collect();
        assert_eq!(
            paths,
            strings(&[
                "fc1.weight.lora.a",
                "fc1.weight.lora.b",
                "fc2.weight.lora.a",
                "fc2.weight.lora.b",
            ])
        );
        assert_eq!(
            float_params(&trained).keys().collect::<BTreeSet<_>>(),
            adapeft_importance::discover(&trained)
                .iter()
                .map(|p| &p.path)
                .collect::<BTreeSet<_>>(),
            "same path convention as adapeft_importance::discover"
        );
        save_tensors(&trained, &paths, "lora", &file).expect("save");
        assert_eq!(stored_keys(&file), paths);

        let fresh = Small::new(&device, 8).apply_lora(Lora::new(2, 4.0));
        let fresh_bytes = bytes(&fresh);
        assert_ne!(
            fresh_bytes["fc1.weight.lora.a"],
            before["fc1.weight.lora.a"]
        );
        let (loaded, _) = load_tensors(fresh, &file).expect("load");
        let after = bytes(&loaded);
        for (path, value) in &after {
            if paths.contains(path) {
                assert_eq!(value, &before[path], "{path} restored bit-exactly");
            } else {
                assert_eq!(value, &fresh_bytes[path], "{path} keeps the fresh value");
            }
        }
        assert!(
            loaded.fc1.weight.adapter().is_some(),
            "adapter still attached"
        );

        // A model without the adapter has nowhere to put the factors.
        let plain = Small::new(&device, 8);
        match load_tensors(plain, &file) {
            Err(StoreError::MissingParam { path }) => assert_eq!(path, "fc1.weight.lora.a"),
            other => panic!("expected MissingParam, got {other:?}"),
        }
    }

    #[test]
    fn loading_keeps_the_receiving_models_require_grad() {
        let device = Device::flex().autodiff();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("grad.safetensors");

        // `apply_lora` freezes every base tensor and leaves the factors trainable.
        let trained = Small::new(&device, 8).apply_lora(Lora::new(2, 4.0));
        let paths = strings(&["fc1.weight", "fc1.weight.lora.a", "fc2.bias", "norm.gamma"]);
        save_tensors(&trained, &paths, "{}", &file).expect("save");

        // The receiving model differs: its `fc2.bias` is trainable again.
        let mut fresh = Small::new(&device, 8).apply_lora(Lora::new(2, 4.0));
        fresh.fc2.bias = fresh.fc2.bias.map(|b| b.set_require_grad(true));
        let grads_before: BTreeMap<String, bool> = snapshot(&fresh)
            .into_iter()
            .map(|(path, (_, grad))| (path, grad))
            .collect();
        assert!(!grads_before["fc1.weight"]);
        assert!(grads_before["fc1.weight.lora.a"]);
        assert!(grads_before["fc2.bias"]);
        assert!(!grads_before["norm.gamma"]);

        let (loaded, _) = load_tensors(fresh, &file).expect("load");
        let after = snapshot(&loaded);
        let grads_after: BTreeMap<String, bool> = after
            .iter()
            .map(|(path, (_, grad))| (path.clone(), *grad))
            .collect();
        assert_eq!(grads_after, grads_before);
        let saved = bytes(&trained);
        for path in &paths {
            assert_eq!(after[path].0, saved[path], "{path} restored bit-exactly");
        }
    }

    #[test]
    fn unknown_path_on_save_is_refused() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("unknown.safetensors");
        let model = Small::new(&device, 8);
        for bad in ["fc3.weight", "fc1", "fc1.weight.lora.a", ""] {
            match save_tensors(&model, &strings(&["fc1.weight", bad]), "{}", &file) {
                Err(StoreError::UnknownPath { path }) => assert_eq!(path, bad),
                other => panic!("expected UnknownPath for {bad:?}, got {other:?}"),
            }
        }
        assert!(!file.exists(), "nothing is written");
    }

    #[test]
    fn file_without_manifest_is_refused() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let model = Small::new(&device, 8);

        // Written by burn-store directly: default metadata but no manifest...
        let plain = dir.path().join("plain.safetensors");
        let mut store = SafetensorsStore::from_file(&plain);
        model.save_into(&mut store).expect("save");
        // ...and with no metadata at all.
        let bare = dir.path().join("bare.safetensors");
        let mut store = SafetensorsStore::from_file(&bare).clear_metadata();
        model.save_into(&mut store).expect("save");

        for file in [plain, bare] {
            match read_manifest(&file) {
                Err(StoreError::NoManifest { file: f }) => assert_eq!(f, file),
                other => panic!("expected NoManifest, got {other:?}"),
            }
            match load_tensors(Small::new(&device, 8), &file) {
                Err(e @ StoreError::NoManifest { .. }) => {
                    assert!(e.to_string().contains(&file.display().to_string()))
                }
                other => panic!("expected NoManifest, got {other:?}"),
            }
        }
    }

    #[test]
    fn stored_tensor_without_parameter_is_refused() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("other.safetensors");
        let other = Other {
            extra: LinearConfig::new(4, 8).init(&device),
        };
        save_tensors(&other, &strings(&["extra.weight"]), "{}", &file).expect("save");
        match load_tensors(Small::new(&device, 8), &file) {
            Err(e @ StoreError::MissingParam { .. }) => {
                assert!(e.to_string().contains("extra.weight"), "{e}")
            }
            other => panic!("expected MissingParam, got {other:?}"),
        }
    }

    #[test]
    fn shape_mismatch_is_refused() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("shape.safetensors");
        let wide = Small::new(&device, 16);
        save_tensors(&wide, &strings(&["fc1.weight"]), "{}", &file).expect("save");
        match load_tensors(Small::new(&device, 8), &file) {
            Err(StoreError::ShapeMismatch {
                path,
                stored,
                model,
            }) => {
                assert_eq!(path, "fc1.weight");
                assert_eq!(stored, vec![4, 16]);
                assert_eq!(model, vec![4, 8]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_named() {
        let device = Device::flex();
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("does-not-exist.safetensors");
        let shown = file.display().to_string();
        match read_manifest(&file) {
            Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains(&shown), "{e}"),
            other => panic!("expected Io, got {other:?}"),
        }
        match load_tensors(Small::new(&device, 8), &file) {
            Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains(&shown), "{e}"),
            other => panic!("expected Io, got {other:?}"),
        }

        // Saving into a directory that does not exist names the file too.
        let nowhere = dir.path().join("missing-dir").join("out.safetensors");
        let err = save_tensors(&Small::new(&device, 8), &[], "{}", &nowhere)
            .expect_err("no such directory");
        assert!(
            err.to_string().contains(&nowhere.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn malformed_files_are_refused() {
        let dir = adapeft_testing::temp_dir("store");
        let cases: [(&str, Vec<u8>); 4] = [
            ("short", vec![1, 2, 3]),
            ("huge", u64::MAX.to_le_bytes().to_vec()),
            ("truncated", [&100u64.to_le_bytes()[..], b"{}"].concat()),
            ("not-json", [&4u64.to_le_bytes()[..], b"nope"].concat()),
        ];
        for (name, content) in cases {
            let file = dir.path().join(name);
            std::fs::write(&file, content).expect("write");
            match read_manifest(&file) {
                Err(StoreError::InvalidHeader { file: f, .. }) => assert_eq!(f, file),
                other => panic!("{name}: expected InvalidHeader, got {other:?}"),
            }
        }
    }
}
