//! The update direction `g` along which each group's quadratic model is taken, and the
//! first-order coefficients `b_k = G_k . g_k` shared by the Hessian-informed estimators.

use burn::module::Module;
use serde::{Deserialize, Serialize};

use crate::error::EstimateError;
use crate::objective::LossFn;
use crate::passes::Passes;
use crate::passes::vector::{ParamVec, dots, per_group};

/// The optimizer's update direction `g` (the step is `w - eta g`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Direction {
    /// Plain gradient descent: `g = G`, so `b_k = ||G_k||^2` (the default, and the paper's).
    #[default]
    Gradient,
    /// The first step of Adam (and AdamW, ...): with bias correction the first update is
    /// `g = G / (|G| + epsilon)` elementwise, close to `sign(G)`; then `b_k = sum |G|^2 / (|G| + epsilon)`,
    /// about `||G_k||_1`. Use this when fine-tuning with an Adam-like optimizer.
    Adam {
        /// Adam's epsilon.
        epsilon: f64,
    },
}

impl Direction {
    /// Adam's direction with the usual `epsilon = 1e-8`.
    pub fn adam() -> Self {
        Direction::Adam { epsilon: 1e-8 }
    }

    /// The direction for a gradient.
    pub(crate) fn of(&self, grad: &ParamVec) -> ParamVec {
        match *self {
            Direction::Gradient => grad.clone(),
            Direction::Adam { epsilon } => grad
                .iter()
                .map(|g| {
                    g.as_ref()
                        .map(|g| g.clone() / g.clone().abs().add_scalar(epsilon))
                })
                .collect(),
        }
    }
}

/// How `b_k^2` (the numerator of `v_k`) is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SlopeEstimate {
    /// `b_k` from the mean gradient over all batches, squared (the default). Gradient noise
    /// biases `b_k^2` upward, more so for small batches.
    #[default]
    Plain,
    /// The unbiased two-batch estimate: the batches are split into two halves, `b_k` is computed
    /// on each half (with its own gradient and direction), and `b_k^2` is estimated by the
    /// product `b_k^(1) b_k^(2)`, whose expectation is `(E b_k)^2`. Reported `b_k` is their mean.
    /// Needs at least two batches; a group whose product is not positive is unreliable.
    TwoBatch,
}

/// The gradient at `w`, the direction, and the per-group `b_k` and `b_k^2` estimates.
pub(crate) struct FirstOrder {
    /// Mean loss at `w`.
    pub loss: f64,
    /// The direction from the mean gradient.
    pub dir: ParamVec,
    /// `b_k` per group.
    pub b: Vec<f64>,
    /// The estimate of `b_k^2` per group.
    pub b_squared: Vec<f64>,
}

/// One backward pass per batch at `w`.
pub(crate) fn first_order<M, B, F>(
    passes: &mut Passes<'_, M, B, F>,
    direction: Direction,
    slope: SlopeEstimate,
) -> Result<FirstOrder, EstimateError>
where
    M: Module,
    F: LossFn<M, B>,
{
    let m = passes.total_batches();
    if slope == SlopeEstimate::TwoBatch && m < 2 {
        return Err(EstimateError::TooFewBatches {
            what: "the two-batch estimate of b^2",
            needed: 2,
            got: m,
        });
    }
    let zero: ParamVec = vec![None; passes.groups.params().len()];
    let per_batch = passes.gradients_at(&zero, None, |batch, loss| {
        EstimateError::NonFiniteLoss { batch, loss }
    })?;
    let halves = if slope == SlopeEstimate::TwoBatch {
        let first = passes.reduce_mean(&per_batch, None, |i| i < m / 2, m / 2)?;
        let second = passes.reduce_mean(&per_batch, None, |i| i >= m / 2, m - m / 2)?;
        Some((first.1, second.1))
    } else {
        None
    };
    let (loss, grad) = passes.reduce_mean(&per_batch, None, |_| true, m)?;
    let dir = direction.of(&grad);
    let groups = passes.groups;
    let (b, b_squared) = match halves {
        None => {
            let b = per_group(groups, &dots(&grad, &dir));
            let b2 = b.iter().map(|x| x * x).collect();
            (b, b2)
        }
        Some((g1, g2)) => {
            let b1 = per_group(groups, &dots(&g1, &direction.of(&g1)));
            let b2 = per_group(groups, &dots(&g2, &direction.of(&g2)));
            let b = b1.iter().zip(&b2).map(|(x, y)| 0.5 * (x + y)).collect();
            let prod = b1.iter().zip(&b2).map(|(x, y)| x * y).collect();
            (b, prod)
        }
    };
    Ok(FirstOrder {
        loss,
        dir,
        b,
        b_squared,
    })
}
