//! Checkpoint and resume: everything a run needs to continue, in one folder.
//!
//! [`save_checkpoint`] writes, into a folder:
//!
//! - `trained-<token>.safetensors`: the trained tensors only, as
//!   [`save_tensors_and_cells`] writes them (with per-tensor
//!   checksums): the parameters inside the mask, plus those that trained once and left it at a
//!   re-selection; a tensor the mask trains only in some cells (units below the tensor) as
//!   those cells' values, its other entries being the base model's;
//! - `optimizer-<token>.bpk`: burn's own record of the optimizer state (burnpack), which
//!   holds state for the trained parameters only, since [`Masked`](crate::Masked) never lets
//!   the optimizer see another parameter;
//! - `checkpoint.json`: the manifest. It records the model's parameter layout, each trained
//!   parameter's `ParamId`, the optimizer's type and gradient clipping, the mask, GeN's rate,
//!   smoothing state and history, re-selection's step count and history, the selection, and
//!   the length and checksum of both files. It is versioned ([`CHECKPOINT_VERSION`]) and
//!   carries a checksum of its own. Checksums are those of `adapeft_selection::integrity`
//!   (one format for adapter files and checkpoints); every checkpoint version records them,
//!   so a checkpoint never loads unverified, and a damaged one gives
//!   [`CheckpointError::Integrity`] naming the file.
//!
//! [`load_checkpoint`] puts it all back onto a freshly built base model and a freshly built
//! trainer with the same optimizer settings: continuing from there gives the same parameters
//! and optimizer state, bit for bit, as a run that was never interrupted (`tests/checkpoint.rs`
//! in the `adapeft` crate checks this for every trainer kind, across a re-selection).
//!
//! ```
//! use adapeft_optim::Masked;
//! use adapeft_optim::checkpoint::{load_checkpoint, save_checkpoint};
//! use burn::module::{Module, ParamGroup};
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::{AdamWConfig, GradientsParams};
//! use burn::tensor::{Device, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = Device::flex().autodiff();
//! let pretrained: Linear = LinearConfig::new(4, 1).init(&device);
//! let x = Tensor::<2>::ones([8, 4], &device);
//! let trainer = || Masked::new(AdamWConfig::new().build(), ParamGroup::from_paths(vec!["bias"]));
//!
//! // Train the bias for three steps, and save a checkpoint.
//! let (mut model, mut optim) = (pretrained.clone(), trainer());
//! for _ in 0..3 {
//!     let loss = (model.forward(x.clone()) - 3.0).square().mean();
//!     let grads = GradientsParams::from_grads(loss.backward(), &model);
//!     model = optim.step(1e-2, model, grads);
//! }
//! let dir = tempfile::tempdir()?;
//! let saved = save_checkpoint(dir.path(), &model, &optim, None)?;
//! assert_eq!(saved.trained, ["bias"]);
//! assert_eq!(saved.state_tensors, 2); // AdamW's two moments of the bias
//!
//! // Later, in another process: the base model, and a trainer built as before.
//! let mut resumed_optim = trainer();
//! let resumed = load_checkpoint(dir.path(), pretrained, &mut resumed_optim)?;
//! assert_eq!(
//!     resumed.model.bias.as_ref().unwrap().val().into_data(),
//!     model.bias.as_ref().unwrap().val().into_data(),
//! );
//! assert_eq!(resumed_optim.state_tensors(), 2); // ready to take step 4
//! # Ok(())
//! # }
//! ```
//!
//! # What must be the same on restore
//!
//! burn optimizers expose neither their settings nor their state's layout, so the trainer is
//! rebuilt by the caller and checked against the checkpoint:
//!
//! - the model: every float parameter's path and shape, or
//!   [`CheckpointError::ModelMismatch`] naming the first parameter that differs;
//! - the trainer kind (`masked`, `reselect`, `gen<masked>`, `gen<reselect>`), or
//!   [`CheckpointError::AdapterMismatch`];
//! - the burn optimizer's type and gradient clipping, or
//!   [`CheckpointError::OptimizerMismatch`]; also when the saved state does not load into
//!   the optimizer given. Its hyperparameters (betas, weight decay, ...) are not visible to
//!   adapeft and are not checked: build it from the same config;
//! - [`GenConfig`](crate::GenConfig) and the re-selection period, or
//!   [`CheckpointError::SettingsMismatch`].
//!
//! The mask, the state and the trained values come from the checkpoint; the trainer's own
//! mask is replaced. Parameters that were not trained keep the base model's values, so the
//! base must be the same pretrained model (this is not checked: the checkpoint holds no
//! copy of it).
//!
//! # Atomicity
//!
//! The data files get a fresh name at every save and are written (and synced) before the
//! manifest, which is written to a scratch file and renamed over `checkpoint.json`: that
//! rename is the commit. A save that fails or is killed at any point leaves the previous
//! checkpoint in the folder loadable; the files the previous manifest named are removed only
//! after the new one is in place. (A killed save can leave an unreferenced data file or a
//! `checkpoint.json.*.tmp` behind; they are never read.)
//!
//! # Devices
//!
//! The trained tensors are loaded onto the base model's device. burn materialises a
//! restored optimizer state on `Device::default()` and moves it to each parameter's device
//! at its next step (an exact copy); with several backends compiled in, the default may be
//! another backend than the model's (`BURN_DEVICE` picks it). The state keeps its saved
//! dtype only when it is the default device's float dtype: train in the default float
//! precision (f32 on flex and wgpu) for a bit-exact resume.

