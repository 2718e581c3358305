//! Per-group learning rates `eta_k = b_k / a_k` from a selection.

use adapeft_selection::Selection;
use burn::module::ParamGroup;
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};

use crate::error::OptimError;

/// The per-group learning rates `eta_k = b_k / a_k` of a selection's chosen groups: the Newton
/// step of each group along the direction it was scored on (the gradient, or Adam's update
/// with [`Direction::Adam`](adapeft_importance::Direction)). Every other parameter gets the
/// median of the chosen rates.
///
/// # Errors
/// [`OptimError::NothingChosen`] for an empty selection, [`OptimError::NoNewtonRate`] for a
/// chosen group whose `b / a` is not positive and finite.
pub fn group_learning_rates(selection: &Selection) -> Result<GroupRates, OptimError> {
    let mut groups = Vec::new();
    for choice in selection.chosen() {
        let score = &choice.score;
        let eta = score
            .learning_rate()
            .ok_or_else(|| OptimError::NoNewtonRate {
                group: score.name.clone(),
                b: score.b,
                a: score.a,
            })?;
        groups.push((score.name.clone(), choice.paths.clone(), eta));
    }
    if groups.is_empty() {
        return Err(OptimError::NothingChosen);
    }
    let mut rates: Vec<f64> = groups.iter().map(|g| g.2).collect();
    rates.sort_by(f64::total_cmp);
    let default = rates[rates.len() / 2];
    Ok(GroupRates { default, groups })
}

/// Learning rates per parameter group; see [`group_learning_rates`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRates {
    /// The rate of every parameter outside the groups.
    pub default: f64,
    /// `(name, paths, rate)` per group.
    pub groups: Vec<(String, Vec<String>, f64)>,
}

impl GroupRates {
    /// The rates times `scale`, as burn's per-parameter learning rate.
    pub fn scaled(&self, scale: f64) -> ModuleLearningRate {
        let mut scheduler = ModuleLrScheduler::new(ConstantLr::new(self.default * scale));
        for (_, paths, rate) in &self.groups {
            scheduler = scheduler.with_group(
                ParamGroup::from_paths(paths.clone()),
                ConstantLr::new(rate * scale),
            );
        }
        scheduler.step()
    }
}
