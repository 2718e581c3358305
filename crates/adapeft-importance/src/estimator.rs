//! The [`Estimator`] trait every scoring method implements.

use burn::module::Module;

use crate::error::EstimateError;
use crate::grouping::Groups;
use crate::objective::{LossFn, ModelObjective, Objective};
use crate::score::Scores;

/// A way to score parameter groups on some batches.
///
/// Implemented by [`crate::ForwardProbe`], [`crate::GradientProbe`] and [`crate::Baseline`].
/// No estimator changes the model: every parameter is bit-identical afterwards, with the same
/// require-grad state.
pub trait Estimator {
    /// Scores `groups` of `model` on `batches` with the loss `loss(model, batch)`; the loss is
    /// averaged over the batches.
    ///
    /// # Errors
    /// No batch, no group, a loss that is not a scalar or not finite (at the model's weights or
    /// at a probe point), or an invalid setting.
    fn estimate_with<M, B, F>(
        &self,
        model: &M,
        batches: &[B],
        groups: &Groups,
        loss: &F,
    ) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>;

    /// [`Estimator::estimate_with`] with the model's own [`Objective`].
    ///
    /// # Errors
    /// As [`Estimator::estimate_with`].
    fn estimate<M, B>(
        &self,
        model: &M,
        batches: &[B],
        groups: &Groups,
    ) -> Result<Scores, EstimateError>
    where
        M: Module + Objective<B>,
    {
        self.estimate_with(model, batches, groups, &ModelObjective)
    }

    /// The estimator and its settings, in words (stored in [`Scores::estimator`]).
    fn describe(&self) -> String;
}