mod adapter;
mod error;
mod manifest;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use adapeft_importance::{ParamMapper, ParamVisitor, layout, map_params, visit_params};
use adapeft_selection::integrity::{self, checksum};
use adapeft_selection::{Selection, load_tensors, save_tensors_and_cells};
use burn::module::{Module, Param, ParamId};
use burn::optim::OptimizerRecord;
use burn::store::burn_pack::Reader;
use burn::tensor::{Bytes, Tensor};
use xxhash_rust::xxh3::xxh3_64;

pub use adapter::Resumable;
pub use error::CheckpointError;
pub use manifest::CHECKPOINT_VERSION;

use error::corrupt;
use manifest::{FileEntry, Manifest, OptimizerEntry, ParamEntry, TrainedParam};

use crate::mask::{CellMask, GradientMask};

/// The manifest's file name inside a checkpoint folder.
pub const MANIFEST_FILE: &str = "checkpoint.json";

/// What [`save_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The paths of the tensors saved, in model order: the mask's trainable parameters and
    /// those that left it at a re-selection.
    pub trained: Vec<String>,
    /// The number of optimizer state tensors saved (AdamW: two per trained tensor that has
    /// taken a step).
    pub state_tensors: usize,
    /// The checkpoint's size on disk: its three files together, in bytes.
    pub bytes: u64,
}

/// What [`load_checkpoint`] gives back.
#[derive(Debug)]
pub struct Resumed<M> {
    /// The base model with the trained tensors, their parameter ids and every parameter's
    /// require-grad setting restored as they were when saved.
    pub model: M,
    /// The selection saved with the checkpoint, if one was.
    pub selection: Option<Selection>,
}

