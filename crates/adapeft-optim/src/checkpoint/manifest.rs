//! The checkpoint manifest: what is written to `checkpoint.json`, and how it is read back.
//!
//! The file is an envelope `{format, version, checksum, body}`. `format` and `version` are
//! read first, so that a file from another program or a newer build gives a clear error
//! before anything else is parsed; `checksum` is the checksum of the body's canonical JSON
//! (keys sorted), in the one format of `adapeft_selection::integrity`, so a damaged value is
//! noticed even when the JSON still parses. Every checkpoint version records checksums (the
//! manifest's and each data file's): a manifest without its `checksum` is refused as
//! damaged, never read unverified.
//!
//! Every `f64` of the trainer's state goes through [`Exact`]: finite values as JSON numbers
//! (serde_json writes and reads them exactly), the others as strings, because JSON has no NaN
//! and GeN's history holds some (`b`, `a`, `r2` of a flat probe, non-finite losses).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use adapeft_selection::StoredCells;
use adapeft_selection::integrity::{self, IntegrityError, checksum};
use burn::module::ParamGroup;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::error::CheckpointError;
use crate::gen_lr::{GenConfig, GenProbe, GroupRates, Rejection};
use crate::reselect::HistoryEntry;

/// The `format` field of every checkpoint manifest.
pub const FORMAT: &str = "adapeft-checkpoint";

/// The newest version of the checkpoint format this build writes and reads: 2, a checkpoint
/// whose mask trains some tensors only in part (cells of units below the tensor, recorded in
/// [`AdapterState::cells`]). A checkpoint without cells is written as version 1, which builds
/// before cells read too; a manifest of any other version is refused with
/// [`CheckpointError::UnsupportedVersion`].
pub const CHECKPOINT_VERSION: u32 = 2;

/// The version of a checkpoint without cells.
const VERSION_WITHOUT_CELLS: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u64,
    checksum: String,
    body: Value,
}

/// Everything a checkpoint records besides the tensors themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The trainer kind: `masked`, `reselect`, `gen<masked>`, `gen<reselect>`.
    pub adapter: String,
    /// Every float parameter of the model (path, shape, require-grad), in model order: what
    /// "the same model" means on restore.
    pub model: Vec<ParamEntry>,
    /// The trained tensors' file.
    pub trained: FileEntry,
    /// The trained parameters (current mask and retired), with the ids the optimizer state is
    /// keyed by.
    pub trained_params: Vec<TrainedParam>,
    /// The optimizer state's file and what produced it.
    pub optimizer: OptimizerEntry,
    /// The trainer's own state.
    pub state: AdapterState,
    /// The selection, as `Selection::to_json` wrote it.
    pub selection: Option<String>,
}

/// One float parameter of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamEntry {
    /// Dotted path.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Whether it required gradients; `None` when the model was not on an autodiff device
    /// (burn then reports no setting) or the parameter was never initialised.
    pub require_grad: Option<bool>,
}

/// One trained parameter and its burn `ParamId` (decimal, as burn keys optimizer records;
/// a string, since JSON readers other than serde_json lose integers above 2^53).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedParam {
    /// Dotted path.
    pub path: String,
    /// `ParamId::val()`, in decimal.
    pub id: String,
}

/// A file of the checkpoint folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name inside the folder.
    pub file: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// Its checksum.
    pub checksum: String,
}

/// The optimizer state and the optimizer that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptimizerEntry {
    /// The burn optimizer's type name.
    pub optimizer: String,
    /// Its gradient clipping, in words.
    pub clipping: Option<String>,
    /// The number of state tensors in the record.
    pub state_tensors: usize,
    /// The burnpack file of the record.
    pub record: FileEntry,
}

/// The trainer's state: the mask always, GeN's and re-selection's when the trainer has them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterState {
    /// The mask (a burn `ParamGroup`): the parameters that train whole.
    pub mask: ParamGroup,
    /// The parameters that train only in some cells (units below the tensor), with their
    /// tiling and cells, by path (checkpoint version 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cells: BTreeMap<String, StoredCells>,
    /// Paths that trained once and left the mask.
    pub retired: Vec<String>,
    /// GeN's state.
    pub gen_lr: Option<GenState>,
    /// Re-selection's state.
    pub reselect: Option<ReselectState>,
}

impl AdapterState {
    /// The checkpoint version that records this state: 2 with cells, else 1.
    pub fn version(&self) -> u32 {
        if self.cells.is_empty() {
            VERSION_WITHOUT_CELLS
        } else {
            CHECKPOINT_VERSION
        }
    }
}

