//! [`Budget`]: how many parameters may train, and [`BudgetOutcome`]: how it related to the
//! model once resolved.

use std::fmt;

use adapeft_knapsack::ParetoFront;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Which groups the estimator scores, once the budget is known.
///
/// A group larger than the budget can never be chosen. Scoring only the groups that fit
/// ([`Candidates::WithinBudget`]) saves the estimation's per-group cost, and for a value
/// measured over one run of all the scored groups together (the default `ShortRun`'s
/// loss-change allocation) it changes the values themselves: the small groups are credited
/// with what they learn when the large ones do not train, which is how they will train if
/// chosen. The front then only covers subsets of the groups that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Candidates {
    /// Every group (the front covers every budget).
    #[default]
    All,
    /// Only the groups that fit the budget on their own; the others are reported unscored
    /// (value 0). [`Budget::Auto`] and [`Budget::Knee`], which read the whole front, score
    /// every group.
    WithinBudget,
}

impl Candidates {
    /// Whether a group of `params` parameters is scored under a budget of `capacity`
    /// parameters (`None`: [`Budget::Auto`] or [`Budget::Knee`]).
    pub fn admits(self, params: u64, capacity: Option<u64>) -> bool {
        match (self, capacity) {
            (Candidates::WithinBudget, Some(c)) => params <= c,
            _ => true,
        }
    }
}

impl fmt::Display for Candidates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Candidates::All => "all groups",
            Candidates::WithinBudget => "groups within the budget",
        })
    }
}

/// How many parameters may train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Budget {
    /// At most this many parameters.
    Params(u64),
    /// At most this fraction of all the model's float parameters (`0.01` is 1%), rounded down.
    Fraction(f64),
    /// The size that held-out batches say pays: the subsets the knapsack picks at a few
    /// sizes (0.1% to 10% of the parameters by default) are each trained for a short run at a
    /// few rates, and the smallest whose held-out loss reduction is within 90% of the best
    /// is taken; never a size whose runs all raised the held-out loss. The budget to pick
    /// when there is no constraint of one's own. Needs held-out batches
    /// ([`AdaPeftConfig::with_held_out`](crate::AdaPeftConfig::with_held_out);
    /// [`HeldOut`](crate::HeldOut) has the settings).
    Auto,
    /// The knee of the predicted-value Pareto front: the selection farthest above the
    /// straight line from "train nothing" to "train every useful group", with both axes
    /// (trainable parameters, predicted reduction) scaled to `[0, 1]`; when no point is above
    /// that line, the lightest non-empty point. It reads only the estimator's predictions,
    /// knows nothing of the rate the subset will train at, and on a real model it can take
    /// far too much (42% of all-MiniLM-L6-v2, which then trained badly: `docs/results.md`):
    /// prefer [`Budget::Auto`].
    Knee,
    /// A memory budget in bytes for what training the chosen groups adds: for every trainable
    /// float32 parameter its gradient (4 bytes), its optimizer state (`4 * optimizer_states`
    /// bytes: 2 for Adam and AdamW, 1 for SGD with momentum, 0 for plain SGD) and a trained
    /// copy of the weight (4 bytes; what `adapeft::save_trained` writes). So each parameter
    /// costs `4 * (2 + optimizer_states)` bytes.
    Memory {
        /// The bytes available.
        bytes: u64,
        /// Optimizer state tensors per parameter.
        optimizer_states: u32,
    },
}

impl Budget {
    /// A memory budget for Adam (two state tensors per parameter): 16 bytes per parameter.
    pub fn memory_adam(bytes: u64) -> Self {
        Budget::Memory {
            bytes,
            optimizer_states: 2,
        }
    }

    /// The budget in parameters for a model of `total` parameters (`None` for
    /// [`Budget::Auto`] and [`Budget::Knee`], which depend on the front).
    ///
    /// # Errors
    /// [`BudgetError`] for a fraction that is negative or not finite.
    pub fn resolve(&self, total: u64) -> Result<Option<u64>, BudgetError> {
        Ok(match *self {
            Budget::Params(n) => Some(n),
            Budget::Fraction(f) => {
                if !f.is_finite() || f < 0.0 {
                    return Err(BudgetError {
                        budget: *self,
                        reason: "a fraction must be finite and non-negative",
                    });
                }
                Some((f * total as f64).floor().min(u64::MAX as f64) as u64)
            }
            Budget::Auto | Budget::Knee => None,
            Budget::Memory {
                bytes,
                optimizer_states,
            } => Some(bytes / (4 * (2 + u64::from(optimizer_states)))),
        })
    }
}

/// The point of `front` that [`Budget::Knee`] takes: its knee, unless that is the empty
/// selection while some point has value. A front whose points all lie on or below its chord
/// (one valuable group, or value rising faster than size) has no knee, and "train nothing" is
/// never what `Knee` is asked for: then the lightest non-empty point is taken. Returns the
/// point's choices (empty for an empty front).
pub(crate) fn knee_point<C: Copy + Ord>(front: &ParetoFront<C>) -> Vec<C> {
    let values = front.values();
    let mut index = front.knee_index().unwrap_or(0);
    if index == 0 && values.len() > 1 && values[1] > values[0] {
        index = 1;
    }
    front.get(index).map(|p| p.chosen).unwrap_or_default()
}

/// A budget that cannot be resolved, with the budget as given and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
#[error("invalid budget {budget:?}: {reason}")]
pub struct BudgetError {
    /// The budget as given.
    pub budget: Budget,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// How the budget related to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetOutcome {
    /// Nothing was chosen: the budget is 0, smaller than every group with a positive value,
    /// or no group has a reliable positive value.
    Empty,
    /// Some groups were chosen within the budget.
    Within,
    /// The budget holds every group: every reliable group with a positive value trains.
    EverythingFits,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Params(n) => write!(f, "{n} parameters"),
            Budget::Fraction(x) => write!(f, "{}% of the parameters", 100.0 * x),
            Budget::Auto => f.write_str("auto (sized on held-out batches)"),
            Budget::Knee => f.write_str("knee of the Pareto front"),
            Budget::Memory {
                bytes,
                optimizer_states,
            } => write!(
                f,
                "{bytes} bytes ({optimizer_states} optimizer states per parameter)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_resolve_to_parameter_counts() {
        assert_eq!(Budget::Params(7).resolve(100).unwrap(), Some(7));
        assert_eq!(Budget::Fraction(0.015).resolve(1000).unwrap(), Some(15));
        assert_eq!(Budget::Fraction(2.0).resolve(1000).unwrap(), Some(2000));
        assert_eq!(Budget::Auto.resolve(1000).unwrap(), None);
        assert_eq!(Budget::Knee.resolve(1000).unwrap(), None);
        assert_eq!(Budget::memory_adam(1600).resolve(0).unwrap(), Some(100));
        assert_eq!(
            Budget::Memory {
                bytes: 800,
                optimizer_states: 0
            }
            .resolve(0)
            .unwrap(),
            Some(100)
        );
        for bad in [-0.1, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Budget::Fraction(bad).resolve(10),
                Err(BudgetError { .. })
            ));
        }
    }
}