/// Saves everything `trainer` needs to continue training `model` into the folder `dir`
/// (created if missing; an earlier checkpoint there is replaced): the trained tensors, the
/// optimizer state of the trained parameters, the trainer's own state and, when given,
/// `selection`. See the [module docs](self) for the files and an example.
///
/// `model` and `trainer` are only read.
///
/// # Errors
///
/// - [`CheckpointError::ForeignState`] if the optimizer holds state for a parameter that is
///   not a trained parameter of `model` (the trainer was used with another model); nothing
///   is written;
/// - [`CheckpointError::Io`], [`CheckpointError::Store`], [`CheckpointError::Record`] if a
///   file cannot be written, naming it. The previous checkpoint in `dir`, if any, is left
///   as it was.
pub fn save_checkpoint<M: Module, T: Resumable>(
    dir: impl AsRef<Path>,
    model: &M,
    trainer: &T,
    selection: Option<&Selection>,
) -> Result<CheckpointInfo, CheckpointError> {
    let dir = dir.as_ref();
    let masked = trainer.masked();
    let slots = layout(model);
    let require_grad = require_grad(model);
    for path in masked.retired() {
        if !slots.iter().any(|s| &s.path == path) {
            return Err(CheckpointError::ForeignState {
                what: format!("`{path}`"),
            });
        }
    }
    let trainable: BTreeSet<String> = masked
        .mask()
        .trainable(model)
        .into_iter()
        .map(|s| s.path)
        .collect();
    let trained: Vec<(String, ParamId)> = slots
        .iter()
        .filter(|s| trainable.contains(&s.path) || masked.retired().contains(&s.path))
        .map(|s| (s.path.clone(), s.id))
        .collect();

    let token = unique_token();
    let record_name = format!("optimizer-{token}.bpk");
    let record = masked.inner().to_record();
    let state_tensors = record.len();
    let record_bytes = record
        .into_bytes()
        .map_err(|e| CheckpointError::Record {
            file: dir.join(&record_name),
            message: e.to_string(),
        })?
        .to_vec();
    let ids: HashMap<u64, &str> = trained
        .iter()
        .map(|(path, id)| (id.val(), path.as_str()))
        .collect();
    for (id, path) in record_params(&record_bytes).expect("burn reads back what it wrote") {
        let owner = ids.get(&id);
        if owner.is_none() || path.as_deref().is_some_and(|p| Some(&p) != owner) {
            return Err(CheckpointError::ForeignState {
                what: path.map_or_else(|| format!("parameter id {id}"), |p| format!("`{p}`")),
            });
        }
    }

    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| CheckpointError::Io { file, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let previous = fs::read_to_string(dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|text| Manifest::parse(&dir.join(MANIFEST_FILE), &text).ok());

    let trained_name = format!("trained-{token}.safetensors");
    let written = [dir.join(&trained_name), dir.join(&record_name)];
    let state = trainer.state();
    let result = (|| {
        let paths: Vec<String> = trained.iter().map(|(p, _)| p.clone()).collect();
        // A partially trained tensor is saved as its cells (the rest of it is the base's:
        // `Masked` keeps it bit-identical), the others whole.
        let whole: Vec<String> = paths
            .iter()
            .filter(|p| !state.cells.contains_key(*p))
            .cloned()
            .collect();
        // The selection is in the manifest already: the file's own manifest only says what
        // the file is part of.
        let header = format!(
            r#"{{"format":"{}","version":{}}}"#,
            manifest::FORMAT,
            state.version()
        );
        save_tensors_and_cells(model, &whole, &state.cells, &header, &written[0])?;
        let trained_bytes = fs::read(&written[0]).map_err(io(&written[0]))?;
        File::open(&written[0])
            .and_then(|f| f.sync_all())
            .map_err(io(&written[0]))?;
        write_synced(&written[1], &record_bytes).map_err(io(&written[1]))?;

        let manifest = Manifest {
            adapter: T::KIND.to_string(),
            model: slots
                .iter()
                .zip(&require_grad)
                .map(|(s, &require_grad)| ParamEntry {
                    path: s.path.clone(),
                    shape: s.shape.clone(),
                    require_grad,
                })
                .collect(),
            trained: file_entry(&trained_name, &trained_bytes),
            trained_params: trained
                .iter()
                .map(|(path, id)| TrainedParam {
                    path: path.clone(),
                    id: id.val().to_string(),
                })
                .collect(),
            optimizer: OptimizerEntry {
                optimizer: masked.optimizer_name().to_string(),
                clipping: masked.clipping_name(),
                state_tensors,
                record: file_entry(&record_name, &record_bytes),
            },
            state: state.clone(),
            selection: selection.map(Selection::to_json_compact),
        };
        let text = manifest.to_text();
        let scratch = dir.join(format!("{MANIFEST_FILE}.{token}.tmp"));
        write_synced(&scratch, text.as_bytes()).map_err(io(&scratch))?;
        let target = dir.join(MANIFEST_FILE);
        if let Err(e) = fs::rename(&scratch, &target) {
            let _ = fs::remove_file(&scratch);
            return Err(io(&target)(e));
        }
        // Make the rename itself durable (best effort: not every platform can sync a folder).
        let _ = File::open(dir).and_then(|d| d.sync_all());
        Ok(CheckpointInfo {
            trained: paths,
            state_tensors,
            bytes: trained_bytes.len() as u64 + record_bytes.len() as u64 + text.len() as u64,
        })
    })();

    match &result {
        Ok(_) => {
            // The new manifest is in place: the previous checkpoint's files can go.
            if let Some(previous) = previous {
                for old in [previous.trained.file, previous.optimizer.record.file] {
                    if is_data_file_name(&old) && !written.iter().any(|w| w.ends_with(&old)) {
                        let _ = fs::remove_file(dir.join(old));
                    }
                }
            }
        }
        Err(_) => {
            for file in &written {
                let _ = fs::remove_file(file);
            }
        }
    }
    result
}

/// Restores the checkpoint saved by [`save_checkpoint`] in the folder `dir` onto `base` (the
/// base model the run started from, freshly built) and `trainer` (built as for the first
/// run, with the same optimizer settings), and returns the model ready to continue.
///
/// Everything is read and checked before anything is changed: on error `trainer` is left
/// as it was (and `base`, taken by value, is dropped; burn modules are cheap to clone).
///
/// The returned model holds the saved values of the trained tensors, on `base`'s device, with
/// the parameter ids they had when saved (burn keys optimizer state by id), and each
/// parameter requires gradients as it did when saved (a model saved off autodiff, for which
/// burn reports no setting, keeps `base`'s settings). `trainer` holds the saved mask, optimizer state and
/// its own state. The optimizer state is materialised on `Device::default()` and moved to
/// each parameter's device at its next step (see the [module docs](self#devices)).
///
/// # Errors
///
/// - [`CheckpointError::Io`] if a file is missing or unreadable (naming it);
/// - [`CheckpointError::NotACheckpoint`], [`CheckpointError::UnsupportedVersion`] for a
///   manifest this build does not read;
/// - [`CheckpointError::Integrity`] for a damaged file (naming it);
///   [`CheckpointError::Store`], [`CheckpointError::Record`] if burn cannot read a file whose
///   checksum matched;
/// - [`CheckpointError::ModelMismatch`], [`CheckpointError::AdapterMismatch`],
///   [`CheckpointError::OptimizerMismatch`], [`CheckpointError::SettingsMismatch`] for a
///   checkpoint of another model, trainer kind, optimizer or settings;
/// - [`CheckpointError::Selection`] if the saved selection cannot be read.
pub fn load_checkpoint<M: Module, T: Resumable>(
    dir: impl AsRef<Path>,
    base: M,
    trainer: &mut T,
) -> Result<Resumed<M>, CheckpointError> {
    let dir = dir.as_ref();
    let manifest_file = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&manifest_file).map_err(|source| CheckpointError::Io {
        file: manifest_file.clone(),
        source,
    })?;
    // A manifest that is not text is not read as an I/O failure: it is no manifest.
    let text = String::from_utf8(bytes).map_err(|e| CheckpointError::NotACheckpoint {
        file: manifest_file.clone(),
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let manifest = Manifest::parse(&manifest_file, &text)?;

    // The trainer and the model must be the ones the checkpoint was made with.
    if manifest.adapter != T::KIND {
        return Err(CheckpointError::AdapterMismatch {
            saved: manifest.adapter,
            given: T::KIND,
        });
    }
    let masked = trainer.masked();
    let saved_optimizer = (
        manifest.optimizer.optimizer.as_str(),
        manifest.optimizer.clipping.as_deref(),
    );
    if saved_optimizer != (masked.optimizer_name(), masked.clipping_name().as_deref()) {
        return Err(CheckpointError::OptimizerMismatch {
            saved: optimizer_words(saved_optimizer.0, saved_optimizer.1),
            given: optimizer_words(masked.optimizer_name(), masked.clipping_name().as_deref()),
        });
    }
    check_model(&manifest.model, &base)?;
    let selection = manifest
        .selection
        .as_deref()
        .map(Selection::from_json)
        .transpose()?;

    // The optimizer state: checksum, then its parameters against the manifest's.
    let record_file = dir.join(&manifest.optimizer.record.file);
    let record_bytes = read_checked(&record_file, &manifest.optimizer.record)?;
    let mut ids: HashMap<String, ParamId> = HashMap::new();
    let mut paths_by_id: HashMap<u64, &str> = HashMap::new();
    for param in &manifest.trained_params {
        let id: u64 = param.id.parse().map_err(|_| {
            corrupt(
                &manifest_file,
                format!(
                    "parameter `{}` has the id `{}`, not a u64",
                    param.path, param.id
                ),
            )
        })?;
        ids.insert(param.path.clone(), ParamId::from(id));
        paths_by_id.insert(id, &param.path);
    }
    let params = record_params(&record_bytes).map_err(|e| corrupt(&record_file, e))?;
    for (id, path) in params {
        match (paths_by_id.get(&id), path) {
            (Some(owner), Some(path)) if *owner == path => {}
            (Some(_), None) => {}
            _ => {
                return Err(corrupt(
                    &record_file,
                    format!(
                        "it holds state for parameter id {id}, which is not a trained parameter"
                    ),
                ));
            }
        }
    }
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(record_bytes)).map_err(|e| {
        CheckpointError::Record {
            file: record_file.clone(),
            message: e.to_string(),
        }
    })?;

    // The trained tensors, then their ids and require-grad settings.
    let trained_file = dir.join(&manifest.trained.file);
    read_checked(&trained_file, &manifest.trained)?;
    let (model, _) = load_tensors(base, &trained_file)?;
    let require_grad = manifest
        .model
        .iter()
        .filter_map(|p| Some((p.path.clone(), p.require_grad?)))
        .collect();
    let model = map_params(
        model,
        &mut Restore {
            ids: &ids,
            require_grad: &require_grad,
        },
    );
    let mut mask = GradientMask::new(manifest.state.mask.clone());
    for (path, stored) in &manifest.state.cells {
        let cells = CellMask::new(stored.tiling, stored.cells.iter().copied())
            .map_err(|e| corrupt(&manifest_file, format!("the cells of `{path}`: {e}")))?;
        mask = mask.with_cells(path.clone(), cells);
    }

    let retired = manifest.state.retired.iter().cloned().collect();
    let restored = masked.restored(mask, retired, record);
    let state_tensors = restored.state_tensors();
    if state_tensors != manifest.optimizer.state_tensors {
        return Err(CheckpointError::OptimizerMismatch {
            saved: format!(
                "{} with {} state tensors",
                optimizer_words(saved_optimizer.0, saved_optimizer.1),
                manifest.optimizer.state_tensors
            ),
            given: format!(
                "{}, which read {state_tensors} of them",
                optimizer_words(masked.optimizer_name(), masked.clipping_name().as_deref())
            ),
        });
    }
    *trainer = trainer.restored(restored, &manifest.state, &manifest_file)?;
    Ok(Resumed { model, selection })
}

/// Puts the saved parameter ids and require-grad settings back, by path.
struct Restore<'a> {
    ids: &'a HashMap<String, ParamId>,
    require_grad: &'a HashMap<String, bool>,
}

