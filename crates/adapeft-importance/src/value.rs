//! How the scores value a *subset* of groups: the paper's sum of per-group values, or the
//! joint quadratic model over the cross-group curvature.

use serde::{Deserialize, Serialize};

use crate::score::Scores;

/// How a subset of groups is valued from [`Scores`].
///
/// ```
/// use adapeft_importance::ValueModel;
/// assert_eq!(ValueModel::default(), ValueModel::Additive);
/// assert!(ValueModel::Additive.is_additive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ValueModel {
    /// The sum of the chosen groups' values (the paper's knapsack; exact selection and exact
    /// or `1 - epsilon` fronts). The default.
    #[default]
    Additive,
    /// [`Scores::joint_value`]: `1/2 b_S^T |A_S|^-1 b_S` over the cross-group curvature
    /// (per-group rates; overlapping gains counted once; never more than the loss). Needs
    /// scores with a [`Curvature`](crate::Curvature) (the gradient probe's). Not additive:
    /// selected by exact enumeration for a few groups, otherwise lazy greedy plus a swap
    /// local search, with a greedy front. Each evaluation solves an `|S| x |S|` eigenproblem
    /// and the greedy front evaluates `O(K^2)` subsets: meant for up to a few hundred groups.
    /// On the digits oracle benchmark it ranks subsets worst of all value models (it
    /// saturates at the loss): prefer the default unless overlapping groups are the question.
    Joint,
}

impl ValueModel {
    /// Whether the value of a subset is the sum of per-group values.
    pub fn is_additive(self) -> bool {
        self == ValueModel::Additive
    }

    /// The value of `subset` (indices into `scores.groups`): `None` for
    /// [`ValueModel::Joint`] when the scores have no curvature.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn value(self, scores: &Scores, subset: &[usize]) -> Option<f64> {
        match self {
            ValueModel::Additive => Some(
                subset
                    .iter()
                    .map(|&k| scores.groups[k].value.max(0.0))
                    .sum(),
            ),
            ValueModel::Joint => scores.joint_value(subset),
        }
    }
}

impl std::fmt::Display for ValueModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueModel::Additive => "additive",
            ValueModel::Joint => "joint",
        })
    }
}
