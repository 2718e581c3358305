//! [`AdaPeftError`]: everything that can go wrong in adapeft, for one `?` across the crates.

use adapeft_importance::{EstimateError, GroupingError};
use adapeft_knapsack::KnapsackError;
use adapeft_optim::OptimError;
use adapeft_optim::checkpoint::CheckpointError;
use adapeft_selection::{BudgetError, SelectionError, StoreError};
use thiserror::Error;

/// Why a selection (or saving, loading, transferring one, an optimizer adapter, or a
/// checkpoint) failed.
/// The user's model and data are never changed, error or not.
#[derive(Debug, Error)]
pub enum AdaPeftError {
    /// The model has no float parameter.
    #[error("the model has no float parameter to select from")]
    NoParameters,
    /// The value model needs the cross-group curvature, which the estimator did not compute.
    #[error(
        "the {value_model} value model needs the cross-group curvature, which `{estimator}` does not compute: use a GradientProbe (exact, or random signs over at most MAX_CURVATURE_GROUPS groups)"
    )]
    NoCurvature {
        /// The value model.
        value_model: String,
        /// The estimator, in words.
        estimator: String,
    },
    /// LoRA choices were asked for with a setting they do not support.
    #[error("LoRA choices: {0}")]
    LoraChoices(String),
    /// The budget is not valid.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The grouping could not be built.
    #[error(transparent)]
    Grouping(#[from] GroupingError),
    /// The estimator failed (no batch, a loss that is not a scalar or not finite, ...).
    #[error(transparent)]
    Estimate(#[from] EstimateError),
    /// The knapsack solver rejected the scores.
    #[error(transparent)]
    Knapsack(#[from] KnapsackError),
    /// A selection could not be read or transferred.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// Saving or loading the trained tensors failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An optimizer adapter ([`Masked`](crate::Masked), [`Gen`](crate::Gen),
    /// [`Reselect`](crate::Reselect)) was misconfigured or failed.
    #[error(transparent)]
    Optim(#[from] OptimError),
    /// Saving or restoring a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}