impl ParamMapper for Restore<'_> {
    fn map<const D: usize>(&mut self, path: &str, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if let Some(id) = self.ids.get(path) {
            param.id = *id;
        }
        match self.require_grad.get(path) {
            Some(&trains) => param.set_require_grad(trains),
            None => param,
        }
    }
}

/// Each float parameter's require-grad setting, in model order, where burn reports one: on
/// an autodiff device, for an initialised parameter.
fn require_grad<M: Module>(model: &M) -> Vec<Option<bool>> {
    struct Flags(Vec<Option<bool>>);
    impl ParamVisitor for Flags {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            let flag = param
                .is_initialized()
                .then(|| param.val())
                .and_then(|value| value.is_autodiff().then(|| value.is_require_grad()));
            self.0.push(flag);
        }
    }
    let mut flags = Flags(Vec::new());
    visit_params(model, &mut flags);
    flags.0
}

/// The first parameter (in model order) whose presence or shape differs between the saved
/// layout and `model`'s.
fn check_model<M: Module>(saved: &[ParamEntry], model: &M) -> Result<(), CheckpointError> {
    let found: Vec<(String, Vec<usize>)> = layout(model)
        .into_iter()
        .map(|s| (s.path, s.shape))
        .collect();
    if saved.len() == found.len()
        && saved
            .iter()
            .zip(&found)
            .all(|(a, b)| (&a.path, &a.shape) == (&b.0, &b.1))
    {
        return Ok(());
    }
    let saved_by_path: BTreeMap<&str, &Vec<usize>> =
        saved.iter().map(|p| (p.path.as_str(), &p.shape)).collect();
    let found_by_path: BTreeMap<&str, &Vec<usize>> = found
        .iter()
        .map(|(path, shape)| (path.as_str(), shape))
        .collect();
    let differs = |path: &str| saved_by_path.get(path) != found_by_path.get(path);
    let path = found
        .iter()
        .map(|(path, _)| path.as_str())
        .chain(saved.iter().map(|p| p.path.as_str()))
        .find(|path| differs(path));
    match path {
        Some(path) => Err(CheckpointError::ModelMismatch {
            path: path.to_string(),
            saved: saved_by_path.get(path).map(|s| s.to_vec()),
            found: found_by_path.get(path).map(|s| s.to_vec()),
        }),
        // Same parameters in another order: the model is the same for every purpose here.
        None => Ok(()),
    }
}

