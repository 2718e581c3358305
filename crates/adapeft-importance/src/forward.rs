//! The paper's estimator: per-group forward probes and a least-squares quadratic fit.

use burn::config::Config;
use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::direction::{Direction, SlopeEstimate, first_order};
use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator, label};
use crate::fit::{Intercept, QuadraticFit};
use crate::objective::LossFn;
use crate::passes::Passes;
use crate::passes::vector::{ParamVec, dots, per_group, restrict};
use crate::score::{GroupScore, Quality, Scores, Unreliable};

/// How the forward probe chooses the base step `h` of each group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProbeStep {
    /// Scale-free rule (the default, with `0.01`): `h_k = rho |L(w)| / b_k`, so that the
    /// first-order change `b_k h_k` of the loss is the fraction `rho` of the loss itself,
    /// whatever the scale of the loss, of the parameters or of the gradient. A 1% change is far
    /// above float32 rounding (about `1e-7` of the loss); larger fractions (5% was tried) move
    /// groups with a small predicted reduction `v_k` far past their optimum `b_k / a_k`
    /// (`h_k / eta_k* = rho |L| / 2 v_k`), where quartic terms bias the fitted curvature by
    /// several percent. When `L(w) = 0` or `b_k <= 0` the group is moved by `rho` of its own norm instead:
    /// `h_k = rho ||w_k|| / ||g_k||` (or `rho / ||g_k||` for an all-zero group).
    LossChange(f64),
    /// The loss-change step as a pilot, refitted to the pilot's curvature (the default, with
    /// `loss_change: 0.01, curvature_change: 1e-3`): probe at the [`ProbeStep::LossChange`]
    /// step `h_1`; if the fitted curvature `a_1 > 0` puts the second-order loss change
    /// `q_1 = a_1 h_1^2 / 2` above `curvature_change * |L(w)|`, probe again at
    /// `h_2 = sqrt(2 curvature_change |L(w)| / a_1) < h_1` and report that fit. Groups whose
    /// pilot stays within the bound cost nothing more; each refitted group costs one more
    /// forward pass per multiplier and batch.
    ///
    /// Why: the fitted curvature has two errors. Rounding each loss to `eps |L|` (float32:
    /// `eps ~ 1e-7` and more from reductions) gives a relative error of about
    /// `eps |L| / (a h^2) = eps |L| / 2q`; the quartic term of the loss gives one of about
    /// `C q`, where `C` is the loss's nonlinearity at the scale of its own curvature (for
    /// softmax cross-entropy `C ~ 1 / (p (1 - p))` per nat, whatever the parameters: what
    /// matters is how far the logits move). Both are functions of the second-order change `q`,
    /// not of the first-order one. The loss-change rule fixes `b h = rho |L|`, so
    /// `q_1 = rho^2 L^2 / 4 v` with `v = b^2 / 2a` the group's predicted reduction: for a
    /// group of small value (a bias whose gradient nearly vanishes) `q_1` grows without bound
    /// and the quartic term dominates (2.5% to 11% off on softmax-regression biases with gradient
    /// norms 0.03 to 0.01, 0.1% after the refit: `tests/steady.rs`). The
    /// refit caps `q` at `curvature_change * |L|` (`1e-3 |L|`: a rounding error of order
    /// `eps / 2e-3`, a few `1e-5`, and a quartic error `1e-3 |L| C`), still scale-free: scaling
    /// the loss by `s` scales `a` by `s^3` and `h` by `1 / s`. `a_1` needs only the right order
    /// of magnitude (a pilot a factor 2 off moves `q` by a factor 2). A pilot with `a_1 <= 0`,
    /// or `L(w) = 0`, keeps the pilot's fit.
    Refined {
        /// The pilot's first-order loss change, a fraction of `|L(w)|`.
        loss_change: f64,
        /// The most second-order loss change `a h^2 / 2`, a fraction of `|L(w)|`.
        curvature_change: f64,
    },
    /// The same `h` for every group, for example the learning rate one intends to train with
    /// (GeN probes at the learning rate).
    Fixed(f64),
}

