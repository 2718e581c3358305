//! [`AnyEstimator`], any one of the estimators chosen at run time: what a selection is
//! configured with and records. Its data-parallel entry points are in `shard.rs`.

use std::fmt;

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator};
use crate::forward::ForwardProbe;
use crate::gradient::GradientProbe;
use crate::newton::NewtonProbe;
use crate::objective::LossFn;
use crate::passes::Passes;
use crate::probe_run::ProbeRun;
use crate::score::Scores;
use crate::short_run::ShortRun;

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

/// The estimator's name and its settings as JSON, `GradientProbe {"probes":..}`: what
/// [`Scores::estimator`] records.
impl fmt::Display for AnyEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            AnyEstimator::Forward(e) => write!(f, " {e}"),
            AnyEstimator::Gradient(e) => write!(f, " {e}"),
            AnyEstimator::Baseline(e) => write!(f, " {e}"),
            AnyEstimator::ShortRun(e) => write!(f, " {e}"),
            AnyEstimator::Newton(e) => write!(f, " {e}"),
            AnyEstimator::ProbeRun(e) => write!(f, " {e}"),
        }
    }
}

impl Estimator for AnyEstimator {}

impl EstimateIn for AnyEstimator {
    /// The name of the estimator it holds.
    fn name(&self) -> &'static str {
        match self {
            AnyEstimator::Forward(e) => e.name(),
            AnyEstimator::Gradient(e) => e.name(),
            AnyEstimator::Baseline(e) => e.name(),
            AnyEstimator::ShortRun(e) => e.name(),
            AnyEstimator::Newton(e) => e.name(),
            AnyEstimator::ProbeRun(e) => e.name(),
        }
    }

    fn supports_units(&self) -> bool {
        match self {
            AnyEstimator::Forward(e) => e.supports_units(),
            AnyEstimator::Gradient(e) => e.supports_units(),
            AnyEstimator::Baseline(e) => e.supports_units(),
            AnyEstimator::ShortRun(e) => e.supports_units(),
            AnyEstimator::Newton(e) => e.supports_units(),
            AnyEstimator::ProbeRun(e) => e.supports_units(),
        }
    }

    fn estimate_in<M, B, F>(&self, passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        match self {
            AnyEstimator::Forward(e) => e.estimate_in(passes),
            AnyEstimator::Gradient(e) => e.estimate_in(passes),
            AnyEstimator::Baseline(e) => e.estimate_in(passes),
            AnyEstimator::ShortRun(e) => e.estimate_in(passes),
            AnyEstimator::Newton(e) => e.estimate_in(passes),
            AnyEstimator::ProbeRun(e) => e.estimate_in(passes),
        }
    }
}
