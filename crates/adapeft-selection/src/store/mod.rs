//! Saving and loading the trained subset of a model's parameters.
//!
//! After fine-tuning only a selection of a model's tensors, there is no reason to write the
//! whole model back to disk: [`save_tensors`] writes just the selected tensors to a
//! [SafeTensors](https://github.com/huggingface/safetensors) file, together with a
//! *manifest* (a JSON string describing the selection) kept in the file's header metadata
//! under [`MANIFEST_KEY`] (compressed under [`MANIFEST_DEFLATE_KEY`] when it is long, see
//! [Large manifests](#large-manifests)). This is the same idea as a PEFT adapter file: its size follows the
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
//!
//! # Cells
//!
//! A tensor trained only in some cells of its tiling (units below the tensor) is stored as
//! those cells' values alone, with their tiling and cell numbers in the header metadata
//! ([`save_tensors_and_cells`], [`StoredCells`]); [`load_tensors`] puts them back in place and
//! leaves the tensor's other entries as the receiving model has them.
//!
//! # Large manifests
//!
//! A manifest longer than [`COMPRESS_ABOVE`] bytes (a selection of units below the tensor
//! records every scored unit: megabytes of JSON) is stored zlib-deflated and base64-encoded
//! under [`MANIFEST_DEFLATE_KEY`] instead of [`MANIFEST_KEY`], about eight times smaller.
//! [`read_manifest`] and [`load_tensors`] give back the same text either way; its checksum is
//! the uncompressed text's. Such a file is format version 4: builds before it find no
//! [`MANIFEST_KEY`] there and refuse it with [`StoreError::NoManifest`]; this build and later
//! ones read the version first, so a newer file is [`StoreError::UnsupportedVersion`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapeft_importance::{ParamMapper, ParamVisitor, layout, map_params, visit_params};
use burn::module::{Module, Param};
use burn::store::{
    ApplyError, ModuleSnapshot, ModuleStore, SafetensorsStore, SafetensorsStoreError,
};
use burn::tensor::{DType, Tensor, TensorData};
use serde::Deserialize;

use crate::integrity::{self, Checksums, IntegrityError};

mod cells;
mod compress;

pub use cells::{CELLS_KEY, CELLS_SUFFIX, StoredCells};
use cells::{GatherCells, layout_json};
pub use compress::COMPRESS_ABOVE;
use compress::{MAX_INFLATED_LEN, deflate, inflate};

/// Key under which the manifest JSON is stored in the safetensors header metadata (a
/// manifest of at most [`COMPRESS_ABOVE`] bytes; a longer one goes under
/// [`MANIFEST_DEFLATE_KEY`]).
pub const MANIFEST_KEY: &str = "adapeft.selection";

/// Key under which a manifest longer than [`COMPRESS_ABOVE`] bytes is stored instead of
/// [`MANIFEST_KEY`]: zlib-deflated, then base64-encoded (format version 4).
pub const MANIFEST_DEFLATE_KEY: &str = "adapeft.selection.deflate";

/// Key under which the checksums of the manifest and of every stored tensor are kept in the
/// safetensors header metadata (see [`load_tensors`]).
pub const INTEGRITY_KEY: &str = "adapeft.integrity";

/// Key under which the file's format version ([`STORE_VERSION`]) is kept in the safetensors
/// header metadata.
pub const VERSION_KEY: &str = "adapeft.version";

/// The newest format version this build reads and writes: 4, a file whose manifest is
/// stored compressed (longer than [`COMPRESS_ABOVE`] bytes), with or without cells.
///
/// Each file is written at the oldest version that can hold it, so that older builds read
/// what they can: version 2 for whole tensors and a plain manifest (checksums recorded and
/// required), version 3 when it stores cells of partially trained tensors
/// ([`save_tensors_and_cells`]), version 4 when its manifest is compressed. Version 1 files
/// carry no [`VERSION_KEY`]; they were written with or (by the first builds) without
/// checksums, see [`load_tensors`].
pub const STORE_VERSION: u32 = 4;

/// The format version of a file without cells and with a plain manifest.
const VERSION_WITHOUT_CELLS: u32 = 2;

/// The format version of a file with cells and a plain manifest.
const VERSION_WITH_CELLS: u32 = 3;