impl Default for ProbeStep {
    fn default() -> Self {
        ProbeStep::REFINED
    }
}

impl ProbeStep {
    /// [`ProbeStep::Refined`] with its default fractions, the default step rule.
    pub const REFINED: ProbeStep = ProbeStep::Refined {
        loss_change: 0.01,
        curvature_change: 1e-3,
    };
}

/// The paper's estimator (Xu and Bu, AdaPEFT).
///
/// For each group `k` it moves only that group along its direction, `w(x) = w - x g_k`, at
/// `x = m h_k` for each multiplier `m` (default `-2, -1, 1, 2`), and fits
/// `L(w(x)) - L(w) = a_k x^2 / 2 - b_k x` by least squares. With the shared loss at `w` (which
/// comes with the gradient the direction needs) that is `4K + 1` forward passes per batch for
/// `K` groups, and one backward pass per batch; the default step rule
/// ([`ProbeStep::Refined`]) probes small-value groups a second time, up to `8K + 1`.
///
/// `a_k` is the fitted curvature. `b_k` is reported from the gradient (`G_k . g_k`, exact),
/// which the fit's own linear coefficient estimates with noise; the fit's R^2 over the probed
/// points (and the origin) is the quality figure, and a fit below `min_r2` is unreliable.
/// Groups with a zero direction are reported unreliable without probing.
///
/// A burn [`Config`]: `ForwardProbe::new().with_min_r2(0.95)`, or a struct literal with
/// `..Default::default()`; `Display` writes it as JSON.
#[derive(Config, Debug, PartialEq)]
pub struct ForwardProbe {
    /// Probe multipliers of the base step (default `[-2, -1, 1, 2]`). At least two distinct
    /// non-zero values.
    #[config(default = "vec![-2.0, -1.0, 1.0, 2.0]")]
    pub multipliers: Vec<f64>,
    /// How the base step is chosen (default [`ProbeStep::REFINED`]).
    #[config(default = "ProbeStep::REFINED")]
    pub step: ProbeStep,
    /// A fit with R^2 below this is unreliable (default `0.99`, GeN's threshold).
    #[config(default = 0.99)]
    pub min_r2: f64,
    /// The update direction (default [`Direction::Gradient`]).
    #[config(default = "Direction::Gradient")]
    pub direction: Direction,
    /// How `b_k^2` is estimated (default [`SlopeEstimate::Plain`]).
    #[config(default = "SlopeEstimate::Plain")]
    pub slope: SlopeEstimate,
}

impl Default for ForwardProbe {
    fn default() -> Self {
        ForwardProbe::new()
    }
}

impl ForwardProbe {
    fn validate(&self) -> Result<(), EstimateError> {
        let distinct_nonzero = {
            let mut m: Vec<f64> = self
                .multipliers
                .iter()
                .copied()
                .filter(|m| *m != 0.0)
                .collect();
            m.sort_by(f64::total_cmp);
            m.dedup();
            m.len()
        };
        if distinct_nonzero < 2 || self.multipliers.iter().any(|m| !m.is_finite()) {
            return Err(EstimateError::InvalidSetting {
                name: "multipliers",
                value: format!("{:?}", self.multipliers),
                reason: "need at least two distinct, finite, non-zero multipliers",
            });
        }
        let positive = |r: f64| r.is_finite() && r > 0.0;
        let step_ok = match self.step {
            ProbeStep::LossChange(r) | ProbeStep::Fixed(r) => positive(r),
            ProbeStep::Refined {
                loss_change,
                curvature_change,
            } => positive(loss_change) && positive(curvature_change),
        };
        if !step_ok {
            return Err(EstimateError::InvalidSetting {
                name: "step",
                value: format!("{:?}", self.step),
                reason: "must be finite and positive",
            });
        }
        Ok(())
    }
}