/// The state of a [`Gen`](crate::Gen).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenState {
    /// Its settings (checked on restore, not restored).
    pub config: GenConfig,
    /// The learning rate (or group-rate multiplier).
    pub lr: Exact,
    /// Per-group rates.
    pub rates: Option<RatesState>,
    /// Steps taken.
    pub steps: usize,
    /// Whether the next step probes.
    pub probe_next: bool,
    /// Every probe.
    pub history: Vec<ProbeState>,
}

/// [`GroupRates`], with exact floats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RatesState {
    default: Exact,
    groups: Vec<(String, Vec<String>, Exact)>,
}

impl From<&GroupRates> for RatesState {
    fn from(r: &GroupRates) -> Self {
        RatesState {
            default: Exact(r.default),
            groups: r
                .groups
                .iter()
                .map(|(name, paths, rate)| (name.clone(), paths.clone(), Exact(*rate)))
                .collect(),
        }
    }
}

impl From<RatesState> for GroupRates {
    fn from(r: RatesState) -> Self {
        GroupRates {
            default: r.default.0,
            groups: r
                .groups
                .into_iter()
                .map(|(name, paths, rate)| (name, paths, rate.0))
                .collect(),
        }
    }
}

/// [`GenProbe`], with exact floats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeState {
    step: usize,
    lr_before: Exact,
    losses: Vec<(Exact, Exact)>,
    b: Exact,
    a: Exact,
    r2: Exact,
    proposal: Option<Exact>,
    rejected: Option<Rejection>,
    clipped: bool,
    lr_after: Exact,
}

impl From<&GenProbe> for ProbeState {
    fn from(p: &GenProbe) -> Self {
        ProbeState {
            step: p.step,
            lr_before: Exact(p.lr_before),
            losses: p
                .losses
                .iter()
                .map(|&(t, l)| (Exact(t), Exact(l)))
                .collect(),
            b: Exact(p.b),
            a: Exact(p.a),
            r2: Exact(p.r2),
            proposal: p.proposal.map(Exact),
            rejected: p.rejected,
            clipped: p.clipped,
            lr_after: Exact(p.lr_after),
        }
    }
}

impl From<ProbeState> for GenProbe {
    fn from(p: ProbeState) -> Self {
        GenProbe {
            step: p.step,
            lr_before: p.lr_before.0,
            losses: p.losses.into_iter().map(|(t, l)| (t.0, l.0)).collect(),
            b: p.b.0,
            a: p.a.0,
            r2: p.r2.0,
            proposal: p.proposal.map(|x| x.0),
            rejected: p.rejected,
            clipped: p.clipped,
            lr_after: p.lr_after.0,
        }
    }
}

/// The state of a [`Reselect`](crate::Reselect).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReselectState {
    /// The re-selection period (checked on restore, not restored).
    pub every: usize,
    /// Steps taken.
    pub steps: usize,
    /// The selection history.
    pub history: Vec<EntryState>,
}

/// [`HistoryEntry`], with exact floats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryState {
    step: usize,
    chosen: Vec<String>,
    trainable_params: u64,
    predicted_reduction: Exact,
    dropped: Vec<String>,
    added: Vec<String>,
    seconds: Exact,
}

impl From<&HistoryEntry> for EntryState {
    fn from(e: &HistoryEntry) -> Self {
        EntryState {
            step: e.step,
            chosen: e.chosen.clone(),
            trainable_params: e.trainable_params,
            predicted_reduction: Exact(e.predicted_reduction),
            dropped: e.dropped.clone(),
            added: e.added.clone(),
            seconds: Exact(e.seconds),
        }
    }
}

impl From<EntryState> for HistoryEntry {
    fn from(e: EntryState) -> Self {
        HistoryEntry {
            step: e.step,
            chosen: e.chosen,
            trainable_params: e.trainable_params,
            predicted_reduction: e.predicted_reduction.0,
            dropped: e.dropped,
            added: e.added,
            seconds: e.seconds.0,
        }
    }
}

