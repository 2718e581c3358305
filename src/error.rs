//! [`AdaPeftError`]: everything that can go wrong in adapeft, for one `?` across the crates.

use adapeft_importance::{EstimateError, GroupingError};
use adapeft_knapsack::KnapsackError;
use adapeft_optim::OptimError;
use adapeft_optim::checkpoint::CheckpointError;
use adapeft_selection::{BudgetError, SelectError, SelectionError, StoreError};
use thiserror::Error;

/// Why a selection (or saving, loading, transferring one, an optimizer adapter, or a
/// checkpoint) failed.
/// The user's model and data are never changed, error or not.
#[derive(Debug, Error)]
pub enum AdaPeftError {
    /// A selection could not be made (no parameters, a value model without the curvature it
    /// needs, unsupported LoRA choices, scores that do not match their groups, ...).
    #[error(transparent)]
    Select(#[from] SelectError),
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
