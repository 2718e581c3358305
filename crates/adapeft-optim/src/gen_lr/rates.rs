//! Per-group learning rates `eta_k = b_k / a_k` from a selection.

use adapeft_importance::Curvature;
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

/// Per-group learning rates from the cross-group curvature: the non-negative rates that
/// maximise the joint quadratic model of the chosen groups,
/// `b_S . eta - 1/2 eta^T |A_S| eta` ([`Curvature::joint_rates`]), instead of each group's own
/// `b_k / a_k`.
///
/// Each group's own Newton step ignores that the groups move the loss together: two groups
/// that push the outputs the same way each take the full step and overshoot together. The
/// joint rates share the step between them (and give rate 0 to a group the others fully
/// explain, which then does not move). `curvature` is the one of the scores the selection
/// was made from (`scores.curvature()` of an exact or random-sign
/// [`GradientProbe`](adapeft_importance::GradientProbe)); its indices are the selection's
/// groups. Every parameter outside the chosen groups gets the median of the positive rates.
///
/// # Errors
/// [`OptimError::NothingChosen`] for an empty selection; [`OptimError::CurvatureMismatch`]
/// when `curvature` does not cover the selection's groups; [`OptimError::NoNewtonRate`] when
/// no chosen group gets a positive rate (no chosen group has a positive slope `b`).
pub fn joint_learning_rates(
    selection: &Selection,
    curvature: &Curvature,
) -> Result<GroupRates, OptimError> {
    let all = selection.groups();
    if curvature.len() != all.len() {
        return Err(OptimError::CurvatureMismatch {
            curvature: curvature.len(),
            groups: all.len(),
        });
    }
    let subset: Vec<usize> = (0..all.len()).filter(|&i| all[i].chosen).collect();
    let Some(&first) = subset.first() else {
        return Err(OptimError::NothingChosen);
    };
    let b: Vec<f64> = all.iter().map(|c| c.score.b).collect();
    let eta = curvature.joint_rates(&b, &subset);
    let mut positive: Vec<f64> = eta.iter().copied().filter(|&e| e > 0.0).collect();
    if positive.is_empty() {
        let score = &all[first].score;
        return Err(OptimError::NoNewtonRate {
            group: score.name.clone(),
            b: score.b,
            a: score.a,
        });
    }
    positive.sort_by(f64::total_cmp);
    let default = positive[positive.len() / 2];
    let groups = subset
        .iter()
        .zip(eta)
        .map(|(&i, e)| (all[i].score.name.clone(), all[i].paths.clone(), e))
        .collect();
    Ok(GroupRates { default, groups })
}