/// The format version of a file with a compressed manifest, with or without cells.
const VERSION_COMPRESSED: u32 = 4;

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

    /// The file is a SafeTensors file, but its header metadata has neither a [`MANIFEST_KEY`]
    /// nor a [`MANIFEST_DEFLATE_KEY`] entry, so it was not written by [`save_tensors`].
    #[error(
        "`{}` has no adapeft manifest (no `{MANIFEST_KEY}` or `{MANIFEST_DEFLATE_KEY}` entry in its metadata)",
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

    /// Cells of a partially trained tensor that do not fit it: a tiling of another shape, a
    /// cell outside the tiling, cells out of order, no cell, or values of another dtype or
    /// length (on save, cells asked for; on load, cells stored).
    #[error("the cells of `{path}` do not fit: {reason}")]
    InvalidCells {
        /// The tensor's path.
        path: String,
        /// What does not fit.
        reason: String,
    },

    /// The manifest is too long to be read back: stored (compressed, if over
    /// [`COMPRESS_ABOVE`] bytes) it alone exceeds the largest header a reader accepts, or it
    /// is longer than the most a compressed manifest may inflate to. Nothing is written.
    #[error(
        "the manifest ({json} bytes of JSON, {stored} bytes as stored) is too long for an adapter file: \
         readers accept a header of at most {MAX_HEADER_LEN} bytes and a manifest of at most \
         {MAX_INFLATED_LEN} bytes"
    )]
    ManifestTooLong {
        /// The manifest's length.
        json: usize,
        /// Its length as it would be stored.
        stored: usize,
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
/// `file`, with `manifest_json` stored in the header metadata: verbatim under [`MANIFEST_KEY`],
/// or, when longer than [`COMPRESS_ABOVE`] bytes, compressed under [`MANIFEST_DEFLATE_KEY`]
/// (it reads back the same text).
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
    save_tensors_and_cells(model, paths, &BTreeMap::new(), manifest_json, file)
}

/// [`save_tensors`], and for each partially trained tensor in `cells` (by path) the values of
/// its stored cells alone: the file then holds, for `fc.weight` trained in some output
/// neurons, the entry `fc.weight#cells` with those neurons' entries, and the tiling and cell
/// numbers under [`CELLS_KEY`] in its metadata, both checksummed. [`load_tensors`] puts them
/// back. The file's size follows the trained entries: a tensor trained in 3 of its 512
/// columns costs 3 columns.
///
/// Each stored tensor's values keep their dtype; the cells are gathered from its bytes, so a
/// round trip is exact bit for bit. A file with cells is format version 3, which builds
/// before cells refuse as newer; a file without them is version 2; either is version 4
/// ([`STORE_VERSION`]) when its manifest is long enough to be stored compressed.
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
///
/// use adapeft_importance::Tiling;
/// use adapeft_selection::{StoredCells, load_tensors, save_tensors_and_cells};
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = Device::flex();
/// let trained = LinearConfig::new(3, 4).init(&device);
/// // The weight is [3, 4] (inputs x outputs): its output neurons are its 4 columns.
/// let neurons = Tiling::new(&[3, 4], 3, 1).unwrap();
/// let cells = BTreeMap::from([(
///     "weight".to_string(),
///     StoredCells { tiling: neurons, cells: vec![1, 3] },
/// )]);
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("adapter.safetensors");
/// save_tensors_and_cells(&trained, &["bias".to_string()], &cells, "{}", &file)?;
///
/// let base = LinearConfig::new(3, 4).init(&device);
/// let (restored, _) = load_tensors(base.clone(), &file)?;
/// let value = |m: &burn::nn::Linear, i: usize| m.weight.val().into_data().to_vec::<f32>().unwrap()[i];
/// // Row 0, column 1 trained: the saved value. Row 0, column 0 did not: the base's.
/// assert_eq!(value(&restored, 1), value(&trained, 1));
/// assert_eq!(value(&restored, 0), value(&base, 0));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// What [`save_tensors`] returns, and [`StoreError::InvalidCells`] for cells that do not fit
/// their tensor's shape, or a path both in `paths` (whole) and in `cells`; nothing is written.
pub fn save_tensors_and_cells<M: Module>(
    model: &M,
    paths: &[String],
    cells: &BTreeMap<String, StoredCells>,
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
    for (path, stored) in cells {
        let Some(shape) = params.get(path) else {
            return Err(StoreError::UnknownPath { path: path.clone() });
        };
        let invalid = |reason: String| StoreError::InvalidCells {
            path: path.clone(),
            reason,
        };
        if selected.contains(path) {
            return Err(invalid("the tensor is also saved whole".into()));
        }
        if let Some(reason) = stored.problem(shape) {
            return Err(invalid(reason));
        }
    }
    let checksums = checksums_of(model, &selected, cells, manifest_json);
    let entries = selected
        .into_iter()
        .chain(cells.keys().map(|p| format!("{p}{CELLS_SUFFIX}")));

    let mut store = SafetensorsStore::from_file(file)
        // burn-store saves *every* tensor when its filter is empty, and an empty filter is
        // what an empty `paths` would give. A predicate that matches nothing keeps the
        // filter non-empty without adding any tensor (the filter's terms are OR-ed).
        .with_predicate(match_nothing)
        .with_full_paths(entries)
        .metadata(INTEGRITY_KEY, checksums.to_json())
        .overwrite(true);
    let compressed = manifest_json.len() > COMPRESS_ABOVE;
    let stored = if compressed {
        deflate(manifest_json)
    } else {
        manifest_json.to_string()
    };
    if !manifest_fits(manifest_json.len(), stored.len()) {
        return Err(StoreError::ManifestTooLong {
            json: manifest_json.len(),
            stored: stored.len(),
        });
    }
    store = if compressed {
        store.metadata(MANIFEST_DEFLATE_KEY, stored)
    } else {
        store.metadata(MANIFEST_KEY, stored)
    };
    let version = match (compressed, cells.is_empty()) {
        (true, _) => VERSION_COMPRESSED,
        (false, false) => VERSION_WITH_CELLS,
        (false, true) => VERSION_WITHOUT_CELLS,
    };
    store = store.metadata(VERSION_KEY, version.to_string());
    if !cells.is_empty() {
        // The adapter renames each partially trained tensor to its `#cells` entry (the filter
        // sees the new name) and gathers the cells when the writer draws the bytes.
        store = store
            .metadata(CELLS_KEY, layout_json(cells))
            .with_to_adapter(GatherCells(Arc::new(cells.clone())));
    }
    model
        .save_into(&mut store)
        .map_err(|e| store_error(file, e))
}