/// An `f64` that survives JSON bit for bit: a number when finite, otherwise `"inf"`,
/// `"-inf"` or `"nan:<16 hex digits of its bits>"` (NaNs keep their payload and sign).
#[derive(Debug, Clone, Copy)]
pub struct Exact(pub f64);

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_finite() {
            serializer.serialize_f64(x)
        } else if x.is_nan() {
            serializer.serialize_str(&format!("nan:{:016x}", x.to_bits()))
        } else if x > 0.0 {
            serializer.serialize_str("inf")
        } else {
            serializer.serialize_str("-inf")
        }
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExactVisitor;
        impl Visitor<'_> for ExactVisitor {
            type Value = Exact;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"inf\", \"-inf\" or \"nan:<hex bits>\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Exact, E> {
                Ok(Exact(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Exact, E> {
                Ok(Exact(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Exact, E> {
                let nan = |hex: &str| {
                    u64::from_str_radix(hex, 16)
                        .ok()
                        .map(f64::from_bits)
                        .filter(|x| x.is_nan())
                };
                match v {
                    "inf" => Ok(Exact(f64::INFINITY)),
                    "-inf" => Ok(Exact(f64::NEG_INFINITY)),
                    _ => v
                        .strip_prefix("nan:")
                        .and_then(nan)
                        .map(Exact)
                        .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ExactVisitor)
    }
}

impl Manifest {
    /// The manifest file's text: the envelope around this manifest, with its checksum.
    pub fn to_text(&self) -> String {
        let body = serde_json::to_value(self).expect("a manifest always serialises");
        let envelope = Envelope {
            format: FORMAT.to_string(),
            version: u64::from(self.state.version()),
            checksum: checksum(body.to_string().as_bytes()),
            body,
        };
        serde_json::to_string_pretty(&envelope).expect("a manifest always serialises")
    }

    /// Reads the manifest file's text (`file` names it in errors): format, then version,
    /// then checksum, then the body.
    pub fn parse(file: &Path, text: &str) -> Result<Self, CheckpointError> {
        let not_ours = |reason: String| CheckpointError::NotACheckpoint {
            file: file.to_path_buf(),
            reason,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| not_ours(format!("not JSON: {e}")))?;
        match value.get("format").and_then(Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(not_ours(format!("its format is `{other}`, not `{FORMAT}`")));
            }
            None => return Err(not_ours("it has no `format` field".into())),
        }
        let version = value.get("version").and_then(Value::as_u64);
        match version {
            Some(v)
                if v == u64::from(CHECKPOINT_VERSION) || v == u64::from(VERSION_WITHOUT_CELLS) => {}
            Some(found) => {
                return Err(CheckpointError::UnsupportedVersion {
                    file: file.to_path_buf(),
                    found,
                    supported: CHECKPOINT_VERSION,
                });
            }
            None => return Err(not_ours("it has no numeric `version` field".into())),
        }
        // Every version records the body's checksum: without one the file is damaged.
        if !value.get("checksum").is_some_and(Value::is_string) {
            return Err(IntegrityError::Missing {
                file: file.to_path_buf(),
                reason: format!(
                    "although checkpoint version {} records the manifest's in `checksum`",
                    version.expect("checked above")
                ),
            }
            .into());
        }
        let envelope: Envelope = serde_json::from_value(value)
            .map_err(|e| not_ours(format!("malformed envelope: {e}")))?;
        integrity::verify(
            file,
            "(manifest body)",
            envelope.body.to_string().as_bytes(),
            &envelope.checksum,
        )?;
        let manifest: Manifest = serde_json::from_value(envelope.body).map_err(|e| {
            super::error::corrupt(
                file,
                format!("its manifest does not describe a checkpoint: {e}"),
            )
        })?;
        if envelope.version == u64::from(VERSION_WITHOUT_CELLS) && !manifest.state.cells.is_empty()
        {
            return Err(super::error::corrupt(
                file,
                format!(
                    "its version {VERSION_WITHOUT_CELLS} manifest records cells, which only version {CHECKPOINT_VERSION} has"
                ),
            ));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_keeps_every_f64_bit_for_bit() {
        let values = [
            0.0,
            -0.0,
            1.0,
            0.1,
            -3.25e-300,
            f64::MIN_POSITIVE / 8.0, // subnormal
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001), // a signalling NaN with a payload
        ];
        for x in values {
            let text = serde_json::to_string(&Exact(x)).unwrap();
            let back: Exact = serde_json::from_str(&text).unwrap();
            assert_eq!(back.0.to_bits(), x.to_bits(), "{x:?} written as {text}");
            // Through a `Value` too, as the manifest's checksum does.
            let value: Value = serde_json::from_str(&text).unwrap();
            let back: Exact = serde_json::from_value(value).unwrap();
            assert_eq!(back.0.to_bits(), x.to_bits(), "{x:?} through a Value");
        }
        for bad in [
            "\"nan\"",
            "\"nan:zz\"",
            "\"nan:3ff0000000000000\"",
            "\"NaN\"",
            "null",
        ] {
            assert!(
                serde_json::from_str::<Exact>(bad).is_err(),
                "{bad} must be refused"
            );
        }
    }
}
