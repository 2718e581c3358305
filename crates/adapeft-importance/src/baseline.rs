//! Baseline scores from the PEFT literature, in the same result type as the Hessian-informed
//! estimators so that every method feeds the same knapsack.

use burn::config::Config;
use burn::module::Module;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::EstimateError;
use crate::estimator::{EstimateIn, Estimator, label};
use crate::objective::LossFn;
use crate::params::grouping::Groups;
use crate::passes::Passes;
use crate::passes::vector::{ParamVec, group_dots, group_sums};
use crate::score::{GroupScore, Quality, Scores};

/// A first-order or data-free score per group. Each puts its score in
/// [`GroupScore::value`]; `b` holds `||G_k||^2` where a gradient was taken (else `0`) and `a` is
/// `0` (no curvature is modelled). Groups are always reliable.
///
/// A burn [`Config`] (serde, `Display` as JSON), like the other estimators.
#[derive(Config, Debug, Copy, PartialEq)]
pub enum Baseline {
    /// `||G_k||^2` of the mean gradient over the batches. One backward pass per batch.
    GradientNorm,
    /// Empirical Fisher (FISH mask, SPT): `sum over batches of ||G_k^batch||^2`. One backward
    /// pass per batch.
    Fisher,
    /// First-order Taylor (SNIP, AdaLoRA): `|w_k . G_k|`. One backward pass per batch.
    Taylor,
    /// Magnitude `||w_k||_1`. No pass.
    Magnitude,
    /// Mean absolute gradient `||G_k||_1 / n_k` of the mean gradient: SMT's block criterion
    /// (arXiv 2405.15525), for blocks of a matrix (`Unit::Blocks`). SMT scores after about
    /// 100 warm-up steps of full fine-tuning: score the warmed-up model. One backward pass per
    /// batch.
    MeanAbsGradient,
    /// Uniform random scores in `[0, 1)` from a seed. No pass.
    Random {
        /// The seed.
        seed: u64,
    },
}

impl Baseline {
    fn needs_gradient(self) -> bool {
        matches!(
            self,
            Baseline::GradientNorm
                | Baseline::Fisher
                | Baseline::Taylor
                | Baseline::MeanAbsGradient
        )
    }
}

/// `sum |x_i|` per group (over whole members and the cells of parts), read back in one
/// transfer.
fn l1_norms(groups: &Groups, x: &ParamVec) -> Vec<f64> {
    let abs: ParamVec = x
        .iter()
        .map(|t| t.as_ref().map(|t| t.clone().abs()))
        .collect();
    group_sums(groups, &abs)
}

impl Estimator for Baseline {}

impl EstimateIn for Baseline {
    fn name(&self) -> &'static str {
        "Baseline"
    }

    /// Every baseline is a sum over coordinates (or, for `Random`, a draw per group).
    fn supports_units(&self) -> bool {
        true
    }

    fn estimate_in<M, B, F>(&self, mut passes: Passes<'_, M, B, F>) -> Result<Scores, EstimateError>
    where
        M: Module,
        F: LossFn<M, B>,
    {
        let groups = passes.groups;
        let k = groups.len();
        let (mean_loss, b, values) = if self.needs_gradient() {
            let zero: ParamVec = vec![None; groups.params().len()];
            let per_batch = passes.gradients_at(&zero, None, |batch, loss| {
                EstimateError::NonFiniteLoss { batch, loss }
            })?;
            let fisher = match self {
                Baseline::Fisher => {
                    let mut total = vec![0.0; k];
                    for (_, g) in &per_batch {
                        for (t, x) in total.iter_mut().zip(group_dots(groups, g, g)) {
                            *t += x;
                        }
                    }
                    passes.reduce_scalars(&mut total)?;
                    Some(total)
                }
                _ => None,
            };
            let count = passes.total_batches();
            let (mean_loss, grad) = passes.reduce_mean(&per_batch, None, |_| true, count)?;
            let b = group_dots(groups, &grad, &grad);
            let values = match self {
                Baseline::GradientNorm => b.clone(),
                Baseline::Fisher => fisher.expect("computed above"),
                Baseline::MeanAbsGradient => l1_norms(groups, &grad)
                    .into_iter()
                    .zip(groups.groups())
                    .map(|(l1, g)| l1 / g.numel.max(1) as f64)
                    .collect(),
                Baseline::Taylor => {
                    let w = passes.weights();
                    group_dots(groups, &w, &grad)
                        .into_iter()
                        .map(f64::abs)
                        .collect()
                }
                _ => unreachable!("only gradient baselines reach here"),
            };
            (Some(mean_loss), b, values)
        } else {
            let values = match self {
                Baseline::Magnitude => l1_norms(groups, &passes.weights()),
                Baseline::Random { seed } => {
                    let mut rng = StdRng::seed_from_u64(*seed);
                    (0..k).map(|_| rng.random::<f64>()).collect()
                }
                _ => unreachable!("only data-free baselines reach here"),
            };
            (None, vec![0.0; k], values)
        };
        let scores = groups
            .groups()
            .iter()
            .enumerate()
            .map(|(g, group)| GroupScore {
                name: group.name.clone(),
                params: group.numel,
                b: b[g],
                a: 0.0,
                value: values[g],
                unreliable: None,
                quality: Quality::Exact,
            })
            .collect();
        Ok(Scores {
            estimator: label(self),
            groups: scores,
            cost: passes.finish_cost(),
            loss: mean_loss,
            curvature: None,
        })
    }
}
