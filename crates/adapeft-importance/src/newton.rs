//! Beyond the paper: a value over a group's whole subspace rather than one direction, the
//! group's Newton decrement `1/2 G_k^T H_kk^-1 G_k`, by a few conjugate-gradient steps of
//! Hessian-vector products restricted to the group (`docs/algorithm.md`, section 7).

use burn::config::Config;
use burn::module::Module;

use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator, label};
use crate::objective::LossFn;
use crate::passes::Passes;
use crate::passes::vector::{ParamVec, dots, per_group, relative_step, restrict};
use crate::score::{GroupScore, Quality, Scores, Unreliable};

/// Scores each group by the loss reduction of a Newton step within its own subspace,
/// `v_k = 1/2 G_k^T H_kk^-1 G_k` (the group's Newton decrement), estimated by `cg_steps`
/// conjugate-gradient iterations on `H_kk x = G_k` with Hessian-vector products by central
/// differences of gradients.
///
/// The one-step value `b^2 / 2a` takes the best step *along one direction*; this one lets the
/// group move anywhere in its subspace, so a group whose gradient points along a high-curvature
/// direction but that could gain much along others is no longer underrated. After `m`
/// iterations the estimate is the best quadratic gain over the Krylov space of dimension `m`
/// (so it grows with `m`, and `cg_steps = 1` is the gradient probe's exact value along `G`).
/// Conjugate gradients stop early at a direction of non-positive curvature (as Steihaug's
/// truncated CG does); a group whose first direction already has one is unreliable
/// ([`Unreliable::CurvatureNotPositive`]). Values are capped at the loss when the loss is
/// non-negative.
///
/// The [`GroupScore`] reports `b = ||G_k||^2`, the value, and the effective curvature
/// `a = b^2 / 2v` (so that `b / a` is the step along `G_k` the value corresponds to). Cost:
/// at most `1 + 2 * cg_steps * K` backward passes per batch (fewer when the iteration
/// converges first).
///
/// ```
/// use adapeft_importance::{discover, Estimator, Grouping, NewtonProbe};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex();
/// let model = LinearConfig::new(4, 2).init(&device);
/// let x = Tensor::<2>::ones([8, 4], &device);
/// let loss = |m: &Linear, x: &Tensor<2>| (m.forward(x.clone()) - 1.0).square().mean();
///
/// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
/// let scores = NewtonProbe::new().estimate_with(&model, &[x], &groups, &loss).unwrap();
/// // At most 1 + 2 * cg_steps * K passes; CG ends early once the residual vanishes (the
/// // bias has 2 coordinates: 2 steps).
/// assert!(scores.cost.backward_passes <= 1 + 2 * 4 * 2);
/// assert!(scores.groups.iter().all(|g| g.value > 0.0));
/// ```
#[derive(Config, Debug, PartialEq)]
pub struct NewtonProbe {
    /// Conjugate-gradient iterations per group (default 4).
    #[config(default = 4)]
    pub cg_steps: usize,
    /// Relative finite-difference step of the Hessian-vector products (default `5e-3`, as
    /// [`GradientProbe`](crate::GradientProbe)).
    #[config(default = 5e-3)]
    pub step: f64,
}

impl Default for NewtonProbe {
    fn default() -> Self {
        NewtonProbe::new()
    }
}

/// `x + c y` where both are present (entries of `x` without `y` are kept).
fn axpy(x: &ParamVec, c: f64, y: &ParamVec) -> ParamVec {
    x.iter()
        .zip(y)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => Some(a.clone() + b.clone().mul_scalar(c)),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.clone().mul_scalar(c)),
            (None, None) => None,
        })
        .collect()
}

impl Estimator for NewtonProbe {}

impl EstimateIn for NewtonProbe {
    fn name(&self) -> &'static str {
        "NewtonProbe"
    }

    fn estimate_in<M, B, F>(&self, mut passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = passes.groups;
        if self.cg_steps == 0 {
            return Err(EstimateError::InvalidSetting {
                name: "cg_steps",
                value: "0".into(),
                reason: "at least one conjugate-gradient step",
            });
        }
        if !(self.step.is_finite() && self.step > 0.0) {
            return Err(EstimateError::InvalidSetting {
                name: "step",
                value: self.step.to_string(),
                reason: "must be finite and positive",
            });
        }
        let zero: ParamVec = vec![None; groups.params().len()];
        let (loss0, grad) = passes.mean_gradient_at(&zero, None, |batch, loss| {
            EstimateError::NonFiniteLoss { batch, loss }
        })?;
        let w = passes.weights();
        let w_norm2 = per_group(groups, &dots(&w, &w));
        let mut out = Vec::with_capacity(groups.len());
        for (g, group) in groups.groups().iter().enumerate() {
            let g_k = restrict(groups, g, &grad, 1.0);
            let b = per_group(groups, &dots(&g_k, &g_k))[g];
            if b <= 0.0 {
                out.push(GroupScore::from_quadratic(
                    group.name.clone(),
                    group.numel,
                    b,
                    0.0,
                    0.0,
                    Quality::Exact,
                    Some(Unreliable::ZeroDirection),
                ));
                continue;
            }
            // Conjugate gradients on H_kk x = G_k from x = 0: the value 1/2 G.x grows by
            // 1/2 alpha r.r at every step.
            let (mut r, mut p, mut rr) = (g_k.clone(), g_k, b);
            let mut value = 0.0;
            let mut first_curvature = None;
            for _ in 0..self.cg_steps {
                let p_norm2 = per_group(groups, &dots(&p, &p))[g];
                let e = relative_step(self.step, w_norm2[g], p_norm2);
                let (plus, minus) = passes.gradients_either_side(&p, e, &group.name)?;
                let hp: ParamVec = plus
                    .into_iter()
                    .zip(minus)
                    .map(|(p, m)| match (p, m) {
                        (Some(p), Some(m)) => Some((p - m).div_scalar(2.0 * e)),
                        _ => None,
                    })
                    .collect();
                let hp = restrict(groups, g, &hp, 1.0);
                let php = per_group(groups, &dots(&p, &hp))[g];
                first_curvature.get_or_insert(php);
                if php <= 0.0 {
                    break;
                }
                let alpha = rr / php;
                value += 0.5 * alpha * rr;
                r = axpy(&r, -alpha, &hp);
                let rr_new = per_group(groups, &dots(&r, &r))[g];
                if rr_new <= 1e-14 * b {
                    break;
                }
                p = axpy(&r, rr_new / rr, &p);
                rr = rr_new;
            }
            if loss0 >= 0.0 {
                value = value.min(loss0);
            }
            let (a, extra) = if value > 0.0 {
                (b * b / (2.0 * value), None)
            } else {
                (
                    first_curvature.unwrap_or(0.0),
                    Some(Unreliable::CurvatureNotPositive),
                )
            };
            out.push(GroupScore::from_quadratic(
                group.name.clone(),
                group.numel,
                b,
                a,
                b * b,
                Quality::Exact,
                extra,
            ));
        }
        Ok(Scores {
            estimator: label(self),
            groups: out,
            cost: passes.finish_cost(),
            loss: Some(loss0),
            curvature: None,
        })
    }
}