/// Whether a manifest of `json` bytes, `stored` bytes as stored, can be read back: the stored
/// form alone within the header limit, the JSON within what a compressed entry may inflate
/// to. (The rest of the header is small beside a manifest this long.)
fn manifest_fits(json: usize, stored: usize) -> bool {
    stored as u64 <= MAX_HEADER_LEN && json as u64 <= MAX_INFLATED_LEN
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
/// - [`StoreError::NoManifest`] if its metadata has no manifest entry;
/// - [`StoreError::Integrity`] if the manifest or its checksum record was damaged (see
///   [`load_tensors`]), or a compressed manifest does not inflate;
/// - [`StoreError::UnsupportedVersion`] if a newer build wrote the file.
pub fn read_manifest(file: impl AsRef<Path>) -> Result<String, StoreError> {
    let file = file.as_ref();
    let (manifest, checksums, _, _) = manifest_and_checksums(file)?;
    if let Some(checksums) = checksums {
        integrity::verify(file, "(manifest)", manifest.as_bytes(), &checksums.manifest)?;
    }
    Ok(manifest)
}

/// The manifest, the checksum record (`None` only for a file recognised as written before
/// checksums, see [`load_tensors`]), the cell layout (checked against its checksum; empty for
/// a file without cells) and the rest of the header, from one read of the header.
#[allow(clippy::type_complexity)]
fn manifest_and_checksums(
    file: &Path,
) -> Result<
    (
        String,
        Option<Checksums>,
        BTreeMap<String, StoredCells>,
        Header,
    ),
    StoreError,
> {
    let mut header = read_header(file)?;
    let mut metadata = header.metadata.take().unwrap_or_default();
    let plain = metadata.remove(MANIFEST_KEY);
    let packed = metadata.remove(MANIFEST_DEFLATE_KEY);
    let format = metadata.remove(VERSION_KEY);
    let record = metadata.remove(INTEGRITY_KEY);
    let layout = metadata.remove(CELLS_KEY);
    let missing = |reason: String| IntegrityError::Missing {
        file: file.to_path_buf(),
        reason,
    };
    let corrupt = |reason: String| IntegrityError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    let mut version = None;
    if let Some(format) = &format {
        match format.parse::<u64>() {
            Ok(v) if (u64::from(VERSION_WITHOUT_CELLS)..=u64::from(STORE_VERSION)).contains(&v) => {
                version = Some(v);
            }
            Ok(found) if found > u64::from(STORE_VERSION) => {
                return Err(StoreError::UnsupportedVersion {
                    file: file.to_path_buf(),
                    found,
                });
            }
            _ => {
                return Err(corrupt(format!(
                    "its `{VERSION_KEY}` entry is `{format}`, not a format version"
                ))
                .into());
            }
        }
    }
    // After the version, so that a newer build's file, whatever its keys, is named as such.
    if plain.is_none() && packed.is_none() {
        return Err(StoreError::NoManifest {
            file: file.to_path_buf(),
        });
    }
    let checksums = match (record, &format) {
        (Some(text), _) => Some(Checksums::parse(file, &text)?),
        (None, Some(format)) => {
            return Err(
                missing(format!("although its format version {format} records them")).into(),
            );
        }
        (None, None) => {
            // Written before checksums existed only if the metadata is what those builds
            // wrote: the manifest and burn-store's own entries.
            let mut keys: Vec<String> = metadata.keys().cloned().collect();
            if layout.is_some() {
                keys.push(CELLS_KEY.to_string());
            }
            if packed.is_some() {
                keys.push(MANIFEST_DEFLATE_KEY.to_string());
            }
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
    // The manifest: compressed in a version 4 file, plain in every other.
    let compressed = version == Some(u64::from(VERSION_COMPRESSED));
    let version_words = || match version {
        Some(v) => format!("its format version {v}"),
        None => "a file without a format version".to_string(),
    };
    let manifest = match (plain, packed) {
        (Some(text), None) if !compressed => text,
        (None, Some(packed)) if compressed => {
            inflate(&packed, MAX_INFLATED_LEN).map_err(corrupt)?
        }
        (Some(_), Some(_)) => {
            return Err(corrupt(format!(
                "it has both a `{MANIFEST_KEY}` and a `{MANIFEST_DEFLATE_KEY}` entry"
            ))
            .into());
        }
        (Some(_), _) => {
            return Err(corrupt(format!(
                "its format version {VERSION_COMPRESSED} stores the manifest compressed, under \
                 `{MANIFEST_DEFLATE_KEY}`, but it has a plain `{MANIFEST_KEY}` entry"
            ))
            .into());
        }
        _ => {
            return Err(corrupt(format!(
                "it has a `{MANIFEST_DEFLATE_KEY}` entry, which {} does not store",
                version_words()
            ))
            .into());
        }
    };
    // Cells: in a version 3 file, and there with their layout and its checksum; in a version
    // 4 file when its layout or its checksum record says so (each requires the other).
    let with_cells = match version {
        Some(v) if v == u64::from(VERSION_WITH_CELLS) => true,
        Some(v) if v == u64::from(VERSION_COMPRESSED) => {
            layout.is_some() || checksums.as_ref().is_some_and(|c| c.cells.is_some())
        }
        _ => false,
    };
    let cells = match (&checksums, layout) {
        (Some(checksums), Some(text)) if with_cells => {
            let Some(sum) = &checksums.cells else {
                return Err(missing("for its cell layout".into()).into());
            };
            integrity::verify(file, "(cells)", text.as_bytes(), sum)?;
            serde_json::from_str(&text)
                .map_err(|e| corrupt(format!("its cell layout is unreadable: {e}")))?
        }
        (_, None) if with_cells => {
            let why = if compressed {
                "its checksum record lists a cell layout"
            } else {
                "its format version stores cells"
            };
            return Err(corrupt(format!("{why}, but it has no `{CELLS_KEY}` entry")).into());
        }
        (_, Some(_)) => {
            return Err(corrupt(format!(
                "it has a `{CELLS_KEY}` entry, which {} does not store",
                version_words()
            ))
            .into());
        }
        _ => BTreeMap::new(),
    };
    if !with_cells && checksums.as_ref().is_some_and(|c| c.cells.is_some()) {
        return Err(corrupt(format!(
            "its checksum record lists a cell layout, which {} does not store",
            version_words()
        ))
        .into());
    }
    Ok((manifest, checksums, cells, header))
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
/// build wrote the file, and a file with a [`VERSION_KEY`] must have a readable record: both
/// are refused with a [`StoreError::Integrity`] (`IntegrityError::Missing` /
/// `IntegrityError::Corrupt`), never loaded unverified. So is a file whose format version and
/// entries disagree (a compressed manifest where its version says plain, or the reverse).
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
    let (manifest, checksums, layout, header) = manifest_and_checksums(file)?;
    if let Some(checksums) = checksums {
        integrity::verify(file, "(manifest)", manifest.as_bytes(), &checksums.manifest)?;
        check_tensors(&checksums, file, &header)?;
    }

    // No filter: every tensor in the file is applied (the `#cells` entries match no
    // parameter and come back unused). `allow_partial` because the file holds a subset of the
    // model's parameters by design; `validate(false)` so that apply errors come back as a
    // structured `ApplyResult` rather than as one formatted string.
    let mut store = SafetensorsStore::from_file(file)
        .allow_partial(true)
        .validate(false);

    let params = float_params(&model);
    let stored = store.get_all_tensors().map_err(|e| store_error(file, e))?;
    let mut expected = BTreeSet::new();
    let mut cell_values = BTreeMap::new();
    for (name, tensor) in stored {
        if !tensor.dtype.is_float() {
            return Err(StoreError::NotFloat {
                path: name.clone(),
                dtype: format!("{:?}", tensor.dtype),
            });
        }
        if let Some(path) = name.strip_suffix(CELLS_SUFFIX) {
            cell_values.insert(path.to_string(), tensor);
            continue;
        }
        let Some(shape) = params.get(name) else {
            return Err(StoreError::MissingParam { path: name.clone() });
        };
        if tensor.shape.to_vec() != *shape {
            return Err(StoreError::ShapeMismatch {
                path: name.clone(),
                stored: tensor.shape.to_vec(),
                model: shape.clone(),
            });
        }
        expected.insert(name.clone());
    }
    let cells = check_cells(file, &model, &params, &layout, &cell_values)?;

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
    if let Some(path) = result.unused.iter().find(|p| !p.ends_with(CELLS_SUFFIX)) {
        return Err(StoreError::MissingParam { path: path.clone() });
    }
    let applied: BTreeSet<String> = result.applied.into_iter().collect();
    if let Some(path) = expected.difference(&applied).next() {
        return Err(StoreError::MissingParam { path: path.clone() });
    }

    Ok((put_cells(model, cells), manifest))
}

/// Checks every stored cell entry against the file's layout and the receiving model (a float
/// parameter at its path, of the layout's shape and the values' dtype, and as many values as
/// the cells hold), before anything is loaded. Returns each path's cells and value bytes.
fn check_cells<M: Module>(
    file: &Path,
    model: &M,
    params: &HashMap<String, Vec<usize>>,
    layout: &BTreeMap<String, StoredCells>,
    values: &BTreeMap<String, &burn::store::burn_pack::Tensor>,
) -> Result<HashMap<String, (StoredCells, Vec<u8>)>, StoreError> {
    let corrupt = |reason: String| IntegrityError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    if let Some(path) = layout.keys().find(|p| !values.contains_key(*p)) {
        return Err(corrupt(format!(
            "its cell layout lists `{path}`, whose `{path}{CELLS_SUFFIX}` entry is not stored"
        ))
        .into());
    }
    if let Some(path) = values.keys().find(|p| !layout.contains_key(*p)) {
        return Err(corrupt(format!(
            "it stores `{path}{CELLS_SUFFIX}`, which its cell layout does not list"
        ))
        .into());
    }
    let dtypes = float_dtypes(model, layout);
    let mut out = HashMap::new();
    for (path, cells) in layout {
        let Some(shape) = params.get(path) else {
            return Err(StoreError::MissingParam { path: path.clone() });
        };
        let invalid = |reason: String| StoreError::InvalidCells {
            path: path.clone(),
            reason,
        };
        if let Some(reason) = cells.problem(shape) {
            return Err(invalid(reason));
        }
        let tensor = values[path];
        let dtype = dtypes[path];
        if tensor.dtype != dtype {
            return Err(invalid(format!(
                "the stored values are {:?}, the model's parameter is {dtype:?}",
                tensor.dtype
            )));
        }
        if tensor.shape.to_vec() != [cells.numel() as usize] {
            return Err(invalid(format!(
                "{:?} values are stored for cells of {} entries",
                tensor.shape.to_vec(),
                cells.numel()
            )));
        }
        let bytes = tensor.to_bytes().map_err(|e| StoreError::Store {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        out.insert(path.clone(), (cells.clone(), bytes.to_vec()));
    }
    Ok(out)
}

/// The dtype of each parameter of `model` named in `paths`.
fn float_dtypes<M: Module, V>(model: &M, paths: &BTreeMap<String, V>) -> HashMap<String, DType> {
    struct Dtypes<'a, V>(&'a BTreeMap<String, V>, HashMap<String, DType>);
    impl<V> ParamVisitor for Dtypes<'_, V> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if self.0.contains_key(path) {
                self.1.insert(path.to_string(), param.base().dtype());
            }
        }
    }
    let mut dtypes = Dtypes(paths, HashMap::new());
    visit_params(model, &mut dtypes);
    dtypes.1
}

/// `model` with each partially trained tensor's stored cells written over its entries there,
/// bit for bit; its other entries, id and require-grad setting stay as they were.
fn put_cells<M: Module>(model: M, cells: HashMap<String, (StoredCells, Vec<u8>)>) -> M {
    struct Put(HashMap<String, (StoredCells, Vec<u8>)>);
    impl ParamMapper for Put {
        fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((cells, values)) = self.0.remove(path) else {
                return param;
            };
            param.map(|w| {
                let require_grad = w.is_require_grad();
                let device = w.device();
                let data = w.into_data();
                let (shape, dtype) = (data.shape().clone(), data.dtype());
                let mut bytes = data.into_bytes().to_vec();
                cells.scatter(&mut bytes, &values, dtype.size());
                let w = Tensor::from_data(TensorData::from_bytes_vec(bytes, shape, dtype), &device);
                if require_grad { w.require_grad() } else { w }
            })
        }
    }
    if cells.is_empty() {
        return model;
    }
    map_params(model, &mut Put(cells))
}