/// Every parameter id an optimizer record holds state for, with its path when recorded.
/// Checks what burn's `load_record` would otherwise panic on (a state tensor without an id,
/// a rank above 8).
fn record_params(bytes: &[u8]) -> Result<BTreeMap<u64, Option<String>>, String> {
    const RANK: &str = ".__rank";
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| format!("not an optimizer record: {e}"))?;
    let mut params: BTreeMap<u64, Option<String>> = BTreeMap::new();
    for (key, value) in reader.scalars() {
        if let Some(id) = key.strip_suffix(RANK) {
            let id = id
                .parse::<u64>()
                .map_err(|_| format!("state key `{key}` names no parameter id"))?;
            let rank = u64::try_from(*value).map_err(|_| format!("`{key}` is not a rank"))?;
            if !(1..=8).contains(&rank) {
                return Err(format!("`{key}` is {rank}; ranks 1 to 8 are supported"));
            }
            params.insert(id, None);
        }
    }
    for (key, path) in reader.metadata() {
        if let Ok(id) = key.parse::<u64>() {
            params.insert(id, Some(path.clone()));
        }
    }
    let tensors = reader
        .into_tensors()
        .map_err(|e| format!("unreadable state tensors: {e}"))?;
    for tensor in tensors {
        let id = tensor
            .param_id
            .ok_or_else(|| format!("state tensor `{}` has no parameter id", tensor.name))?;
        params.entry(id).or_insert(None);
    }
    Ok(params)
}

