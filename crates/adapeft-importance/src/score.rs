//! Scores: what an estimator says about each group, and what it cost.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::curvature::Curvature;

/// Why a group's quadratic model says nothing reliable about it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Unreliable {
    /// The fitted curvature `a` is zero or negative: no finite optimum along the direction.
    CurvatureNotPositive,
    /// `b` is zero or negative: the direction does not decrease the loss to first order.
    SlopeNotPositive,
    /// The forward-probe fit explains too little of the probed losses (R^2 below the threshold).
    PoorFit {
        /// The fit's R^2.
        r2: f64,
    },
    /// The gradient probe's standard error of `a` is larger than `a` itself.
    Noisy {
        /// Standard error of `a`.
        std_err: f64,
    },
    /// The group's update direction is zero (for example a zero gradient).
    ZeroDirection,
    /// The group was not scored: on its own it is larger than the budget
    /// (`Candidates::WithinBudget` in the selector).
    LargerThanBudget {
        /// The budget in parameters.
        budget: u64,
    },
}

impl fmt::Display for Unreliable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreliable::CurvatureNotPositive => f.write_str("curvature not positive"),
            Unreliable::SlopeNotPositive => f.write_str("b not positive"),
            Unreliable::PoorFit { r2 } => write!(f, "poor fit (R^2 = {r2:.4})"),
            Unreliable::Noisy { std_err } => write!(f, "noisy (standard error {std_err:.3e} > a)"),
            Unreliable::ZeroDirection => f.write_str("zero direction"),
            Unreliable::LargerThanBudget { budget } => {
                write!(
                    f,
                    "not scored: larger than the budget of {budget} parameters"
                )
            }
        }
    }
}

/// How good an estimate is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Quality {
    /// R^2 of the forward probe's least-squares fit.
    R2(f64),
    /// Standard error of `a` from the random-sign gradient probe.
    StdErr(f64),
    /// Exact up to finite-difference error (exact gradient probe), or not applicable (baselines).
    Exact,
}

/// The score of one group.
///
/// For the Hessian-informed estimators `b = G . g` and `a = g^T H g` along the group's
/// update direction `g`, and `value = b^2 / (2a)`, the loss reduction the quadratic model
/// predicts from training the group (see `docs/algorithm.md`). An unreliable group has
/// `value = 0` and says why in [`GroupScore::unreliable`]; it is still reported.
///
/// Baseline estimators put their score in `value` and set `a = 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// Name of the group.
    pub name: String,
    /// Number of parameters in the group.
    pub params: u64,
    /// First-order coefficient `b_k = G_k . g_k`.
    pub b: f64,
    /// Curvature `a_k = g_k^T H_kk g_k`.
    pub a: f64,
    /// Predicted loss reduction `v_k = b_k^2 / (2 a_k)` (the knapsack value), or the baseline score.
    pub value: f64,
    /// Why the quadratic model is not trustworthy for this group; `None` when it is (see
    /// [`GroupScore::is_reliable`]). Left out of JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreliable: Option<Unreliable>,
    /// The estimate's quality figure.
    pub quality: Quality,
}

impl GroupScore {
    /// Builds a score from `b` and `a`, deciding reliability: `b > 0`, `a > 0`, and no
    /// `extra` reason (poor fit, noise). `value` is `b^2 / 2a` when reliable, `0` otherwise.
    pub(crate) fn from_quadratic(
        name: String,
        params: u64,
        b: f64,
        a: f64,
        b_squared: f64,
        quality: Quality,
        extra: Option<Unreliable>,
    ) -> Self {
        let unreliable = if extra == Some(Unreliable::ZeroDirection) {
            extra
        } else if b <= 0.0 || b_squared <= 0.0 {
            Some(Unreliable::SlopeNotPositive)
        } else if a <= 0.0 {
            Some(Unreliable::CurvatureNotPositive)
        } else {
            extra
        };
        let value = if unreliable.is_none() {
            b_squared / (2.0 * a)
        } else {
            0.0
        };
        GroupScore {
            name,
            params,
            b,
            a,
            value,
            unreliable,
            quality,
        }
    }

    /// Whether the quadratic model is trustworthy for this group (no [`Unreliable`] reason).
    pub fn is_reliable(&self) -> bool {
        self.unreliable.is_none()
    }

    /// The per-group learning rate `b / a` the quadratic model suggests (GeN's), when reliable
    /// and positive and finite.
    pub fn learning_rate(&self) -> Option<f64> {
        let eta = self.b / self.a;
        (self.is_reliable() && self.a > 0.0 && eta.is_finite() && eta > 0.0).then_some(eta)
    }
}

/// What an estimation cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Loss evaluations (forward passes), including those followed by a backward pass.
    pub forward_passes: u64,
    /// Backward passes.
    pub backward_passes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl std::ops::AddAssign for Cost {
    /// Adds another estimation's passes and seconds (for example the LoRA choices' extra
    /// estimations, added to the selection's cost).
    fn add_assign(&mut self, other: Cost) {
        self.forward_passes += other.forward_passes;
        self.backward_passes += other.backward_passes;
        self.seconds += other.seconds;
    }
}

/// The result of an estimator: one score per group, in the groups' order, and the cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The estimator and its settings, in words.
    pub estimator: String,
    /// One score per group.
    pub groups: Vec<GroupScore>,
    /// What it cost.
    pub cost: Cost,
    /// The mean loss over the batches at the model's own weights (`None` for the data-free
    /// baselines, which evaluate no loss).
    pub loss: Option<f64>,
    /// The cross-group curvature `A_kl = g_k^T H_kl g_l` (the gradient probe's; `None` for the
    /// other estimators, and for random signs over more than
    /// [`MAX_CURVATURE_GROUPS`](crate::MAX_CURVATURE_GROUPS) groups).
    #[serde(default)]
    pub curvature: Option<Curvature>,
}

impl Scores {
    /// The cross-group curvature matrix, when the estimator computed it (see
    /// [`Scores::curvature`](Scores#structfield.curvature)).
    pub fn curvature(&self) -> Option<&Curvature> {
        self.curvature.as_ref()
    }

    /// The joint one-step value of training the groups at `subset` (indices into
    /// [`Scores::groups`]) together, [`Curvature::joint_value`], never more than the loss
    /// (the reduction of a non-negative loss cannot exceed it). `None` without a curvature
    /// matrix.
    ///
    /// # Panics
    /// When an index of `subset` is out of range.
    pub fn joint_value(&self, subset: &[usize]) -> Option<f64> {
        let curvature = self.curvature.as_ref()?;
        let b: Vec<f64> = self.groups.iter().map(|g| g.b).collect();
        let value = curvature.joint_value(&b, subset);
        Some(match self.loss {
            Some(loss) if loss >= 0.0 => value.min(loss),
            _ => value,
        })
    }
}
