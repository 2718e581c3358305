//! The [`Estimator`] trait every scoring method implements.
//!
//! An estimator writes only what differs: its scoring on the evaluation engine's
//! [`Passes`] (the sealed [`EstimateIn`]). Building the passes from a model, batches, groups
//! and loss is the trait's provided [`Estimator::estimate_with`], the same for all; the
//! data-parallel workers of `shard.rs` build them for one worker instead and call the same
//! [`EstimateIn::estimate_in`]. This module names no estimator: each one depends on it, not
//! the other way round ([`AnyEstimator`](crate::AnyEstimator) is `any_estimator.rs`).

use std::fmt;

use burn::module::Module;

use crate::error::EstimateError;
use crate::objective::{LossFn, ModelObjective, Objective};
use crate::params::grouping::Groups;
use crate::passes::Passes;
use crate::score::Scores;

/// A way to score parameter groups on some batches.
///
/// Implemented by [`ForwardProbe`](crate::ForwardProbe),
/// [`GradientProbe`](crate::GradientProbe), [`NewtonProbe`](crate::NewtonProbe),
/// [`ShortRun`](crate::ShortRun), [`ProbeRun`](crate::ProbeRun),
/// [`Baseline`](crate::Baseline) and [`AnyEstimator`](crate::AnyEstimator); the trait is
/// sealed (its scoring half runs on the crate's private evaluation engine), and both methods
/// are provided.
/// No estimator changes the model: every parameter is bit-identical afterwards, with the same
/// require-grad state. `Display` writes the estimator and its settings (stored in
/// [`Scores::estimator`]).
pub trait Estimator: fmt::Display + EstimateIn {
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
        F: LossFn<M, B>,
    {
        check_units(self, groups)?;
        self.estimate_in(Passes::new(model, batches, loss, groups)?)
    }

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
}

/// The half of an estimator that differs from one to the next: its scoring on the
/// evaluation engine's [`Passes`], the one code path of one device and of a data-parallel
/// worker. Sealed: the module is private, so no type outside the crate can implement it, and
/// so none can implement [`Estimator`].
pub(crate) mod sealed {
    use burn::module::Module;

    use crate::error::EstimateError;
    use crate::objective::LossFn;
    use crate::passes::Passes;
    use crate::score::Scores;

    /// Scores the groups of `passes` on its model and batches (see the module).
    pub trait EstimateIn {
        /// The estimator's type name (`GradientProbe`, ...), the first word of what
        /// [`Scores::estimator`] records.
        fn name(&self) -> &'static str;

        /// Whether it can score groups made of parts of tensors ([`Groups::split`]): only
        /// estimators whose values are sums over coordinates can (default `false`).
        ///
        /// [`Groups::split`]: crate::Groups::split
        fn supports_units(&self) -> bool {
            false
        }

        /// Scores every group of `passes.groups`.
        fn estimate_in<M, B, F>(
            &self,
            passes: Passes<'_, M, B, F>,
        ) -> Result<Scores, EstimateError>
        where
            M: Module,
            F: LossFn<M, B>;
    }
}

pub(crate) use sealed::EstimateIn;

/// [`EstimateError::UnitsUnsupported`] when `groups` hold parts of tensors and `estimator`
/// cannot score them.
pub(crate) fn check_units<E: EstimateIn + ?Sized>(
    estimator: &E,
    groups: &Groups,
) -> Result<(), EstimateError> {
    if estimator.supports_units() {
        return Ok(());
    }
    match groups.groups().iter().find(|g| !g.parts.is_empty()) {
        Some(g) => Err(EstimateError::UnitsUnsupported {
            estimator: estimator.name(),
            group: g.name.clone(),
        }),
        None => Ok(()),
    }
}

/// What [`Scores::estimator`] records of `estimator`: its name and its settings
/// (`GradientProbe {"probes":..}`), the text of [`AnyEstimator`](crate::AnyEstimator)'s
/// `Display` for it.
pub(crate) fn label<E: EstimateIn + fmt::Display>(estimator: &E) -> String {
    format!("{} {estimator}", estimator.name())
}