/// The bytes of `file`, checked against its manifest entry.
fn read_checked(file: &Path, entry: &FileEntry) -> Result<Vec<u8>, CheckpointError> {
    let bytes = fs::read(file).map_err(|source| CheckpointError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    integrity::verify_file(file, &bytes, entry.bytes, &entry.checksum)?;
    Ok(bytes)
}

fn file_entry(name: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        file: name.to_string(),
        bytes: bytes.len() as u64,
        checksum: checksum(bytes),
    }
}

fn optimizer_words(name: &str, clipping: Option<&str>) -> String {
    match clipping {
        Some(clipping) => format!("`{name}` with gradient clipping by {clipping}"),
        None => format!("`{name}` without gradient clipping"),
    }
}

/// Whether `name` is a data file name [`save_checkpoint`] gives (the only files it removes).
fn is_data_file_name(name: &str) -> bool {
    let plain = !name.contains(['/', '\\']) && name != MANIFEST_FILE;
    plain
        && ((name.starts_with("trained-") && name.ends_with(".safetensors"))
            || (name.starts_with("optimizer-") && name.ends_with(".bpk")))
}

fn write_synced(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut out = File::create(file)?;
    out.write_all(bytes)?;
    out.sync_all()
}

/// A name part no earlier save in this folder used: from the process id, the clock and a
/// counter.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{}-{nanos}-{count}", std::process::id());
    format!("{:016x}", xxh3_64(seed.as_bytes()))
}
