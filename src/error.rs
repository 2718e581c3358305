//! [`AdaPeftError`]: everything that can go wrong in a selection.

use adapeft_importance::{EstimateError, GroupingError};
use adapeft_knapsack::KnapsackError;
use adapeft_mask::{SelectionError, StoreError};
use thiserror::Error;

use crate::budget::Budget;

/// Why a selection (or saving, loading, transferring one) failed. The user's model and data
/// are never changed, error or not.
#[derive(Debug, Error)]
pub enum AdaPeftError {
    /// The model has no float parameter.
    #[error("the model has no float parameter to select from")]
    NoParameters,
    /// The budget is not valid.
    #[error("invalid budget {budget:?}: {reason}")]
    InvalidBudget {
        /// The budget as given.
        budget: Budget,
        /// What is wrong with it.
        reason: &'static str,
    },
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
}