impl ForwardProbe {
    /// Moves group `k` alone by `-x g_k` at `x = m h` for every multiplier and fits the
    /// quadratic through the losses (the loss at `w` known).
    fn probe_group<M, B, F>(
        &self,
        passes: &mut Passes<'_, M, B, F>,
        dir: &ParamVec,
        loss: f64,
        k: usize,
        h: f64,
    ) -> Result<QuadraticFit, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = passes.groups;
        let name = &groups.groups()[k].name;
        let mut points = Vec::with_capacity(self.multipliers.len());
        for &m in &self.multipliers {
            let x = m * h;
            let delta = restrict(groups, k, dir, -x);
            let l = passes.loss_at(&delta, |loss| EstimateError::NonFiniteProbe {
                group: name.clone(),
                step: x,
                loss,
            })?;
            points.push((x, l));
        }
        Ok(QuadraticFit::fit(&points, Intercept::Known(loss)))
    }
}

impl Estimator for ForwardProbe {}

impl EstimateIn for ForwardProbe {
    fn name(&self) -> &'static str {
        "ForwardProbe"
    }

    fn estimate_in<M, B, F>(&self, mut passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = passes.groups;
        self.validate()?;
        let fo = first_order(&mut passes, self.direction, self.slope)?;
        let g_norm2 = per_group(groups, &dots(&fo.dir, &fo.dir));
        let w_norm2 = match self.step {
            ProbeStep::LossChange(_) | ProbeStep::Refined { .. } => {
                let w = passes.weights();
                per_group(groups, &dots(&w, &w))
            }
            ProbeStep::Fixed(_) => vec![0.0; groups.len()],
        };

        let mut scores = Vec::with_capacity(groups.len());
        for (k, group) in groups.groups().iter().enumerate() {
            if g_norm2[k] <= 0.0 {
                scores.push(GroupScore::from_quadratic(
                    group.name.clone(),
                    group.numel,
                    fo.b[k],
                    0.0,
                    fo.b_squared[k],
                    Quality::R2(0.0),
                    Some(Unreliable::ZeroDirection),
                ));
                continue;
            }
            let rho = match self.step {
                ProbeStep::Fixed(h) => h,
                ProbeStep::LossChange(rho) => rho,
                ProbeStep::Refined { loss_change, .. } => loss_change,
            };
            let h = match self.step {
                ProbeStep::Fixed(h) => h,
                _ if fo.loss != 0.0 && fo.b[k] > 0.0 => rho * fo.loss.abs() / fo.b[k],
                _ if w_norm2[k] > 0.0 => rho * (w_norm2[k] / g_norm2[k]).sqrt(),
                _ => rho / g_norm2[k].sqrt(),
            };
            let mut fit = self.probe_group(&mut passes, &fo.dir, fo.loss, k, h)?;
            if let ProbeStep::Refined {
                curvature_change, ..
            } = self.step
            {
                let cap = curvature_change * fo.loss.abs();
                if fit.a > 0.0 && cap > 0.0 && fit.a * h * h / 2.0 > cap {
                    let refined = (2.0 * cap / fit.a).sqrt();
                    fit = self.probe_group(&mut passes, &fo.dir, fo.loss, k, refined)?;
                }
            }
            let (a, r2) = (fit.a, fit.r2);
            let poor = (r2 < self.min_r2).then_some(Unreliable::PoorFit { r2 });
            scores.push(GroupScore::from_quadratic(
                group.name.clone(),
                group.numel,
                fo.b[k],
                a,
                fo.b_squared[k],
                Quality::R2(r2),
                poor,
            ));
        }
        Ok(Scores {
            estimator: label(self),
            groups: scores,
            cost: passes.finish_cost(),
            loss: Some(fo.loss),
            curvature: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_multipliers_and_steps_are_rejected() {
        let bad = ForwardProbe {
            multipliers: vec![1.0, 1.0, 0.0],
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(EstimateError::InvalidSetting {
                name: "multipliers",
                ..
            })
        ));
        let bad = ForwardProbe {
            step: ProbeStep::Fixed(-1.0),
            ..Default::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(EstimateError::InvalidSetting { name: "step", .. })
        ));
        assert!(ForwardProbe::default().validate().is_ok());
    }
}