/// The checksums [`save_tensors_and_cells`] records for `paths` of `model` (the bytes of each
/// stored base tensor, as burn-store writes them), for the cells of `cells` (their gathered
/// bytes, under `<path>#cells`, and the layout's JSON) and for the manifest.
fn checksums_of<M: Module>(
    model: &M,
    paths: &BTreeSet<String>,
    cells: &BTreeMap<String, StoredCells>,
    manifest: &str,
) -> Checksums {
    struct Sums<'a> {
        paths: &'a BTreeSet<String>,
        cells: &'a BTreeMap<String, StoredCells>,
        out: BTreeMap<String, String>,
    }
    impl ParamVisitor for Sums<'_> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if self.paths.contains(path) {
                let data = param.base().into_data();
                self.out
                    .insert(path.to_string(), integrity::checksum(data.as_bytes()));
            } else if let Some(cells) = self.cells.get(path) {
                let data = param.base().into_data();
                let values = cells.gather(data.as_bytes(), data.dtype().size());
                self.out.insert(
                    format!("{path}{CELLS_SUFFIX}"),
                    integrity::checksum(&values),
                );
            }
        }
    }
    let mut sums = Sums {
        paths,
        cells,
        out: BTreeMap::new(),
    };
    visit_params(model, &mut sums);
    Checksums {
        manifest: integrity::checksum(manifest.as_bytes()),
        tensors: sums.out,
        cells: (!cells.is_empty()).then(|| integrity::checksum(layout_json(cells).as_bytes())),
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
    use adapeft_importance::Tiling;
    use adapeft_testing::damage::{header, with_header};
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

    /// Cells of a partially trained tensor: stored alone, put back in place, the rest of the
    /// tensor the receiving model's; cells that do not fit are refused on save and on load.
    #[test]
    fn cells_round_trip_in_place_and_misfits_are_refused() {
        let device = Device::flex();
        let trained = Small::new(&device, 5);
        let base = Small::new(&device, 5);
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("cells.safetensors");
        // fc1.weight is [4, 5]: blocks of 2 x 2 make cells 0..6 on a 2 x 3 grid.
        let tiling = Tiling::new(&[4, 5], 2, 2).unwrap();
        let cells = |cells: Vec<u32>| {
            BTreeMap::from([("fc1.weight".to_string(), StoredCells { tiling, cells })])
        };
        save_tensors_and_cells(
            &trained,
            &strings(&["fc2.bias"]),
            &cells(vec![2, 3]),
            MANIFEST,
            &file,
        )
        .unwrap();
        assert_eq!(stored_keys(&file), ["fc1.weight#cells", "fc2.bias"]);

        let (loaded, manifest) = load_tensors(base.clone(), &file).unwrap();
        assert_eq!(manifest, MANIFEST);
        let (t, b, l) = (bytes(&trained), bytes(&base), bytes(&loaded));
        for (path, value) in &l {
            match path.as_str() {
                "fc2.bias" => assert_eq!(value, &t[path]),
                "fc1.weight" => {
                    // Cell 2: rows 0..2, column 4; cell 3: rows 2..4, columns 0..2.
                    for (k, entry) in value.chunks(4).enumerate() {
                        let (i, j) = (k / 5, k % 5);
                        let trained_here = (i < 2 && j == 4) || (i >= 2 && j < 2);
                        let want = if trained_here { &t[path] } else { &b[path] };
                        assert_eq!(entry, &want[k * 4..k * 4 + 4], "fc1.weight[{i}, {j}]");
                    }
                }
                _ => assert_eq!(value, &b[path], "{path}"),
            }
        }

        let refused = |result: Result<(), StoreError>, words: &str| match result {
            Err(StoreError::InvalidCells { path, reason }) => {
                assert_eq!(path, "fc1.weight");
                assert!(reason.contains(words), "{reason}");
            }
            other => panic!("{words}: got {other:?}"),
        };
        let other = dir.path().join("other.safetensors");
        let save = |paths: &[&str], cells: &BTreeMap<String, StoredCells>| {
            save_tensors_and_cells(&trained, &strings(paths), cells, "{}", &other)
        };
        refused(save(&["fc1.weight"], &cells(vec![1])), "also saved whole");
        refused(save(&[], &cells(vec![6])), "cell 6");
        refused(save(&[], &cells(vec![3, 1])), "ascending");
        refused(save(&[], &cells(vec![])), "no cell");
        let transposed = BTreeMap::from([(
            "fc1.weight".to_string(),
            StoredCells {
                tiling: Tiling::new(&[5, 4], 1, 4).unwrap(),
                cells: vec![0],
            },
        )]);
        refused(save(&[], &transposed), "5 x 4 view");
        let unknown = BTreeMap::from([(
            "fc9.weight".to_string(),
            StoredCells {
                tiling,
                cells: vec![0],
            },
        )]);
        assert!(
            matches!(save(&[], &unknown), Err(StoreError::UnknownPath { path }) if path == "fc9.weight")
        );
        assert!(!other.exists(), "nothing written");

        // Onto a model whose fc1.weight has another shape.
        let wider = Small::new(&device, 6);
        refused(load_tensors(wider, &file).map(|_| ()), "4 x 5 view");
    }

    /// The header metadata of `file`, as written.
    fn metadata(file: &Path) -> HashMap<String, String> {
        read_header(file).unwrap().metadata.unwrap_or_default()
    }

    /// A manifest longer than [`COMPRESS_ABOVE`] is stored compressed (version 4, with or
    /// without cells) and reads back as the same text; one of exactly that length stays plain
    /// (version 2, or 3 with cells). The file holds the compressed text, so it is smaller.
    #[test]
    fn a_long_manifest_is_stored_compressed_and_reads_back_exactly() {
        let device = Device::flex();
        let trained = Small::new(&device, 5);
        let base = Small::new(&device, 5);
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("long.safetensors");
        let tiling = Tiling::new(&[4, 5], 2, 2).unwrap();
        let cells = BTreeMap::from([(
            "fc1.weight".to_string(),
            StoredCells {
                tiling,
                cells: vec![1, 4],
            },
        )]);
        // JSON that repeats keys and paths, as a unit selection's does.
        let manifest = |len: usize| {
            let mut text = String::from("[");
            let mut k = 0u64;
            while text.len() < len - 2 {
                k += 1;
                text.push_str(&format!(
                    r#"{{"name":"fc1.weight[{}]","b":{}}},"#,
                    k % 20,
                    (k * 2_654_435_761 % 1_000_003) as f64 / 7.0
                ));
            }
            text.truncate(len - 1);
            text.push(']');
            assert_eq!(text.len(), len);
            text
        };
        for (len, with_cells, version) in [
            (COMPRESS_ABOVE, false, "2"),
            (COMPRESS_ABOVE, true, "3"),
            (COMPRESS_ABOVE + 1, false, "4"),
            (COMPRESS_ABOVE + 1, true, "4"),
            (2_000_000, true, "4"),
        ] {
            let text = manifest(len);
            let stored_cells = if with_cells {
                cells.clone()
            } else {
                BTreeMap::new()
            };
            save_tensors_and_cells(
                &trained,
                &strings(&["fc2.bias"]),
                &stored_cells,
                &text,
                &file,
            )
            .unwrap();
            let what = format!("{len} bytes, cells {with_cells}");
            let meta = metadata(&file);
            assert_eq!(meta[VERSION_KEY], version, "{what}");
            let compressed = len > COMPRESS_ABOVE;
            assert_eq!(meta.contains_key(MANIFEST_KEY), !compressed, "{what}");
            assert_eq!(
                meta.contains_key(MANIFEST_DEFLATE_KEY),
                compressed,
                "{what}"
            );
            assert_eq!(meta.contains_key(CELLS_KEY), with_cells, "{what}");
            let size = std::fs::metadata(&file).unwrap().len() as usize;
            if compressed {
                assert!(size < len / 2, "{what}: a file of {size} bytes");
            } else {
                assert!(size > len, "{what}: a file of {size} bytes");
            }
            assert_eq!(read_manifest(&file).unwrap(), text, "{what}");
            let (loaded, back) = load_tensors(base.clone(), &file).unwrap();
            assert_eq!(back, text, "{what}");
            let (t, b, l) = (bytes(&trained), bytes(&base), bytes(&loaded));
            assert_eq!(l["fc2.bias"], t["fc2.bias"], "{what}");
            assert_eq!(l["fc1.bias"], b["fc1.bias"], "{what}");
            // Cells 1 and 4 of the 2 x 3 grid hold rows 0..2, columns 2..4 and rows 2..4,
            // columns 2..4: column 2 of every row was trained when cells were stored.
            let column_two = |m: &BTreeMap<String, Vec<u8>>| -> Vec<u8> {
                (0..4)
                    .flat_map(|i| m["fc1.weight"][(i * 5 + 2) * 4..(i * 5 + 3) * 4].to_vec())
                    .collect()
            };
            let want = if with_cells { &t } else { &b };
            assert_eq!(column_two(&l), column_two(want), "{what}");
        }
    }

    /// `file` with its header metadata changed by `change`.
    fn rewrite(file: &Path, change: impl Fn(&mut BTreeMap<String, String>)) {
        let bytes = std::fs::read(file).unwrap();
        let (mut metadata, entries) = header(&bytes);
        change(&mut metadata);
        std::fs::write(file, with_header(&bytes, (metadata, entries))).unwrap();
    }

    /// The version decides how the manifest is read: a plain file's own manifest, deflated in
    /// place (its checksum still matches), reads back as the same text once the file says
    /// version 4, and is refused while it says 2; a version 4 file without cells relabelled 2,
    /// or given a cell layout its record does not list, is refused.
    #[test]
    fn the_format_version_decides_how_the_manifest_is_read() {
        let device = Device::flex();
        let model = Small::new(&device, 5);
        let dir = adapeft_testing::temp_dir("store");
        let file = dir.path().join("moved.safetensors");
        let corrupt = |what: &str, words: &str| match load_tensors(model.clone(), &file) {
            Err(StoreError::Integrity(IntegrityError::Corrupt { reason, .. })) => {
                assert!(reason.contains(words), "{what}: {reason}");
            }
            other => panic!("{what}: got {other:?}"),
        };
        let save = || {
            save_tensors(&model, &strings(&["fc2.bias"]), MANIFEST, &file).unwrap();
            assert_eq!(metadata(&file)[VERSION_KEY], "2");
        };
        let pack = |m: &mut BTreeMap<String, String>| {
            let text = m.remove(MANIFEST_KEY).unwrap();
            m.insert(MANIFEST_DEFLATE_KEY.into(), deflate(&text));
        };
        save();
        rewrite(&file, pack);
        corrupt("deflated at version 2", "version 2 does not store");
        rewrite(&file, |m| {
            m.insert(VERSION_KEY.into(), "4".into());
        });
        assert_eq!(read_manifest(&file).unwrap(), MANIFEST);
        let (_, back) = load_tensors(model.clone(), &file).unwrap();
        assert_eq!(back, MANIFEST);
        // Version 4 without cells, relabelled 2.
        rewrite(&file, |m| {
            m.insert(VERSION_KEY.into(), "2".into());
        });
        corrupt("version 4 relabelled 2", "version 2 does not store");
        // Version 4 without cells, given a cell layout.
        rewrite(&file, |m| {
            m.insert(VERSION_KEY.into(), "4".into());
            m.insert(CELLS_KEY.into(), "{}".into());
        });
        match load_tensors(model.clone(), &file) {
            Err(StoreError::Integrity(IntegrityError::Missing { reason, .. })) => {
                assert!(reason.contains("cell layout"), "{reason}");
            }
            other => panic!("a layout without its checksum: got {other:?}"),
        }
        // A file of a newer build: named as such even when it has no manifest this build
        // knows of.
        save();
        rewrite(&file, |m| {
            m.remove(MANIFEST_KEY);
            m.insert(VERSION_KEY.into(), "5".into());
        });
        assert!(matches!(
            read_manifest(&file),
            Err(StoreError::UnsupportedVersion { found: 5, .. })
        ));
    }

    /// The writer refuses what the reader would refuse as too long, and accepts up to it.
    #[test]
    fn manifests_too_long_to_read_back_are_refused_on_save() {
        let (header, inflated) = (MAX_HEADER_LEN as usize, MAX_INFLATED_LEN as usize);
        assert!(manifest_fits(header, header));
        assert!(manifest_fits(inflated, header));
        assert!(
            !manifest_fits(header + 1, header + 1),
            "a plain manifest over the header"
        );
        assert!(
            !manifest_fits(inflated, header + 1),
            "compressed, still over the header"
        );
        assert!(
            !manifest_fits(inflated + 1, 1000),
            "compressed, over the inflate limit"
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
