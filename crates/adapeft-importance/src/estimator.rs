//! The [`Estimator`] trait every scoring method implements, and [`AnyEstimator`], one of
//! them chosen at run time.

use std::fmt;

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::error::EstimateError;
use crate::forward::ForwardProbe;
use crate::gradient::GradientProbe;
use crate::grouping::Groups;
use crate::newton::NewtonProbe;
use crate::objective::{LossFn, ModelObjective, Objective};
use crate::probe::Workspace;
use crate::probe_run::ProbeRun;
use crate::score::Scores;
use crate::shard::EstimateIn;
use crate::short_run::ShortRun;

/// A way to score parameter groups on some batches.
///
/// Implemented by [`ForwardProbe`], [`GradientProbe`], [`NewtonProbe`], [`ShortRun`], [`ProbeRun`],
/// [`Baseline`] and [`AnyEstimator`].
/// No estimator changes the model: every parameter is bit-identical afterwards, with the same
/// require-grad state. `Display` writes the estimator and its settings (stored in
/// [`Scores::estimator`]).
pub trait Estimator: fmt::Display {
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
}

/// Any one of the estimators, chosen at run time: what a selection is configured with and
/// what it records (serde), so that a saved selection can be re-run with the same settings.
///
/// ```
/// use adapeft_importance::{AnyEstimator, Baseline, ShortRun};
/// assert_eq!(AnyEstimator::default(), AnyEstimator::ShortRun(ShortRun::new()));
/// let baseline: AnyEstimator = Baseline::Fisher.into();
/// let json = serde_json::to_string(&baseline).unwrap();
/// assert_eq!(serde_json::from_str::<AnyEstimator>(&json).unwrap(), baseline);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnyEstimator {
    /// The paper's forward probe (`4K + 1` forward passes).
    Forward(ForwardProbe),
    /// Curvature from gradient differences (`1 + 2P` backward passes whatever `K`).
    Gradient(GradientProbe),
    /// A first-order or data-free baseline score.
    Baseline(Baseline),
    /// What each group learns in a short run of the optimizer.
    ShortRun(ShortRun),
    /// The Newton decrement within each group's subspace, by conjugate gradients.
    Newton(NewtonProbe),
    /// The paper's probe run: one-step values at checkpoints of a short run, summed.
    ProbeRun(ProbeRun),
}

impl Default for AnyEstimator {
    /// A [`ShortRun`] with its defaults: the loss-change allocation of a 15-step Adam run by
    /// the trapezoid rule, the value with the lowest mean regret over both models of the
    /// digits study's oracle benchmark (`docs/digits/oracle.md`), at a cost that does not grow
    /// with the number of groups.
    fn default() -> Self {
        AnyEstimator::ShortRun(ShortRun::new())
    }
}

impl From<ForwardProbe> for AnyEstimator {
    fn from(e: ForwardProbe) -> Self {
        AnyEstimator::Forward(e)
    }
}

impl From<GradientProbe> for AnyEstimator {
    fn from(e: GradientProbe) -> Self {
        AnyEstimator::Gradient(e)
    }
}

impl From<Baseline> for AnyEstimator {
    fn from(e: Baseline) -> Self {
        AnyEstimator::Baseline(e)
    }
}

impl From<NewtonProbe> for AnyEstimator {
    fn from(e: NewtonProbe) -> Self {
        AnyEstimator::Newton(e)
    }
}

impl From<ProbeRun> for AnyEstimator {
    fn from(e: ProbeRun) -> Self {
        AnyEstimator::ProbeRun(e)
    }
}

impl From<ShortRun> for AnyEstimator {
    fn from(e: ShortRun) -> Self {
        AnyEstimator::ShortRun(e)
    }
}

impl fmt::Display for AnyEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyEstimator::Forward(e) => write!(f, "ForwardProbe {e}"),
            AnyEstimator::Gradient(e) => write!(f, "GradientProbe {e}"),
            AnyEstimator::Baseline(e) => write!(f, "Baseline {e}"),
            AnyEstimator::ShortRun(e) => write!(f, "ShortRun {e}"),
            AnyEstimator::Newton(e) => write!(f, "NewtonProbe {e}"),
            AnyEstimator::ProbeRun(e) => write!(f, "ProbeRun {e}"),
        }
    }
}

impl Estimator for AnyEstimator {
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
        match self {
            AnyEstimator::Forward(e) => e.estimate_with(model, batches, groups, loss),
            AnyEstimator::Gradient(e) => e.estimate_with(model, batches, groups, loss),
            AnyEstimator::Baseline(e) => e.estimate_with(model, batches, groups, loss),
            AnyEstimator::ShortRun(e) => e.estimate_with(model, batches, groups, loss),
            AnyEstimator::Newton(e) => e.estimate_with(model, batches, groups, loss),
            AnyEstimator::ProbeRun(e) => e.estimate_with(model, batches, groups, loss),
        }
    }
}

impl EstimateIn for AnyEstimator {
    fn estimate_in<M, B, F>(&self, ws: Workspace<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        match self {
            AnyEstimator::Forward(e) => e.estimate_in(ws),
            AnyEstimator::Gradient(e) => e.estimate_in(ws),
            AnyEstimator::Baseline(e) => e.estimate_in(ws),
            AnyEstimator::ShortRun(e) => e.estimate_in(ws),
            AnyEstimator::Newton(e) => e.estimate_in(ws),
            AnyEstimator::ProbeRun(e) => e.estimate_in(ws),
        }
    }
}
