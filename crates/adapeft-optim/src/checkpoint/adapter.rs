//! [`Resumable`]: the trainers a checkpoint can hold, and how each exports and imports its
//! own state.

use std::path::Path;

use adapeft_selection::StoredCells;

use super::error::CheckpointError;
use super::manifest::{AdapterState, GenState, ReselectState};
use crate::gen_lr::Gen;
use crate::masked::Masked;
use crate::reselect::{Reselect, SelectionHistory};

/// A trainer that [`save_checkpoint`](super::save_checkpoint) can save and
/// [`load_checkpoint`](super::load_checkpoint) can restore: [`Masked`], [`Reselect`],
/// [`Gen`]`<Masked>` and [`Gen`]`<Reselect>`.
///
/// Each saves its state (the mask and the optimizer state of the trained parameters; GeN's
/// rate, smoothing state and history; re-selection's step count and history) and checks its
/// settings (the optimizer's type and gradient clipping, [`GenConfig`](crate::GenConfig), the
/// re-selection period) against the checkpoint's on restore. Sealed: the state it saves is
/// this crate's to define.
pub trait Resumable: sealed::Sealed {}

pub(crate) mod sealed {
    use super::*;

    /// The methods behind [`Resumable`](super::Resumable).
    pub trait Sealed: Clone {
        /// The trainer's kind, as the manifest names it.
        const KIND: &'static str;

        /// The masked optimizer inside.
        fn masked(&self) -> &Masked;

        /// The state to save (the optimizer record is saved separately, from `masked`).
        fn state(&self) -> AdapterState;

        /// A copy of `self` holding `masked` (already restored) and the rest of `state`, or
        /// an error when a setting of `self` differs from the saved one. `manifest` names the
        /// manifest file in errors.
        fn restored(
            &self,
            masked: Masked,
            state: &AdapterState,
            manifest: &Path,
        ) -> Result<Self, CheckpointError>;
    }
}

fn masked_state(masked: &Masked) -> AdapterState {
    AdapterState {
        mask: masked.mask().group().clone(),
        cells: masked
            .mask()
            .all_cells()
            .iter()
            .map(|(path, cells)| {
                let stored = StoredCells {
                    tiling: cells.tiling(),
                    cells: cells.cells().to_vec(),
                };
                (path.clone(), stored)
            })
            .collect(),
        retired: masked.retired().iter().cloned().collect(),
        gen_lr: None,
        reselect: None,
    }
}

fn missing(manifest: &Path, part: &str, kind: &str) -> CheckpointError {
    super::error::corrupt(
        manifest,
        format!("it names a `{kind}` trainer but holds no {part} state"),
    )
}

impl Resumable for Masked {}

impl sealed::Sealed for Masked {
    const KIND: &'static str = "masked";

    fn masked(&self) -> &Masked {
        self
    }

    fn state(&self) -> AdapterState {
        masked_state(self)
    }

    fn restored(
        &self,
        masked: Masked,
        _: &AdapterState,
        _: &Path,
    ) -> Result<Self, CheckpointError> {
        Ok(masked)
    }
}

impl Resumable for Reselect {}

impl sealed::Sealed for Reselect {
    const KIND: &'static str = "reselect";

    fn masked(&self) -> &Masked {
        &self.optim
    }

    fn state(&self) -> AdapterState {
        AdapterState {
            reselect: Some(ReselectState {
                every: self.every,
                steps: self.steps,
                history: self.history.entries.iter().map(Into::into).collect(),
            }),
            ..masked_state(&self.optim)
        }
    }

    fn restored(
        &self,
        masked: Masked,
        state: &AdapterState,
        manifest: &Path,
    ) -> Result<Self, CheckpointError> {
        let saved = state
            .reselect
            .as_ref()
            .ok_or_else(|| missing(manifest, "re-selection", Self::KIND))?;
        if saved.every != self.every {
            return Err(CheckpointError::SettingsMismatch {
                setting: "every",
                saved: saved.every.to_string(),
                given: self.every.to_string(),
            });
        }
        Ok(Reselect {
            optim: masked,
            every: self.every,
            steps: saved.steps,
            history: SelectionHistory {
                entries: saved.history.iter().cloned().map(Into::into).collect(),
            },
        })
    }
}

fn gen_state<O>(gen_lr: &Gen<O>, inner: AdapterState) -> AdapterState {
    AdapterState {
        gen_lr: Some(GenState {
            config: gen_lr.config,
            lr: super::manifest::Exact(gen_lr.lr),
            rates: gen_lr.rates.as_ref().map(Into::into),
            steps: gen_lr.steps,
            probe_next: gen_lr.probe_next,
            history: gen_lr.history.iter().map(Into::into).collect(),
        }),
        ..inner
    }
}

fn gen_restored<O: Clone>(
    gen_lr: &Gen<O>,
    optim: O,
    state: &AdapterState,
    manifest: &Path,
    kind: &str,
) -> Result<Gen<O>, CheckpointError> {
    let saved = state
        .gen_lr
        .as_ref()
        .ok_or_else(|| missing(manifest, "GeN", kind))?;
    if saved.config != gen_lr.config {
        return Err(CheckpointError::SettingsMismatch {
            setting: "GenConfig",
            saved: saved.config.to_string(),
            given: gen_lr.config.to_string(),
        });
    }
    Ok(Gen {
        optim,
        config: gen_lr.config,
        lr: saved.lr.0,
        rates: saved.rates.clone().map(Into::into),
        steps: saved.steps,
        probe_next: saved.probe_next,
        history: saved.history.iter().cloned().map(Into::into).collect(),
    })
}

impl Resumable for Gen<Masked> {}

impl sealed::Sealed for Gen<Masked> {
    const KIND: &'static str = "gen<masked>";

    fn masked(&self) -> &Masked {
        &self.optim
    }

    fn state(&self) -> AdapterState {
        gen_state(self, self.optim.state())
    }

    fn restored(
        &self,
        masked: Masked,
        state: &AdapterState,
        manifest: &Path,
    ) -> Result<Self, CheckpointError> {
        gen_restored(self, masked, state, manifest, Self::KIND)
    }
}

impl Resumable for Gen<Reselect> {}

impl sealed::Sealed for Gen<Reselect> {
    const KIND: &'static str = "gen<reselect>";

    fn masked(&self) -> &Masked {
        &self.optim.optim
    }

    fn state(&self) -> AdapterState {
        gen_state(self, self.optim.state())
    }

    fn restored(
        &self,
        masked: Masked,
        state: &AdapterState,
        manifest: &Path,
    ) -> Result<Self, CheckpointError> {
        let inner = self.optim.restored(masked, state, manifest)?;
        gen_restored(self, inner, state, manifest, Self::KIND)
    }
}
